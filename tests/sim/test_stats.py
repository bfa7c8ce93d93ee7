from __future__ import annotations

import math

import pytest

from adapter.sim.stats import frontier, joules_at, saving_pct, t_interval


def test_the_t_interval_matches_a_hand_computation() -> None:
    # mean 2, sample sd 1, n = 3: half-width t(0.975, 2) x 1 / sqrt(3) = 4.303 / 1.732.
    mean, low, high = t_interval([1.0, 2.0, 3.0])
    assert mean == 2.0
    assert (high - mean) == pytest.approx(4.303 / math.sqrt(3))
    assert mean - low == pytest.approx(high - mean)
    assert t_interval([5.0])[0] == 5.0 and math.isnan(t_interval([5.0])[1])
    # Past the table, the normal quantile.
    values = [float(i % 2) for i in range(100)]
    _, low, high = t_interval(values)
    assert high - low == pytest.approx(2 * 1.96 * 0.5025 / 10, rel=1e-3)
    with pytest.raises(ValueError):
        t_interval([])


def test_the_frontier_drops_dominated_points() -> None:
    points = [(30.0, 10.0), (40.0, 20.0), (35.0, 25.0), (40.0, 30.0), (50.0, 40.0)]
    assert frontier(points) == [(30.0, 10.0), (40.0, 20.0), (50.0, 40.0)]


def test_joules_at_equal_pas_interpolates_and_never_extrapolates() -> None:
    points = [(30.0, 10.0), (40.0, 20.0), (50.0, 40.0)]
    assert joules_at(points, 35.0) == pytest.approx(15.0)
    assert joules_at(points, 50.0) == pytest.approx(40.0)
    assert joules_at(points, 29.0) is None and joules_at(points, 51.0) is None
    assert saving_pct((45.0, 24.0), points) == pytest.approx(20.0)  # 30 J on the chord
    assert saving_pct((55.0, 1.0), points) is None
