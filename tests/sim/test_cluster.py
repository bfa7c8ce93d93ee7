from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapter.errors import ActuationError, QueryError
from adapter.problem import Decision, Problem
from adapter.profiles import Profile, Variant
from adapter.sim.cluster import ClusterSettings, SimCluster, SimStats, StageConfig
from adapter.sim.trace import arrival_times_s
from tests.sim.profiles import video_profile

PROFILE = video_profile(variants_per_stage=2, sizes=(1, 2, 4))


def fixed(profile: Profile, config: Sequence[tuple[str, int, int]], rate_rps: float = 1.0) -> Decision:
    """A decision for (variant, batch, replicas) per stage, built by the problem's own code."""
    problem = Problem(profile, rate_rps, sla_s=100.0)
    chosen = [
        problem.option(s, profile.stages[s].variant(name), batch, replicas)
        for s, (name, batch, replicas) in enumerate(config)
    ]
    return problem.decision(chosen, "fixed", 0.0)


def replay(
    counts: Sequence[int],
    plan: dict[float, Decision],
    settings: ClusterSettings,
    seed: int = 0,
    profile: Profile = PROFILE,
) -> SimStats:
    """Apply plan[t] at each tick t (interval 1 s) and return the run's statistics."""
    cluster = SimCluster(profile, counts, arrival_times_s(counts, seed), settings)

    def tick(now_s: float) -> None:
        if now_s in plan:
            cluster.apply(profile.pipeline, plan[now_s])

    return cluster.run(tick, 1.0)


def test_a_lone_request_takes_the_sum_of_batch1_latencies() -> None:
    d = fixed(PROFILE, [("yolov5n", 1, 1), ("resnet18", 1, 1)])
    stats = replay([1], {0.0: d}, ClusterSettings(sla_s=10.0))
    expected_s = (
        PROFILE.stages[0].variants[0].batch(1).latency_s + PROFILE.stages[1].variants[0].batch(1).latency_s
    )
    assert stats.served == 1 and stats.dropped == 0 and stats.late == 0
    assert stats.latencies_s[0] == pytest.approx(expected_s)


def test_a_partial_batch_leaves_after_the_batch_timeout_at_the_interpolated_latency() -> None:
    d = fixed(PROFILE, [("yolov5n", 4, 1), ("resnet18", 1, 1)])
    stats = replay([1], {0.0: d}, ClusterSettings(sla_s=0.5, batch_timeout_s=0.7))
    # A partial batch of one is processed at the latency measured for size 1.
    expected_s = (
        0.7
        + PROFILE.stages[0].variants[0].batch(1).latency_s
        + PROFILE.stages[1].variants[0].batch(1).latency_s
    )
    assert stats.latencies_s[0] == pytest.approx(expected_s)
    assert stats.late == 1


def test_an_interpolated_batch_size_between_measured_points() -> None:
    v, c = PROFILE.stages[0].variants[0], PROFILE.stages[1].variants[0]
    d = fixed(PROFILE, [("yolov5n", 4, 1), ("resnet18", 1, 4)])
    # Three requests within the first second: stage 0 takes them as one partial batch of 3 when
    # the oldest has waited the batch timeout, at the mean of the size-2 and size-4 figures.
    stats = replay([3], {0.0: d}, ClusterSettings(sla_s=10.0, batch_timeout_s=2.0))
    lat3 = (v.batch(2).latency_s + v.batch(4).latency_s) / 2
    e3 = (v.batch(2).energy_per_request_j + v.batch(4).energy_per_request_j) / 2
    assert stats.served == 3
    assert stats.dynamic_energy_j == pytest.approx(3 * e3 + 3 * c.batch(1).energy_per_request_j)
    assert max(stats.latencies_s) == pytest.approx(2.0 + lat3 + c.batch(1).latency_s)


def test_energy_is_idle_power_over_the_run_plus_per_request_energy() -> None:
    d = fixed(PROFILE, [("yolov5s", 1, 2), ("resnet50", 1, 3)])
    counts = [2, 1, 0, 4, 0]
    stats = replay(counts, {0.0: d}, ClusterSettings(sla_s=10.0))
    det, cls = PROFILE.stages[0].variant("yolov5s"), PROFILE.stages[1].variant("resnet50")
    assert stats.served == 7
    assert stats.horizon_s == pytest.approx(5.0)  # the last request leaves well within the trace
    assert stats.idle_energy_j == pytest.approx((2 * det.idle_power_w + 3 * cls.idle_power_w) * 5.0)
    assert stats.dynamic_energy_j == pytest.approx(
        7 * (det.batch(1).energy_per_request_j + cls.batch(1).energy_per_request_j)
    )
    assert stats.cores_mean == pytest.approx(2 * det.cores + 3 * cls.cores)


