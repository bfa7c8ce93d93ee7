"""AdaptLoop with real parts: Prometheus (backfilled), the solvers, the Seldon actuator (fake API)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from adapter.actuate import DryRunActuator, configuration
from adapter.actuate.seldon import SeldonActuator
from adapter.api import create_app
from adapter.loop import MAX_HOLD_S, AdaptLoop, LoopSettings, with_energy
from adapter.metrics import AdapterMetrics
from adapter.predict import MaxWindowPredictor
from adapter.problem import Problem
from adapter.query import ENVOY_IN_FLIGHT, PrometheusQuery
from adapter.settings import AdapterSettings
from adapter.solve import get_solver
from tests.adapter.prom_backfill import backfilled_prometheus, request_counter_lines
from tests.kube import serve_fake_kube
from tests.prom import free_port
from tests.sim.profiles import video_profile

BASE_S = int(time.time()) - 3 * 3600
DETECT_POD = "video-default-0-detect-1a2b"
CLASSIFY_POD = "video-default-1-classify-3c4d"
SLA_S = 2.0


def _rate(t: float) -> float:
    """4 req/s, then a burst to 20 req/s from 300 s on."""
    return 4.0 if t < 300 else 20.0


def _energy_lines() -> list[str]:
    lines = []
    for t in range(0, 601, 5):
        for pod, watts in ((DETECT_POD, 6.0), (CLASSIFY_POD, 2.0)):
            lines.append(
                f'energyd_pod_energy_joules_total{{node_total="true",pod="{pod}",zone="package"}} {watts * t} {BASE_S + t}'
            )
            lines.append(f'model_infer_request_success_total{{pod="{pod}"}} {4.0 * t} {BASE_S + t}')
    return lines


def _demand_lines() -> list[str]:
    """From 300 s on, 25 req/s arrive while 20 are served: the in-flight gauge grows 5/s until
    400 s; the proxy's arrival counter sees all 25."""
    gauge = ["# TYPE envoy_cluster_upstream_rq_active gauge"]
    arrivals = ["# TYPE envoy_cluster_upstream_rq counter"]
    arrived = 0.0
    for t in range(0, 601, 5):
        in_flight = 5.0 * min(max(t - 300, 0), 100)
        gauge.append(f'envoy_cluster_upstream_rq_active{{deployment_name="video"}} {in_flight} {BASE_S + t}')
        # "drain": nothing served, and a backlog of 500 that times out between 300 and 320 s.
        timed_out = 500.0 if t < 300 else max(0.0, 500.0 - 25.0 * (t - 300))
        gauge.append(f'envoy_cluster_upstream_rq_active{{deployment_name="drain"}} {timed_out} {BASE_S + t}')
        arrivals.append(f'envoy_cluster_upstream_rq_total{{deployment_name="video"}} {arrived} {BASE_S + t}')
        arrived += 5 * (4.0 if t < 300 else 25.0)
    return gauge + arrivals


@pytest.fixture(scope="module")
def prometheus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    lines = request_counter_lines("video", BASE_S, 600, _rate) + _energy_lines() + _demand_lines()
    lines += request_counter_lines("drain", BASE_S, 600, lambda t: 0.0)
    with backfilled_prometheus(tmp_path_factory.mktemp("prom"), lines) as url:
        yield url


@pytest.fixture
def query(prometheus_url: str) -> Iterator[PrometheusQuery]:
    with PrometheusQuery(prometheus_url, rate_window_s=30, step_s=10) as q:
        yield q


def make_loop(
    query: PrometheusQuery, actuator: DryRunActuator | SeldonActuator, **kwargs: object
) -> AdaptLoop:
    return AdaptLoop(
        video_profile(),
        LoopSettings(pipeline="video", sla_s=SLA_S),
        query,
        MaxWindowPredictor(window_s=120, headroom=1.0),
        get_solver("exhaustive"),
        actuator,
        **kwargs,  # type: ignore[arg-type]
    )


def test_a_step_provisions_for_the_recent_maximum(query: PrometheusQuery) -> None:
    actuator = DryRunActuator()
    loop = make_loop(query, actuator)
    quiet = loop.step(BASE_S + 200.0)
    assert not quiet.degraded and quiet.changed
    assert quiet.observed_rps == pytest.approx(4.0) and quiet.predicted_rps == pytest.approx(4.0)
    expected = get_solver("exhaustive").solve(Problem(video_profile(), 4.0, SLA_S, utilisation_max=0.8))
    assert loop.problem(4.0).utilisation_max == 0.8  # the loop's default headroom for bursts
    assert quiet.decision is not None
    assert quiet.decision.stages == expected.stages
    assert actuator.applied[-1] == ("video", quiet.decision)

    same = loop.step(BASE_S + 210.0)
    assert same.decision is not None and same.decision.stages == quiet.decision.stages and not same.changed

    burst = loop.step(BASE_S + 400.0)
    assert burst.predicted_rps == pytest.approx(20.0)
    assert burst.changed and burst.decision is not None and burst.decision.feasible
    assert sum(s.replicas for s in burst.decision.stages) > sum(s.replicas for s in quiet.decision.stages)
    assert loop.last is burst


