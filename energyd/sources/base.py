"""The seam every energy source sits behind.

A source reports *cumulative* energy per zone in integer microjoules, exactly as sysfs does;
it never computes deltas (the sampler owns previous readings and wrap handling).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable


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
    never wraps, e.g. perf's 64-bit counters or an estimate, or its range is unknown).
    `covered_by` names the zone that counts this one's energy in the node total in its place
    (psys for the packages and dram): when that zone is missing or distrusted, this one counts.
    """

    name: str
    parent: str | None = None
    in_node_total: bool = True
    max_energy_range_uj: int | None = None
    covered_by: str | None = None


@dataclass(frozen=True)
class Skipped:
    """A zone directory, file or event a source does not read, and why.

    `reason` is a short label (exported as `reason` of energyd_read_errors_total when
    `read_error`); `why` is the line a person reads, naming the file. `read_error` is True for
    a zone that exists but whose read failed this time (it counts as an error on every pass
    it fails), False for an entry that is not a zone at all (a control type, a dangling link).
    """

    where: str
    reason: str
    why: str
    read_error: bool = False


class EnergySource(Protocol):
    """A reader of cumulative per-zone energy."""

    name: str  # "powercap" | "perf" | "estimate"
    measured: bool  # False for an estimate: exported as such, never passed off as measured

    def zones(self) -> Sequence[Zone]: ...

    def read_uj(self) -> Mapping[Zone, int]:
        """Cumulative µJ per zone. Raises SourceError when a read fails."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class Inventoried(Protocol):
    """A source that can say where each zone is read and what it skipped (probe, source_info)."""

    def read_from(self) -> Mapping[str, str]:
        """Zone name -> the file or event it is read from."""
        ...

    def skipped(self) -> Sequence[Skipped]:
        """What the last scan or read passed over, and why."""
        ...

    def read_errors(self) -> Mapping[str, int]:
        """Failed zone reads since the source opened, by `Skipped.reason`."""
        ...


class Delta(NamedTuple):
    """One zone's energy over an interval: `uj` counted, or `rejected` saying why it was not."""

    uj: int
    rejected: str | None = None  # "reset" | "implausible"


def zone_delta(prev_uj: int, cur_uj: int, max_energy_range_uj: int | None, max_delta_uj: float) -> Delta:
    """Energy between two cumulative readings of one zone, or why the interval counts nothing.

    A reading below the previous one is a wrap only when the wrapped delta (the range minus
    the previous value, plus the new value) is a plausible amount of energy for the interval,
    i.e. the counter was near its range; otherwise the counter restarted (driver reload, CPU
    hotplug, firmware reset) and the interval is a `reset`. Without a known range a decrease is
    always a reset. Any delta above `max_delta_uj` (the zone's power ceiling times the interval)
    is `implausible`. One interval is assumed to hold at most one wrap.
    """
    if cur_uj >= prev_uj:
        delta = cur_uj - prev_uj
    elif max_energy_range_uj is not None and max_energy_range_uj > prev_uj:
        delta = max_energy_range_uj - prev_uj + cur_uj
        if delta > max_delta_uj:
            return Delta(0, "reset")
    else:
        return Delta(0, "reset")
    if delta > max_delta_uj:
        return Delta(0, "implausible")
    return Delta(delta)


def delta_uj(prev_uj: int, cur_uj: int, max_energy_range_uj: int | None) -> int:
    """zone_delta without a power ceiling, for spans of unknown length (the profiler's).

    A wrap is then taken only when the wrapped delta is under half the range: a counter that
    fell from low in its range restarted, and its span counts 0.
    """
    half_range = max_energy_range_uj / 2 if max_energy_range_uj else 0.0
    limit = half_range if cur_uj < prev_uj else float("inf")
    return zone_delta(prev_uj, cur_uj, max_energy_range_uj, limit).uj
