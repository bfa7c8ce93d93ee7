"""The seam every energy source sits behind.

A source reports *cumulative* energy per zone in integer microjoules, exactly as sysfs does;
it never computes deltas (the sampler owns previous readings and wrap handling).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)


class SourceError(Exception):
    """A source cannot be used or a read failed.

    `reason` is one line a person can act on: what is wrong, naming the file or command.
    `fix` says what to do about it ("" when there is nothing to do, e.g. a transient read).
    """

    def __init__(self, reason: str, fix: str = "") -> None:
        super().__init__(f"{reason} (fix: {fix})" if fix else reason)
        self.reason = reason
        self.fix = fix


@dataclass(frozen=True, order=True)
class Zone:
    """One energy counter.

    `name` is the exported `zone` label (e.g. "package-0", "dram-0", "core-0", "psys"); it is
    unique per source. `parent` is the name of the zone that already contains this one (a
    sub-zone such as core inside package), or None for a top-level zone. `in_node_total` is
    False for zones whose energy is already counted by another top-level zone (psys covers the
    packages; an MMIO duplicate repeats a package), so summing the zones that have it True
    never counts a joule twice. `max_energy_range_uj` is where the counter wraps (None: it
    never wraps, e.g. perf's 64-bit counters or an estimate).
    """

    name: str
    parent: str | None = None
    in_node_total: bool = True
    max_energy_range_uj: int | None = None


class EnergySource(Protocol):
    """A reader of cumulative per-zone energy."""

    name: str  # "powercap" | "perf" | "estimate"
    measured: bool  # False for an estimate: exported as such, never passed off as measured

    def zones(self) -> Sequence[Zone]: ...

    def read_uj(self) -> Mapping[Zone, int]:
        """Cumulative µJ per zone. Raises SourceError when a read fails."""
        ...

    def close(self) -> None: ...


def delta_uj(prev_uj: int, cur_uj: int, max_energy_range_uj: int | None) -> int:
    """Energy between two cumulative readings of one zone; never negative.

    RAPL counters wrap to 0 after `max_energy_range_uj` (each zone has its own range), so a
    reading below the previous one means one wrap: the zone counted up to the range, then from 0.
    Without a known range a decrease cannot be a wrap (perf's and the estimate's counters are 64
    bit), so the source restarted and counted `cur_uj` since: that is the delta, and it is logged.
    One interval is assumed to hold at most one wrap (minutes at full power on every zone known).
    """
    if cur_uj >= prev_uj:
        return cur_uj - prev_uj
    if max_energy_range_uj is not None and max_energy_range_uj > 0 and prev_uj <= max_energy_range_uj:
        return max_energy_range_uj - prev_uj + cur_uj
    log.info(
        "energy counter reset (%d -> %d µJ, range %s): counting from 0", prev_uj, cur_uj, max_energy_range_uj
    )
    return max(cur_uj, 0)
