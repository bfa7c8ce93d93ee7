"""Measure one model: per batch size, batch latencies, sustained throughput, CPU time and the
node energy over the same window, read through an energyd source.

A model is anything that `prepare(size)` turns into a zero-argument callable running one batch
of that size (inputs are built in `prepare`, outside the timed region). Torch models and the
tests' pure-Python models go through exactly this code.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from adapter.profiler.stats import Window, latency_statistic
from energyd.procstat import read_cpu_times
from energyd.sources.base import EnergySource, delta_uj

log = logging.getLogger(__name__)

Prepare = Callable[[int], Callable[[], object]]
Clock = Callable[[], float]


def node_energy_uj(source: EnergySource) -> dict[str, tuple[int, int | None]]:
    """Cumulative µJ and wrap range of every top-level zone that counts toward the node total."""
    readings = source.read_uj()
    return {
        zone.name: (value, zone.max_energy_range_uj)
        for zone, value in readings.items()
        if zone.in_node_total and zone.parent is None
    }


@dataclass(frozen=True)
class Mark:
    t_s: float
    zones_uj: dict[str, tuple[int, int | None]]
    busy_cpu_s: float


class EnergyMeter:
    """Node energy and busy CPU time between two marks, as a `Window`."""

    def __init__(
        self,
        source: EnergySource,
        procfs: Path = Path("/proc"),
        clock: Clock = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.source = source
        self._procfs = procfs
        self._clock = clock
        self._sleep = sleep

    def mark(self) -> Mark:
        busy_s = read_cpu_times(self._procfs).busy_s
        return Mark(self._clock(), node_energy_uj(self.source), busy_s)

    def window(self, start: Mark) -> Window:
        end = self.mark()
        energy_uj = sum(
            delta_uj(start.zones_uj[name][0], value, max_range)
            for name, (value, max_range) in end.zones_uj.items()
            if name in start.zones_uj
        )
        return Window(
            duration_s=end.t_s - start.t_s,
            node_energy_j=energy_uj / 1e6,
            node_busy_cpu_s=max(end.busy_cpu_s - start.busy_cpu_s, 0.0),
        )

    def idle_window(self, seconds: float) -> Window:
        """A window in which this process does nothing, so the fit sees the node without us."""
        start = self.mark()
        self._sleep(seconds)
        return self.window(start)


@dataclass(frozen=True)
class Point:
    """One batch size of one variant, measured."""

    size: int
    latencies_s: tuple[float, ...]
    wall_s: float
    cpu_s: float
    window: Window

    @property
    def requests(self) -> int:
        return self.size * len(self.latencies_s)

    @property
    def throughput_rps(self) -> float:
        return self.requests / self.wall_s


def background_cores(points: Sequence[Point]) -> float:
    """Mean cores other processes kept busy while these points were measured (a shared machine's
    load, written into measured_on so that readers can judge the latencies)."""
    duration_s = sum(p.window.duration_s for p in points)
    if duration_s <= 0:
        return 0.0
    return sum(max(p.window.node_busy_cpu_s - p.cpu_s, 0.0) for p in points) / duration_s


@dataclass(frozen=True)
class Settings:
    """How long to measure each point and which sizes are worth measuring."""

    repeats: int = 3
    duration_s: float = 2.0
    max_repeats: int = 200
    warmup_s: float = 0.0  # after the first (always untimed) batch; a GPU wants more (autotuning)
    max_batch_latency_s: float = 3.0
    latency_statistic: str = "median"


@dataclass
class VariantResult:
    points: list[Point] = field(default_factory=list)
    dropped_sizes: list[int] = field(default_factory=list)


def measure_point(
    prepare: Prepare,
    size: int,
    meter: EnergyMeter,
    settings: Settings,
    clock: Clock = time.perf_counter,
    cpu_clock: Clock = time.process_time,
) -> Point:
    """Warm up (one batch, then for `warmup_s`), then run back-to-back batches for at least
    `repeats` and `duration_s`."""
    run = prepare(size)
    run()
    warm_until = clock() + settings.warmup_s
    while clock() < warm_until:
        run()
    latencies: list[float] = []
    start = meter.mark()
    cpu0 = cpu_clock()
    t_start = clock()
    while len(latencies) < settings.repeats or (
        clock() - t_start < settings.duration_s and len(latencies) < settings.max_repeats
    ):
        t0 = clock()
        run()
        latencies.append(clock() - t0)
    wall_s = clock() - t_start
    cpu_s = cpu_clock() - cpu0
    return Point(size, tuple(latencies), wall_s, cpu_s, meter.window(start))


def measure_variant(
    prepare: Prepare,
    sizes: Sequence[int],
    meter: EnergyMeter,
    settings: Settings,
    on_point: Callable[[Point], None] | None = None,
    clock: Clock = time.perf_counter,
    cpu_clock: Clock = time.process_time,
) -> VariantResult:
    """Every size in increasing order until a batch would take longer than the cap.

    The first size is always measured; a later one is dropped (with every larger one) when the
    last measured latency, scaled linearly by batch size, exceeds `max_batch_latency_s`.
    """
    result = VariantResult()
    ordered = sorted(set(sizes))
    for i, size in enumerate(ordered):
        if result.points:
            last = result.points[-1]
            predicted_s = latency_statistic(last.latencies_s, settings.latency_statistic) * size / last.size
            if predicted_s > settings.max_batch_latency_s:
                result.dropped_sizes = ordered[i:]
                log.info("dropping batch sizes %s: about %.1f s per batch", result.dropped_sizes, predicted_s)
                break
        point = measure_point(prepare, size, meter, settings, clock, cpu_clock)
        result.points.append(point)
        if on_point is not None:
            on_point(point)
    return result
