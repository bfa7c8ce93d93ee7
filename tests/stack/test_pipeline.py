"""The simulator's cluster replayed tick by tick: the stand-in reports exactly what SimCluster did
(every arrival, every served request, each batch's CPU time) and applies what it is asked."""

from __future__ import annotations

import itertools

import pytest

from adapter.sim.cluster import ClusterSettings, StageConfig
from adapter.standin.pipeline import PacedPipeline, Tick, initial_config
from tests.sim.profiles import video_profile

PROFILE = video_profile(3, (1, 2, 4))
SETTINGS = ClusterSettings(sla_s=5.0, switch_delay_s=2.0)


def _unpaced() -> itertools.count[float]:
    # Each reading is far past the last: the replay never waits, so the test runs at full speed.
    return itertools.count(0.0, 1e6)


def _replay(counts: list[int], until_s: float, on_tick: object = None) -> tuple[PacedPipeline, list[Tick]]:
    ticks: list[Tick] = []
    clock = _unpaced()
    pipeline: PacedPipeline

    def collect(tick: Tick) -> None:
        ticks.append(tick)
        if callable(on_tick):
            on_tick(pipeline, tick)
        if tick.end_s >= until_s:
            pipeline.stop()

    pipeline = PacedPipeline(PROFILE, counts, collect, SETTINGS, interval_s=0.5, clock=lambda: next(clock))
    pipeline.run()
    return pipeline, ticks


def test_every_request_arrives_is_served_and_costs_its_cpu_time() -> None:
    counts = [6] * 30
    _, ticks = _replay(counts, until_s=40.0)
    assert ticks[0].config == initial_config(PROFILE)
    first_pass = [t for t in ticks if t.end_s <= 30.0]
    assert sum(t.arrived for t in first_pass) == sum(counts)
    latencies = [s for t in ticks for s in t.latencies_s]
    # Served as they arrive: at most the last fraction of a second's requests are in flight.
    assert 0 <= sum(t.arrived for t in ticks) - len(latencies) <= 3
    # One replica each at batch 1: every request takes the two batch-1 latencies (0.06 + 0.04 s)
    # at least, and nothing queues for long at 6 requests/s.
    assert min(latencies) >= 0.1 - 1e-9 and max(latencies) < 1.0
    # Each served request cost one batch-1 run of each stage (a few more are in flight).
    detect_s = sum(t.stage_cpu_s[0] for t in ticks)
    classify_s = sum(t.stage_cpu_s[1] for t in ticks)
    assert detect_s == pytest.approx(len(latencies) * 0.06, abs=3 * 0.06)
    assert classify_s == pytest.approx(len(latencies) * 0.04, abs=3 * 0.04)
    for tick in ticks:  # one single-core replica per stage can compute at most the tick's length
        assert all(0.0 <= s <= 0.5 + 1e-9 for s in tick.stage_cpu_s)


def test_a_requested_configuration_takes_effect_after_the_switch_delay() -> None:
    wanted = (
        StageConfig(PROFILE.stages[0].variant("yolov5s"), 2, 2),
        StageConfig(PROFILE.stages[1].variant("resnet50"), 4, 1),
    )

    def ask(pipeline: PacedPipeline, tick: Tick) -> None:
        if tick.end_s == 5.0:
            pipeline.request(wanted)

    pipeline, ticks = _replay([8] * 20, until_s=12.0, on_tick=ask)
    switched = [t for t in ticks if t.config is not None]
    assert [t.config for t in switched] == [initial_config(PROFILE), wanted]
    # Asked at 5 s, handed to the simulation at the next tick (5.5 s), in force 2 s later.
    assert switched[1].end_s == 7.5
    assert pipeline.config == wanted
    # Two replicas of detect now share the work: more CPU per tick than one replica could give.
    assert max(t.stage_cpu_s[0] for t in ticks if t.start_s >= 7.5) <= 2 * 0.5 + 1e-9


def test_a_configuration_that_does_not_fit_is_refused() -> None:
    pipeline = PacedPipeline(PROFILE, [1], lambda _t: None, SETTINGS)
    with pytest.raises(Exception, match="1 stages for a 2-stage pipeline"):
        pipeline.request(initial_config(PROFILE)[:1])


def test_under_overload_drops_are_reported_and_in_flight_stays_whole() -> None:
    # One replica of yolov5n at batch 1 serves ~16 req/s: at 40 req/s the queue grows, and what
    # waits past the drop timeout (10 s) is dropped.
    _, ticks = _replay([40] * 30, until_s=30.0)
    arrived = sum(t.arrived for t in ticks)
    served = sum(len(t.latencies_s) for t in ticks)
    dropped = sum(t.dropped for t in ticks)
    assert dropped > 0 and served > 0
    in_flight = arrived - served - dropped
    # Still in flight at 30 s: about the 10 s of queue a drop timeout lets wait, plus the second
    # the drop is taken late (a request is dropped when it reaches the head of the queue).
    assert 0 < in_flight <= 11 * 40