def test_the_offered_load_is_the_arrival_counter_or_served_plus_backlog_growth(prometheus_url: str) -> None:
    at_s = BASE_S + 380.0  # 25 req/s offered, 20 served, for 80 s: past the 30 s rate window
    with PrometheusQuery(prometheus_url, rate_window_s=30, step_s=10) as served:
        assert served.request_rate_history("video", at_s, 10)[-1][1] == pytest.approx(20.0)
    with PrometheusQuery(prometheus_url, rate_window_s=30, backlog_metric=ENVOY_IN_FLIGHT) as backlog:
        assert backlog.request_rate_promql("video") == (
            'clamp_min(sum(rate(seldon_api_executor_server_requests_seconds_count{deployment_name="video"}[30s]))'
            ' + sum(delta(envoy_cluster_upstream_rq_active{deployment_name="video"}[30s])) / 30, 0)'
        )
        # A backlog emptied by timeouts, nothing served: no demand (the sum alone is -500/30).
        assert backlog.request_rate_history("drain", BASE_S + 320.0, 10)[-1][1] == 0.0
        assert backlog.request_rate_history("video", at_s, 10)[-1][1] == pytest.approx(25.0)
        # Once the backlog stops growing (400 s), the estimate is the served rate again.
        assert backlog.request_rate_history("video", BASE_S + 500.0, 10)[-1][1] == pytest.approx(20.0)
    arrival = "envoy_cluster_upstream_rq_total"
    with PrometheusQuery(prometheus_url, rate_window_s=30, arrival_metric=arrival) as counted:
        assert counted.request_rate_history("video", at_s, 10)[-1][1] == pytest.approx(25.0)


def test_prometheus_down_keeps_the_last_decision(query: PrometheusQuery) -> None:
    actuator = DryRunActuator()
    loop = make_loop(query, actuator)
    first = loop.step(BASE_S + 200.0)
    # The same loop state with Prometheus gone (`last` is the loop's public memory).
    with PrometheusQuery(f"http://127.0.0.1:{free_port()}", timeout_s=0.2, retries=0) as gone:
        blind = make_loop(gone, actuator)
        blind.last = loop.last
        down = blind.step(BASE_S + 210.0)
    assert down.degraded and down.reason.startswith("query:") and "unreachable" in down.reason
    assert down.decision is first.decision and not down.changed
    assert down.observed_rps is None and len(actuator.applied) == 1


def test_a_failed_actuation_is_degraded_and_keeps_the_decision(query: PrometheusQuery) -> None:
    with serve_fake_kube() as (_, api):  # no SeldonDeployment "video" there: 404
        loop = make_loop(query, SeldonActuator(api, apply=True))
        result = loop.step(BASE_S + 200.0)
    assert result.degraded and result.reason.startswith("actuation:") and "404" in result.reason
    assert result.decision is None and result.predicted_rps == pytest.approx(4.0)


def test_energy_refresh_replaces_the_running_points_after_settling(query: PrometheusQuery) -> None:
    loop = make_loop(query, DryRunActuator(), energy=query)
    first = loop.step(BASE_S + 100.0)
    assert first.decision is not None
    before = loop.profile
    loop.step(BASE_S + 130.0)  # in force for 30 s < energy_settle_s: nothing measured yet
    assert loop.profile == before
    loop.step(BASE_S + 200.0)
    running = {s.stage: s for s in first.decision.stages}
    # 6 W and 2 W over 4 req/s each.
    for stage, joules in (("detect", 1.5), ("classify", 0.5)):
        choice = running[stage]
        s = next(x for x in loop.profile.stages if x.name == stage)
        assert s.variant(choice.variant).batch(choice.batch).energy_per_request_j == pytest.approx(joules)
    assert loop.profile != before


def test_with_energy_changes_one_point_only() -> None:
    profile = video_profile()
    changed = with_energy(profile, "detect", "yolov5s", 2, 9.5)
    for stage_before, stage_after in zip(profile.stages, changed.stages, strict=True):
        for v_before, v_after in zip(stage_before.variants, stage_after.variants, strict=True):
            for p_before, p_after in zip(v_before.batches, v_after.batches, strict=True):
                hit = (stage_after.name, v_after.name, p_after.size) == ("detect", "yolov5s", 2)
                assert p_after.energy_per_request_j == (9.5 if hit else p_before.energy_per_request_j)


