"""The node's CPU time from <procfs>/stat, in seconds summed over all CPUs.

The aggregate ``cpu`` line counts clock ticks (USER_HZ, 100 on Linux whatever CONFIG_HZ is) in
the columns user nice system idle iowait irq softirq steal guest guest_nice (Linux 2.6.33+;
older kernels print fewer columns, and missing ones read as 0). guest and guest_nice are
already counted in user and nice (kernel/sched/cputime.c adds guest time to both), so the total
leaves them out. Busy time is total - idle - iowait, as Kepler's node busy ratio has it: iowait
is a CPU waiting with nothing to run, which draws idle power.

Only the leading ``cpu``/``cpuN`` lines are parsed; the long ``intr`` line after them is never
split. Offline CPUs have no ``cpuN`` line, so counting those lines gives the online CPUs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

USER_HZ = os.sysconf("SC_CLK_TCK")

COLUMNS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "guest", "guest_nice")


class ProcStatError(ValueError):
    """<procfs>/stat is unreadable or not shaped like /proc/stat; the message names the file."""


@dataclass(frozen=True)
class CpuTimes:
    """Cumulative CPU-seconds since boot, summed over all CPUs."""

    user_s: float
    nice_s: float
    system_s: float
    idle_s: float
    iowait_s: float
    irq_s: float
    softirq_s: float
    steal_s: float
    guest_s: float
    guest_nice_s: float

    @property
    def total_s(self) -> float:
        # Guest time is inside user and nice already: adding it would count it twice.
        return (
            self.user_s
            + self.nice_s
            + self.system_s
            + self.idle_s
            + self.iowait_s
            + self.irq_s
            + self.softirq_s
            + self.steal_s
        )

    @property
    def busy_s(self) -> float:
        return self.total_s - self.idle_s - self.iowait_s


@dataclass(frozen=True)
class ProcStat:
    cpu: CpuTimes
    online_cpus: int


def read_proc_stat(procfs_root: Path = Path("/proc")) -> ProcStat:
    """The aggregate CPU times and the number of online CPUs, from one read of <procfs>/stat."""
    path = procfs_root / "stat"
    lines = _cpu_lines(path)
    if not lines or lines[0].split(maxsplit=1)[0] != "cpu":
        raise ProcStatError(f"{path}: no aggregate 'cpu' line on top")
    return ProcStat(cpu=_parse_cpu_line(path, lines[0]), online_cpus=len(lines) - 1)


def read_cpu_times(procfs_root: Path = Path("/proc")) -> CpuTimes:
    """Aggregate CPU times of the node. Raises ProcStatError naming the file."""
    return read_proc_stat(procfs_root).cpu


def online_cpus(procfs_root: Path = Path("/proc")) -> int:
    return read_proc_stat(procfs_root).online_cpus


def _cpu_lines(path: Path) -> list[str]:
    lines: list[str] = []
    try:
        with path.open(encoding="ascii") as f:
            for line in f:
                if not line.startswith("cpu"):
                    break
                lines.append(line)
    except (OSError, UnicodeDecodeError) as err:
        raise ProcStatError(f"cannot read {path}: {err}") from err
    return lines


def _parse_cpu_line(path: Path, line: str) -> CpuTimes:
    fields = line.split()[1:]
    if len(fields) < 4:
        raise ProcStatError(f"{path}: 'cpu' line has {len(fields)} columns, expected at least 4: {line!r}")
    try:
        ticks = [int(f) for f in fields[: len(COLUMNS)]]
    except ValueError as err:
        raise ProcStatError(f"{path}: 'cpu' line is not integers: {line!r}") from err
    ticks += [0] * (len(COLUMNS) - len(ticks))
    return CpuTimes(*(t / USER_HZ for t in ticks))