def test_a_reconfiguration_takes_effect_after_the_switch_delay() -> None:
    small = fixed(PROFILE, [("yolov5n", 1, 1), ("resnet18", 1, 1)])
    big = fixed(PROFILE, [("yolov5n", 1, 3), ("resnet18", 1, 1)])
    stats = replay([0] * 10, {0.0: small, 2.0: big}, ClusterSettings(sla_s=1.0, switch_delay_s=5.0))
    idle = PROFILE.stages[0].variants[0].idle_power_w
    other = PROFILE.stages[1].variants[0].idle_power_w
    # small from 0 to 7 (2 + 5 s of delay), big from 7 to 10.
    assert stats.switches == 2
    assert stats.idle_energy_j == pytest.approx(7 * (idle + other) + 3 * (3 * idle + other))


def test_unchanged_decisions_schedule_nothing() -> None:
    d = fixed(PROFILE, [("yolov5n", 1, 1), ("resnet18", 1, 1)])
    cluster = SimCluster(PROFILE, [1], arrival_times_s([1], 0), ClusterSettings(sla_s=1.0))
    assert cluster.apply("video", d) is True
    assert cluster.apply("video", d) is False


class Heard:
    def __init__(self) -> None:
        self.batches: list[tuple[int, float, float, str, list[int]]] = []
        self.switches: list[tuple[float, tuple[StageConfig, ...]]] = []
        self.drops: list[tuple[int, float]] = []

    def batch_scheduled(
        self, stage: int, start_s: float, end_s: float, variant: Variant, request_ids: list[int]
    ) -> None:
        self.batches.append((stage, start_s, end_s, variant.name, request_ids))

    def switch_scheduled(self, at_s: float, config: tuple[StageConfig, ...]) -> None:
        self.switches.append((at_s, config))

    def request_dropped(self, stage: int, at_s: float) -> None:
        self.drops.append((stage, at_s))


def test_the_observer_hears_every_batch_and_switch_as_scheduled() -> None:
    small = fixed(PROFILE, [("yolov5n", 2, 1), ("resnet18", 1, 1)])
    big = fixed(PROFILE, [("yolov5s", 1, 2), ("resnet50", 1, 1)])
    counts = [4] * 6
    heard = Heard()
    cluster = SimCluster(
        PROFILE, counts, arrival_times_s(counts, 0), ClusterSettings(sla_s=10.0), observer=heard
    )
    plan = {0.0: small, 2.0: big}
    stats = cluster.run(lambda now_s: plan.get(now_s) and cluster.apply("video", plan[now_s]), 1.0)
    assert [(at_s, tuple(c.variant.name for c in config)) for at_s, config in heard.switches] == [
        (0.0, ("yolov5n", "resnet18")),
        (7.0, ("yolov5s", "resnet50")),
    ]
    served = sorted(rid for stage, _, _, _, ids in heard.batches if stage == 1 for rid in ids)
    assert len(served) == stats.served == sum(counts)
    for stage, start_s, end_s, variant, ids in heard.batches:
        size = len(ids)
        assert end_s - start_s == pytest.approx(PROFILE.stages[stage].variant(variant).batch(size).latency_s)


def test_overload_drops_requests_and_still_conserves_them() -> None:
    slow = fixed(PROFILE, [("yolov5s", 1, 1), ("resnet50", 1, 1)])
    counts = [30] * 20
    stats = replay(counts, {0.0: slow}, ClusterSettings(sla_s=2.0, drop_timeout_s=3.0))
    assert stats.dropped > 0 and stats.late > 0
    assert stats.requests == stats.served + stats.dropped == sum(counts)
    assert stats.late <= stats.served
    heard = Heard()
    cluster = SimCluster(
        PROFILE, counts, arrival_times_s(counts, 0), ClusterSettings(2.0, drop_timeout_s=3.0), observer=heard
    )
    cluster.apply("video", slow)
    observed = cluster.run(lambda now_s: None, 1.0)
    assert len(heard.drops) == observed.dropped == stats.dropped


