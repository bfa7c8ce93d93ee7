"""The last resort: node power estimated from CPU utilisation, never passed off as measured.

power_w = cpus · (idle_w_per_cpu + (max_w_per_cpu − idle_w_per_cpu) · utilisation)

with utilisation the busy share of the node's CPU time between two reads of <procfs>/stat
(busy = total − idle − iowait, energyd.procstat) and cpus the online CPUs. Power is integrated
over the injected clock's time between reads into one cumulative zone, ``estimate``.

The default coefficients are Cloud Carbon Footprint's per-vCPU figures for AWS (minimum 0.74 W,
maximum 3.5 W per vCPU; their methodology derives them from SPECpower_ssj2008 results of the
server CPUs those clouds run). A linear idle-to-max curve is what CCF and Kepler's estimator
assume; codecarbon's TDP model (TDP · (0.1 + 0.9 · load³)) is steeper at low load. It knows
nothing of the actual CPU, memory, turbo or frequency scaling: its joules are a rough scale
for comparing pods on one node, not a measurement. Fit the two figures to a metered machine
(adapter's profiler reports idle and busy node power) for anything better.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from energyd.procstat import ProcStat, ProcStatError, read_proc_stat
from energyd.sources.base import SourceError, Zone

UJ_PER_J = 1_000_000
ZONE = Zone("estimate", None, True, None)


@dataclass(frozen=True)
class LinearPowerModel:
    """Watts per online CPU at 0 % and 100 % utilisation."""

    idle_w_per_cpu: float = 0.74
    max_w_per_cpu: float = 3.5

    def __post_init__(self) -> None:
        if not 0 <= self.idle_w_per_cpu <= self.max_w_per_cpu:
            raise ValueError(f"need 0 <= idle_w_per_cpu <= max_w_per_cpu, got {self}")

    def power_w(self, utilisation: float, cpus: int) -> float:
        u = min(max(utilisation, 0.0), 1.0)
        return cpus * (self.idle_w_per_cpu + (self.max_w_per_cpu - self.idle_w_per_cpu) * u)


class EstimateSource:
    name = "estimate"
    measured = False

    def __init__(
        self,
        procfs_root: Path = Path("/proc"),
        *,
        model: LinearPowerModel | None = None,
        clock: Callable[[], float] = time.monotonic,
        cpus: int | None = None,
    ) -> None:
        self._procfs_root = procfs_root
        self._model = model or LinearPowerModel()
        self._clock = clock
        self._cpus = cpus
        self._prev = self._read()
        self._prev_s = clock()
        self._utilisation = 0.0
        self._energy_uj = 0.0

    def zones(self) -> Sequence[Zone]:
        return [ZONE]

    def read_uj(self) -> Mapping[Zone, int]:
        stat = self._read()
        now_s = self._clock()
        total_s = stat.cpu.total_s - self._prev.cpu.total_s
        if total_s > 0:
            busy_s = stat.cpu.busy_s - self._prev.cpu.busy_s
            self._utilisation = busy_s / total_s
        # else: no tick passed (reads closer than 10 ms); the last utilisation still holds.
        cpus = self._cpus or max(stat.online_cpus, 1)
        elapsed_s = max(now_s - self._prev_s, 0.0)
        self._energy_uj += self._model.power_w(self._utilisation, cpus) * elapsed_s * UJ_PER_J
        self._prev, self._prev_s = stat, now_s
        return {ZONE: round(self._energy_uj)}

    def close(self) -> None:
        pass  # holds no files or processes

    def _read(self) -> ProcStat:
        try:
            return read_proc_stat(self._procfs_root)
        except ProcStatError as err:
            raise SourceError(
                str(err), "mount the host's /proc (--procfs-root) so its stat is readable"
            ) from err