def test_a_manual_apply_is_held_then_the_loop_resumes(query: PrometheusQuery) -> None:
    actuator = DryRunActuator()
    loop = make_loop(query, actuator)
    auto = loop.step(BASE_S + 200.0)
    assert auto.decision is not None
    # By hand (POST /decide with apply): a heavier configuration than the loop's for 4 req/s.
    manual = get_solver("exhaustive").solve(Problem(video_profile(), 12.0, SLA_S))
    assert manual.stages != auto.decision.stages
    actuator.apply("video", manual)
    until_s = loop.hold(manual, BASE_S + 205.0, hold_s=60.0)
    assert until_s == BASE_S + 265.0 and loop.held_until_s(BASE_S + 210.0) == until_s
    held = loop.step(BASE_S + 210.0)
    assert held.decision is manual and not held.changed and held.held_until_s == until_s
    assert actuator.current["video"] == configuration(manual)  # not overwritten
    assert loop.step(BASE_S + 260.0).decision is manual
    resumed = loop.step(BASE_S + 270.0)
    assert resumed.held_until_s is None and loop.held_until_s(BASE_S + 270.0) is None
    assert resumed.changed and resumed.decision is not None and resumed.decision.stages != manual.stages
    with pytest.raises(ValueError, match="hold_s"):
        loop.hold(manual, BASE_S, hold_s=-1.0)


def test_post_decide_with_apply_holds_the_loop(query: PrometheusQuery) -> None:
    actuator = DryRunActuator()
    loop = make_loop(query, actuator)
    metrics = AdapterMetrics()
    app = create_app(
        {"video": video_profile()},
        metrics,
        get_solver,
        actuator,
        MaxWindowPredictor(),
        query,
        AdapterSettings(api_token="t0ken"),
        now_s=lambda: BASE_S + 200.0,
        hold=lambda pipeline, decision, hold_s: loop.hold(decision, BASE_S + 200.0, hold_s),
    )
    auth = {"Authorization": "Bearer t0ken"}
    body = {"pipeline": "video", "sla_s": SLA_S, "arrival_rate_rps": 12.0, "apply": True, "hold_s": 90}
    with TestClient(app) as client:
        answer = client.post("/decide", json=body, headers=auth)
        assert answer.status_code == 200 and answer.json()["held_until_s"] == BASE_S + 290.0
        exposed = {
            sample.name: sample.value
            for family in text_string_to_metric_families(client.get("/metrics").text)
            for sample in family.samples
            if sample.labels == {"pipeline": "video"}
        }
        assert exposed["adapter_hold_end_timestamp_seconds"] == BASE_S + 290.0
        kept = loop.step(BASE_S + 210.0)
        assert kept.held_until_s == BASE_S + 290.0 and not kept.changed
        assert [s.to_json() for s in kept.decision.stages] == answer.json()["stages"]  # type: ignore[union-attr]
        too_long = client.post("/decide", json={**body, "hold_s": MAX_HOLD_S + 1}, headers=auth)
        assert too_long.status_code == 422 and "hold_s" in too_long.json()["detail"]
        what_if = client.post("/decide", json={**body, "apply": False})
        assert what_if.json()["held_until_s"] is None


def test_loop_settings_refuse_what_would_disable_the_controller_silently() -> None:
    for field in ("scale_down_window_s", "switch_cost", "min_dwell_s"):
        with pytest.raises(ValueError, match=field):
            LoopSettings(pipeline="video", sla_s=1.0, **{field: -1.0})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="utilisation_max"):
        LoopSettings(pipeline="video", sla_s=1.0, utilisation_max=0.0)
    # No window at all: each step provisions for its own prediction (and does not fail).
    assert LoopSettings(pipeline="video", sla_s=1.0, scale_down_window_s=0.0).scale_down_window_s == 0.0


def test_without_a_window_the_loop_follows_its_last_prediction(query: PrometheusQuery) -> None:
    loop = AdaptLoop(
        video_profile(),
        LoopSettings(pipeline="video", sla_s=SLA_S, scale_down_window_s=0.0),
        query,
        MaxWindowPredictor(window_s=20, headroom=1.0),
        get_solver("exhaustive"),
        DryRunActuator(),
    )
    burst = loop.step(BASE_S + 400.0)
    assert burst.decision is not None and burst.decision.arrival_rate_rps == pytest.approx(20.0)
    again = loop.step(BASE_S + 410.0)
    assert again.decision is not None and again.decision.arrival_rate_rps == pytest.approx(20.0)
