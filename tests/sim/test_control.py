"""The controller against the simulated cluster, which shows the loop only what Prometheus would:
a load ramp beyond capacity and a noisy steady load."""

from __future__ import annotations

from typing import Any

from adapter.profiles import Profile
from adapter.sim.runner import RunSpec, run
from adapter.solve import get_solver
from tests.sim.profiles import video_profile

PROFILE = video_profile(variants_per_stage=3, sizes=(1, 2, 4))
INTERVAL_S = 10.0
RAMP_AT_S = 60
RAMP_RPS = 40


def capacity_rps(profile: Profile, stages: list[dict[str, Any]]) -> float:
    """Requests per second a configuration carries: its slowest stage's."""
    return min(
        float(c["replicas"])
        * profile.stages[s].variant(c["variant"]).batch(c["batch"]).replica_throughput_rps
        for s, c in enumerate(stages)
    )


def test_a_ramp_beyond_capacity_is_provisioned_within_two_intervals() -> None:
    # 5 req/s, then 8x that: the configuration chosen for 5 req/s serves far less than 40, so a
    # loop that sees only the served rate sees its own capacity, not the demand.
    counts = [5] * RAMP_AT_S + [RAMP_RPS] * 120
    result = run(
        PROFILE, counts, RunSpec("ipa", solver="exhaustive", switch_delay_s=5.0), get_solver("exhaustive")
    )
    log = result["log"]
    assert capacity_rps(PROFILE, log[0]["stages"]) < RAMP_RPS  # the ramp does go beyond capacity
    enough = [
        e["t_s"] for e in log if e["t_s"] >= RAMP_AT_S and capacity_rps(PROFILE, e["stages"]) >= RAMP_RPS
    ]
    assert enough, f"never provisioned for {RAMP_RPS} req/s: {[e['observed_rps'] for e in log]}"
    assert enough[0] <= RAMP_AT_S + 2 * INTERVAL_S
