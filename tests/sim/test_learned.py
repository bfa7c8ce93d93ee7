"""The offline predictor check the evaluation reports (adapter.sim.learned.accuracy)."""

from __future__ import annotations

import pytest

from adapter.sim.learned import HORIZON_S, accuracy, examples


def test_accuracy_on_a_constant_rate_and_a_step() -> None:
    rows = {r["predictor"]: r for r in accuracy({"flat": [10] * 300})}
    assert rows["max"]["under_pct"] == 0.0 and rows["max"]["mean_ratio"] == pytest.approx(1.1)
    assert rows["holt"]["under_pct"] == 0.0 and rows["holt"]["mean_ratio"] == pytest.approx(1.1)
    assert rows["learned"]["mean_ratio"] > 0.5
    # A step from 10 to 40 req/s that no history foretells: every predictor is caught under once.
    step = {r["predictor"]: r for r in accuracy({"step": [10] * 200 + [40] * 100}, step_s=1)}
    assert all(r["under_pct"] > 0 for r in step.values())


def test_examples_target_the_coming_peak_relative_to_the_recent_mean() -> None:
    counts = [10] * 150 + [30] + [10] * 40
    xs, ys, scales = examples(counts)
    assert len(xs) == len(counts) - 120 - HORIZON_S + 1
    assert scales[0] == pytest.approx(10.0) and ys[0] == pytest.approx(1.0)  # at 120 s: peak 10 ahead
    first = 150 - HORIZON_S + 1  # the first now whose [now, now + 20) holds second 150's 30 req
    assert ys[first - 120] == pytest.approx(3.0) and ys[first - 121] == pytest.approx(1.0)
    assert xs[0][0] == 1.0 and len(xs[0]) == 14
