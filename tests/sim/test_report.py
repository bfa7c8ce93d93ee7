from __future__ import annotations

import pytest

from adapter.sim.report import pooled


def test_pooling_sums_joules_and_weights_violations_by_requests() -> None:
    common = {"p99_latency_s": 1.0}
    a = {
        "energy_j": 10.0,
        "floor_energy_j": 15.0,
        "pas_mean": 40.0,
        "cores_mean": 2.0,
        "sla_violation_pct": 10.0,
        "dropped_pct": 0.0,
        "requests": 100.0,
    } | common
    b = {
        "energy_j": 30.0,
        "floor_energy_j": 35.0,
        "pas_mean": 60.0,
        "cores_mean": 4.0,
        "sla_violation_pct": 0.0,
        "dropped_pct": 2.0,
        "requests": 300.0,
        "p99_latency_s": 3.0,
    }
    assert pooled([a, b]) == pytest.approx(
        {
            "energy_j": 40.0,
            "floor_energy_j": 50.0,
            "pas_mean": 50.0,
            "cores_mean": 3.0,
            "sla_violation_pct": 2.5,
            "dropped_pct": 1.5,
            "p99_latency_s": 3.0,
        }
    )
