"""The seam every energy source sits behind.

A source reports *cumulative* energy per zone in integer microjoules, exactly as sysfs does;
it never computes deltas (the sampler owns previous readings and wrap handling).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol


class SourceError(Exception):
    """A source cannot be used or a read failed. `reason` is one line a person can act on."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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
