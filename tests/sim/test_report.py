from __future__ import annotations

import pytest

from adapter.sim.report import pooled, recommended_gamma


def point(gamma: float, energy_j: float, sla_pct: float) -> dict[str, float]:
    return {"gamma": gamma, "energy_j": energy_j, "sla_violation_pct": sla_pct, "pas_mean": 50.0}


def test_the_smallest_gamma_that_meets_the_goal_is_recommended() -> None:
    sweep = [
        point(0.0, 100.0, 1.0),
        point(0.001, 90.0, 1.1),
        point(0.002, 79.0, 1.5),
        point(0.005, 50.0, 1.9),
    ]
    assert recommended_gamma(sweep)["gamma"] == 0.002


def test_without_a_gamma_that_meets_the_goal_the_most_saving_within_the_sla_budget() -> None:
    sweep = [point(0.0, 100.0, 1.0), point(0.001, 90.0, 1.5), point(0.002, 60.0, 2.5)]
    assert recommended_gamma(sweep)["gamma"] == 0.001


def test_pooling_sums_joules_and_weights_violations_by_requests() -> None:
    a = {
        "energy_j": 10.0,
        "pas_mean": 40.0,
        "cores_mean": 2.0,
        "sla_violation_pct": 10.0,
        "dropped_pct": 0.0,
        "requests": 100.0,
    }
    b = {
        "energy_j": 30.0,
        "pas_mean": 60.0,
        "cores_mean": 4.0,
        "sla_violation_pct": 0.0,
        "dropped_pct": 2.0,
        "requests": 300.0,
    }
    p = pooled([a, b], gamma=0.5)
    assert p == pytest.approx(
        {
            "gamma": 0.5,
            "energy_j": 40.0,
            "pas_mean": 50.0,
            "cores_mean": 3.0,
            "sla_violation_pct": 2.5,
            "dropped_pct": 1.5,
        }
    )