def test_the_history_shows_served_in_flight_or_arrivals_as_configured() -> None:
    # One slow replica per stage: 30 req/s for 20 s is far beyond what it serves.
    counts = [30] * 20
    slow = fixed(PROFILE, [("yolov5s", 1, 1), ("resnet50", 1, 1)])
    seen: dict[str, list[tuple[float, float]]] = {}
    signals: tuple[Literal["served", "backlog", "arrivals"], ...] = ("served", "backlog", "arrivals")
    for signal in signals:
        settings = ClusterSettings(sla_s=2.0, demand_signal=signal, rate_window_s=2)
        cluster = SimCluster(PROFILE, counts, arrival_times_s(counts, 0), settings, warm_rps=3.0)
        cluster.apply("video", slow)
        cluster.run(lambda now_s: None, 1.0)
        seen[signal] = list(cluster.request_rate_history("video", 10.0, 12.0))
    served_rps = 1 / PROFILE.stages[0].variant("yolov5s").batch(1).latency_s
    assert [t for t, _ in seen["served"]] == [float(t) for t in range(-1, 11)]
    assert seen["served"][:3] == [(-1.0, 3.0), (0.0, 3.0), (1.0, 3.0)]  # warm, until 2 s are scraped
    # Served saturates at the slow stage's capacity; served + in-flight growth and the arrival
    # counter both see the offered 30 req/s (nothing is dropped within the first 10 s).
    assert all(rate <= served_rps + 1 for _, rate in seen["served"][3:])
    assert all(rate == pytest.approx(30.0) for _, rate in seen["backlog"][3:])
    assert all(rate == pytest.approx(30.0) for _, rate in seen["arrivals"][3:])
    with pytest.raises(QueryError):
        cluster.request_rate_history("nlp", 2.0, 4.0)
    with pytest.raises(ActuationError):
        cluster.apply("nlp", fixed(PROFILE, [("yolov5n", 1, 1), ("resnet18", 1, 1)]))


VARIANTS = [[v.name for v in s.variants] for s in PROFILE.stages]


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(0, 40), min_size=1, max_size=25),
    config=st.tuples(
        *[
            st.tuples(st.sampled_from(names), st.sampled_from([1, 2, 4]), st.integers(1, 3))
            for names in VARIANTS
        ]
    ),
    switch_to=st.tuples(
        *[
            st.tuples(st.sampled_from(names), st.sampled_from([1, 2, 4]), st.integers(1, 3))
            for names in VARIANTS
        ]
    ),
    seed=st.integers(0, 2**16),
)
def test_every_request_is_served_or_dropped(
    counts: list[int],
    config: tuple[tuple[str, int, int], ...],
    switch_to: tuple[tuple[str, int, int], ...],
    seed: int,
) -> None:
    plan = {0.0: fixed(PROFILE, config), 3.0: fixed(PROFILE, switch_to)}
    stats = replay(counts, plan, ClusterSettings(sla_s=1.0, drop_timeout_s=2.0, switch_delay_s=1.5), seed)
    assert stats.requests == stats.served + stats.dropped == sum(counts)
    assert 0 <= stats.late <= stats.served == len(stats.latencies_s)
    assert all(stats.latencies_s > 0)
    assert stats.idle_energy_j > 0 and stats.dynamic_energy_j >= 0


def test_the_node_floor_counts_packed_nodes_over_time() -> None:
    small = fixed(PROFILE, [("yolov5n", 1, 1), ("resnet18", 1, 1)])  # 2 replicas: 1 node of 2
    big = fixed(PROFILE, [("yolov5n", 1, 4), ("resnet18", 1, 1)])  # 5 replicas: 3 nodes of 2
    settings = ClusterSettings(sla_s=1.0, switch_delay_s=5.0, replicas_per_node=2)
    stats = replay([0] * 10, {0.0: small, 2.0: big}, settings)
    assert stats.node_s == pytest.approx(7 * 1 + 3 * 3)
    # Eight per node (the default): both fit on one node.
    assert replay([0] * 10, {0.0: small, 2.0: big}, ClusterSettings(sla_s=1.0)).node_s == pytest.approx(10.0)
    with pytest.raises(ValueError, match="replicas_per_node"):
        ClusterSettings(sla_s=1.0, replicas_per_node=0)


def test_the_runner_adds_the_node_floor_to_the_joules() -> None:
    from adapter.sim.runner import RunSpec, run
    from adapter.solve import get_solver

    counts = [3] * 30
    plain = run(PROFILE, counts, RunSpec("ipa", solver="exhaustive"), get_solver("exhaustive"))
    floored = run(
        PROFILE, counts, RunSpec("ipa", solver="exhaustive", node_idle_power_w=72.0), get_solver("exhaustive")
    )
    assert plain["node_floor_energy_j"] == 0.0 and plain["node_s"] >= 30.0
    assert floored["node_floor_energy_j"] == pytest.approx(72.0 * plain["node_s"])
    assert floored["energy_j"] == pytest.approx(plain["energy_j"] + floored["node_floor_energy_j"])
    with pytest.raises(ValueError, match="node_idle_power_w"):
        run(
            PROFILE,
            counts,
            RunSpec("ipa", solver="exhaustive", node_idle_power_w=-1.0),
            get_solver("exhaustive"),
        )
