"""Pure statistics of a profiling run: latency summaries and the node power model.

The power model is what turns node energy (read through energyd's sources) into the two figures
a profile needs. Over every measurement window of a run, node power is fitted as
`P = idle_w + busy_core_w * busy_cores` (least squares), where `busy_cores` is the node's busy
CPU time per second from /proc/stat. Then one replica of `c` cores holds `idle_w * c / ncpu`
while idle, and a request costs `busy_core_w` times the CPU-seconds the replica spent on it.
A fit, rather than one idle reading, because the machine may be shared: other processes' load
moves `busy_cores` too, which only adds spread to the regression instead of biasing it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

LATENCY_STATISTICS = ("median", "mean", "p99")

# Below this spread of busy cores across windows the slope is noise: assume no dynamic power
# rather than publish a made-up one, and say so.
MIN_BUSY_SPREAD_CORES = 0.05


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]): always one of the observed values."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be in [0, 100], got {q}")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_statistic(latencies_s: Sequence[float], statistic: str) -> float:
    """The batch latency a profile publishes: median (robust on a shared machine), mean or p99."""
    if not latencies_s:
        raise ValueError("no latencies measured")
    if statistic == "median":
        ordered = sorted(latencies_s)
        mid = len(ordered) // 2
        return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
    if statistic == "mean":
        return sum(latencies_s) / len(latencies_s)
    if statistic == "p99":
        return percentile(latencies_s, 99)
    raise ValueError(f"unknown latency statistic {statistic!r}; choose from {LATENCY_STATISTICS}")


@dataclass(frozen=True)
class Window:
    """One stretch of wall time with the node's energy and busy CPU time over it."""

    duration_s: float
    node_energy_j: float
    node_busy_cpu_s: float

    @property
    def power_w(self) -> float:
        return self.node_energy_j / self.duration_s

    @property
    def busy_cores(self) -> float:
        return self.node_busy_cpu_s / self.duration_s


@dataclass(frozen=True)
class PowerModel:
    """Node power as idle watts plus watts per busy core."""

    idle_w: float
    busy_core_w: float

    def replica_idle_power_w(self, cores: float, node_cpus: int) -> float:
        return self.idle_w * cores / node_cpus

    def energy_per_request_j(self, cpu_s: float, requests: int) -> float:
        return self.busy_core_w * cpu_s / requests


def fit_power_model(windows: Sequence[Window]) -> PowerModel:
    """Least-squares fit of node power against busy cores, clamped to non-negative terms."""
    usable = [w for w in windows if w.duration_s > 0]
    if not usable:
        raise ValueError("no measurement window to fit the power model on")
    xs = [w.busy_cores for w in usable]
    ys = [w.power_w for w in usable]
    mean_x = sum(xs) / len(xs)
    mean_y = sum(ys) / len(ys)
    sxx = sum((x - mean_x) ** 2 for x in xs)
    if max(xs) - min(xs) < MIN_BUSY_SPREAD_CORES or sxx == 0:
        log.warning("busy cores hardly varied across windows: no dynamic power can be fitted")
        return PowerModel(idle_w=max(mean_y, 0.0), busy_core_w=0.0)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sxx
    intercept = mean_y - slope * mean_x
    if slope < 0:
        log.warning("node power fell as load rose (slope %.3f W/core): taking it as flat", slope)
        return PowerModel(idle_w=max(mean_y, 0.0), busy_core_w=0.0)
    if intercept < 0:
        # A line through the origin is the closest non-negative model left.
        slope = sum(x * y for x, y in zip(xs, ys, strict=True)) / sum(x * x for x in xs)
        intercept = 0.0
    return PowerModel(idle_w=intercept, busy_core_w=slope)
