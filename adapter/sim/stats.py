"""The evaluation's statistics: Pareto frontiers of (PAS, joules), joules interpolated at equal
PAS, and t-intervals over windows (each window one observation; arrival seeds only jitter
arrivals inside a second, so they are not a source of variance worth an interval)."""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence

# Two-sided 95 % Student t quantiles t(0.975, df) for df = 1..30 (standard tables); past 30 the
# normal's 1.96 is within 2 %.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip

Point = tuple[float, float]  # (PAS, joules)


def t_interval(values: Sequence[float]) -> tuple[float, float, float]:
    """(mean, low, high): the 95 % t-interval of the mean; a single value gives (v, nan, nan)."""
    if not values:
        raise ValueError("no values")
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, math.nan, math.nan
    df = len(values) - 1
    quantile = _T975[df - 1] if df <= len(_T975) else 1.96
    half = quantile * statistics.stdev(values) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def frontier(points: Sequence[Point]) -> list[Point]:
    """The Pareto frontier (more PAS, fewer joules), sorted by PAS: a point is kept when no
    other has at least its PAS at no more joules."""
    kept: list[Point] = []
    for pas, joules in sorted(points, key=lambda p: (-p[0], p[1])):
        if not kept or joules < kept[-1][1]:
            kept.append((pas, joules))
    return sorted(kept)


def joules_at(points: Sequence[Point], pas: float) -> float | None:
    """The frontier's joules at `pas`, linear between its points; None outside its PAS range
    (no extrapolation: a point beyond the frontier is not compared)."""
    front = frontier(points)
    if not front or not front[0][0] - 1e-9 <= pas <= front[-1][0] + 1e-9:
        return None
    for (p0, j0), (p1, j1) in itertools.pairwise(front):
        if p0 - 1e-9 <= pas <= p1 + 1e-9:
            return j0 if p1 == p0 else j0 + (j1 - j0) * (pas - p0) / (p1 - p0)
    return front[0][1]


def saving_pct(point: Point, reference: Sequence[Point]) -> float | None:
    """Percent fewer joules at `point` than the reference frontier at the same PAS, or None
    where the reference does not reach that PAS."""
    ref_j = joules_at(reference, point[0])
    return None if ref_j is None or ref_j <= 0 else 100.0 * (1.0 - point[1] / ref_j)
