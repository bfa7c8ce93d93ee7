"""NVIDIA GPUs as an energy source: one zone `gpu-<index>` per physical GPU, read through `Nvml`.

NVML's `nvmlDeviceGetTotalEnergyConsumption` is a measured 64-bit counter of millijoules since
the driver loaded (Volta and later). It is read as integer µJ like every other source, so the
sampler's arithmetic applies unchanged: it never wraps (max_energy_range_uj None), and a reading
below the previous one is a driver reload, handled by `delta_uj` exactly as a RAPL reset. A GPU
is not inside any RAPL zone (psys meters the CPU platform, not a PCIe or SXM board), so every GPU
zone counts toward the node total.

A MIG-partitioned GPU is still one zone: the counter is the board's, NVML has no per-instance
energy. A GPU that errors while running (fallen off the bus) is left out of that pass and counted
in `failures`; the others, and the CPU zones, go on.
"""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from energyd.sources.base import SourceError, Zone
from energyd.sources.nvml import REASONS, Device, Nvml, NvmlError

log = logging.getLogger(__name__)

UJ_PER_MJ = 1000


def zone_name(index: int) -> str:
    return f"gpu-{index}"


def reason_of(err: NvmlError) -> tuple[str, str]:
    """One line of what is wrong and the fix, for `probe` and `energyd_source_info`."""
    reason, fix = REASONS.get(err.kind, (f"NVML error ({err.kind})", ""))
    return (f"{reason} [{err.detail}]" if err.detail else reason), fix


class GpuSource:
    """An EnergySource over every GPU NVML lists whose energy counter reads.

    Raises SourceError when NVML cannot be used at all or no GPU has a readable counter; GPUs
    passed over (a pre-Volta board, one already lost) are kept in `passed_over` with the reason.
    """

    name = "nvml"
    measured = True

    def __init__(self, nvml: Nvml, indices: Sequence[int] | None = None) -> None:
        self.nvml = nvml
        try:
            nvml.init()
        except NvmlError as err:
            raise SourceError(*reason_of(err)) from err
        try:
            self.driver_version, self.devices, self.passed_over = self._open(indices)
        except SourceError:
            self.close()
            raise
        self._zones = {zone_name(d.index): Zone(zone_name(d.index)) for d in self.devices}
        self.failures: dict[str, str] = {}  # zone -> error kind of the last read that failed

    def _open(self, indices: Sequence[int] | None) -> tuple[str, list[Device], dict[int, str]]:
        try:
            driver = self.nvml.driver_version()
            count = self.nvml.device_count()
        except NvmlError as err:
            raise SourceError(*reason_of(err)) from err
        if count == 0:
            raise SourceError("NVML works but lists no GPU", "")
        wanted = range(count) if indices is None else indices
        devices: list[Device] = []
        passed_over: dict[int, str] = {}
        for index in wanted:
            if not 0 <= index < count:
                raise SourceError(f"GPU index {index}: NVML lists {count} GPU(s)", f"choose 0..{count - 1}")
            try:
                device = self.nvml.device(index)
                self.nvml.total_energy_mj(index)
            except NvmlError as err:
                passed_over[index] = reason_of(err)[0]
                log.warning("%s passed over: %s", zone_name(index), passed_over[index])
                continue
            devices.append(device)
        if not devices:
            reasons = "; ".join(f"{zone_name(i)}: {r}" for i, r in passed_over.items())
            raise SourceError(f"no GPU has a readable energy counter ({reasons})", "")
        return driver, devices, passed_over

    def zones(self) -> Sequence[Zone]:
        return list(self._zones.values())

    def read_uj(self) -> Mapping[Zone, int]:
        """Cumulative µJ per GPU that answered; raises SourceError only when none did."""
        values: dict[Zone, int] = {}
        self.failures = {}
        for device in self.devices:
            zone = self._zones[zone_name(device.index)]
            try:
                values[zone] = self.nvml.total_energy_mj(device.index) * UJ_PER_MJ
            except NvmlError as err:
                self.failures[zone.name] = err.kind
                log.warning("%s energy read failed: %s", zone.name, reason_of(err)[0])
        if not values:
            raise SourceError("no GPU answered: " + ", ".join(f"{z}: {k}" for z, k in self.failures.items()))
        return values

    def close(self) -> None:
        try:
            self.nvml.shutdown()
        except NvmlError as err:  # shutting down a lost GPU's library: nothing left to release
            log.info("nvmlShutdown: %s", err)


@dataclass(frozen=True)
class GpuProbe:
    works: bool
    reason: str
    fix: str
    lines: tuple[str, ...] = ()  # one per GPU: zone, model, uuid, attribution or why not


def format_gpu_probe(result: GpuProbe) -> str:
    """The GPU part of `energyd probe`, laid out as the CPU sources' part is."""
    indent = " " * 18

    def wrap(head: str, text: str) -> str:
        return textwrap.fill(text, 100, initial_indent=head, subsequent_indent=indent, break_on_hyphens=False)

    head = f"  {'nvml':<10} {'yes' if result.works else 'no':<4} "
    if not result.works:
        lines = [wrap(head, result.reason)]
        if result.fix:
            lines.append(wrap(indent, f"fix: {result.fix}"))
    else:
        lines = [wrap(head, "measured (NVML energy counter); GPU zones are in the node total")]
        lines += [wrap(indent, line) for line in result.lines]
    return "\n".join(["GPUs (beside the CPU source, `energyd run --gpu auto`):", "", *lines])
