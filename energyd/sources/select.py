"""The fallback walk: powercap, then perf, then the estimate, keeping why each was passed over."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from energyd.config import SOURCE_CHOICES, Roots
from energyd.sources.base import EnergySource, SourceError
from energyd.sources.estimate import EstimateSource, LinearPowerModel
from energyd.sources.perf import PerfSource
from energyd.sources.powercap import PowercapSource

log = logging.getLogger(__name__)

ORDER = ("powercap", "perf", "estimate")


@dataclass(frozen=True)
class PassedOver:
    """A source the walk tried and could not use: what went wrong and what would fix it."""

    source: str
    reason: str
    fix: str


def open_one(
    name: str,
    roots: Roots,
    *,
    interval_s: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    perf_command: Sequence[str] = ("perf",),
    model: LinearPowerModel | None = None,
) -> EnergySource:
    """Opens the named source; raises SourceError with its reason and fix."""
    if name == "powercap":
        return PowercapSource(roots.sysfs)
    if name == "perf":
        return PerfSource(roots.sysfs, interval_s=interval_s, perf_command=perf_command, clock=clock)
    if name == "estimate":
        return EstimateSource(roots.procfs, model=model, clock=clock)
    raise SourceError(f"unknown energy source {name!r}", f"choose one of {', '.join(SOURCE_CHOICES)}")


def open_source(
    preferred: str,
    roots: Roots,
    *,
    interval_s: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    perf_command: Sequence[str] = ("perf",),
    model: LinearPowerModel | None = None,
) -> tuple[EnergySource, list[PassedOver]]:
    """The source to use and, for `auto`, the ones passed over before it, in walk order.

    An explicit choice is opened or refused (SourceError); only `auto` falls back.
    """

    def opener(name: str) -> EnergySource:
        return open_one(
            name, roots, interval_s=interval_s, clock=clock, perf_command=perf_command, model=model
        )

    if preferred != "auto":
        return opener(preferred), []
    passed_over: list[PassedOver] = []
    for name in ORDER:
        try:
            return opener(name), passed_over
        except SourceError as err:
            log.info("energy source %s passed over: %s", name, err)
            passed_over.append(PassedOver(name, err.reason, err.fix))
    last = passed_over[-1]
    raise SourceError(
        "no energy source works: " + "; ".join(f"{p.source}: {p.reason}" for p in passed_over), last.fix
    )
