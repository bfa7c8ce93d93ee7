"""The REST API through FastAPI's TestClient, with real solvers, a real (backfilled) Prometheus,
and the real `adapter run` server as a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from adapter.actuate import DryRunActuator
from adapter.api import create_app
from adapter.metrics import AdapterMetrics
from adapter.predict import MaxWindowPredictor
from adapter.problem import Problem, Weights
from adapter.query import PrometheusQuery
from adapter.settings import AdapterSettings
from adapter.solve import get_solver
from tests.adapter.prom_backfill import backfilled_prometheus, request_counter_lines
from tests.prom import free_port, start_prometheus
from tests.sim.profiles import video_profile

BASE_S = int(time.time()) - 3 * 3600
TOKEN = "s3cret-token"
RESPONSE_KEYS = {
    "feasible", "objective", "stages", "pas", "cores", "power_w", "latency_s", "arrival_rate_rps",
    "solver", "solve_time_s", "binding", "applied",
}  # fmt: skip


def sample(metrics: AdapterMetrics, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None


@pytest.fixture(scope="module")
def prometheus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with backfilled_prometheus(
        tmp_path_factory.mktemp("prom"), request_counter_lines("video", BASE_S, 600, lambda t: 12.0)
    ) as url:
        yield url


@pytest.fixture
def build(prometheus_url: str) -> Iterator[Callable[..., tuple[TestClient, AdapterMetrics, DryRunActuator]]]:
    opened: list[Any] = []

    def make(
        token: str | None = TOKEN, prometheus: str | None = None, weights: Weights | None = None
    ) -> tuple[TestClient, AdapterMetrics, DryRunActuator]:
        metrics, actuator = AdapterMetrics(), DryRunActuator()
        query = PrometheusQuery(prometheus or prometheus_url, timeout_s=0.5, retries=0)
        settings = AdapterSettings(api_token=token, weights=weights or Weights())
        app = create_app(
            {"video": video_profile()},
            metrics,
            get_solver,
            actuator,
            MaxWindowPredictor(headroom=1.1),
            query,
            settings,
            now_s=lambda: BASE_S + 400.0,
        )
        client = TestClient(app)
        opened.extend([query, client])
        return client, metrics, actuator

    yield make
    for thing in opened:
        thing.close()


def test_decide_by_name_answers_what_the_solver_answers(build: Callable[..., Any]) -> None:
    client, metrics, actuator = build()
    response = client.post("/decide", json={"pipeline": "video", "sla_s": 2.0, "arrival_rate_rps": 12.5})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) >= RESPONSE_KEYS
    expected = get_solver("exhaustive").solve(Problem(video_profile(), 12.5, 2.0)).to_json()
    assert body["feasible"] is True and body["binding"] is None
    assert body["stages"] == expected["stages"]
    assert body["objective"] == pytest.approx(expected["objective"])
    assert body["arrival_rate_rps"] == 12.5 and body["predicted"] is False
    assert body["applied"] is False and not actuator.applied
    assert (
        sample(metrics, "adapter_decisions_total", pipeline="video", solver=body["solver"], feasible="true")
        == 1
    )
    assert sample(metrics, "adapter_solve_duration_seconds_count", solver=body["solver"]) == 1
    # A what-if decision does not touch the configuration gauges.
    assert sample(metrics, "adapter_stage_replicas", pipeline="video", stage="detect") is None


def test_decide_with_a_whole_profile_and_every_option(build: Callable[..., Any]) -> None:
    client, _, _ = build()
    profile = video_profile().model_dump(mode="json", exclude_none=True)
    profile["pipeline"] = "adhoc"
    request = {
        "pipeline": profile,
        "sla_s": 3.0,
        "arrival_rate_rps": 20,
        "weights": {"gamma": 0.05},
        "replicas_min": 2,
        "replicas_max": 8,
        "batch_sizes": [1, 2],
        "solver": "exhaustive",
    }
    body = client.post("/decide", json=request).json()
    problem = Problem(video_profile(), 20.0, 3.0, Weights(gamma=0.05), 2, 8, (1, 2))
    expected = get_solver("exhaustive").solve(problem)
    assert body["solver"] == "exhaustive"
    assert body["objective"] == pytest.approx(expected.objective)
    assert all(2 <= s["replicas"] <= 8 and s["batch"] in (1, 2) for s in body["stages"])


def test_an_unreachable_sla_is_answered_with_the_best_effort(build: Callable[..., Any]) -> None:
    client, metrics, _ = build()
    body = client.post("/decide", json={"pipeline": "video", "sla_s": 0.01, "arrival_rate_rps": 5}).json()
    assert body["feasible"] is False and body["binding"] == "latency" and len(body["stages"]) == 2
    assert sample(metrics, "adapter_decisions_total", pipeline="video", feasible="false") == 1


@pytest.mark.parametrize(
    ("request_body", "field"),
    [
        ({"pipeline": "video"}, "sla_s"),
        ({"pipeline": "video", "sla_s": -1}, "sla_s"),
        ({"pipeline": "video", "sla_s": 1, "arrival_rate_rps": -3}, "arrival_rate_rps"),
        ({"pipeline": "video", "sla_s": 1, "weights": {"alpha": -1}}, "weights.alpha"),
        ({"pipeline": "video", "sla_s": 1, "replicas_min": 0}, "replicas_min"),
        ({"pipeline": "video", "sla_s": 1, "replicas_min": 9, "replicas_max": 3}, "replicas_min"),
        ({"pipeline": "video", "sla_s": 1, "batch_sizes": [3]}, "batch_sizes"),
        ({"pipeline": "video", "sla_s": 1, "solver": "cplex"}, "solver"),
        ({"pipeline": "video", "sla_s": 1, "sla": 2}, "sla"),
        ({"pipeline": "nlp", "sla_s": 1}, "pipeline"),
        ({"pipeline": {"pipeline": "x", "stages": []}, "sla_s": 1}, "stages"),
    ],
)
def test_malformed_input_is_422_naming_the_field(
    build: Callable[..., Any], request_body: dict[str, Any], field: str
) -> None:
    client, _, _ = build()
    response = client.post("/decide", json={"arrival_rate_rps": 1.0, **request_body})
    assert response.status_code == 422
    assert field in response.json()["detail"]


def test_an_instance_too_large_for_the_oracle_is_422(build: Callable[..., Any]) -> None:
    client, _, _ = build()
    profile = video_profile(variants_per_stage=4).model_dump(mode="json", exclude_none=True)
    stage = profile["stages"][0]
    profile["stages"] = [{**stage, "name": f"s{i}"} for i in range(6)]  # 16^6 combinations
    request = {"pipeline": profile, "sla_s": 30, "arrival_rate_rps": 1, "solver": "exhaustive"}
    response = client.post("/decide", json=request)
    assert response.status_code == 422 and response.json()["detail"].startswith("solver: ")
    assert client.post("/decide", json={**request, "solver": "auto"}).json()["feasible"] is True


def test_a_bad_profile_object_names_the_nested_field(build: Callable[..., Any]) -> None:
    client, _, _ = build()
    profile = video_profile().model_dump(mode="json", exclude_none=True)
    profile["stages"][1]["variants"][0]["accuracy"] = 150
    response = client.post("/decide", json={"pipeline": profile, "sla_s": 2, "arrival_rate_rps": 1})
    assert response.status_code == 422
    assert response.json()["field"] == "stages[1].variants[0].accuracy"


def test_apply_needs_the_bearer_token(build: Callable[..., Any]) -> None:
    request = {"pipeline": "video", "sla_s": 2.0, "arrival_rate_rps": 12.5, "apply": True}
    unconfigured, _, _ = build(token=None)
    assert (
        unconfigured.post("/decide", json=request, headers={"Authorization": "Bearer x"}).status_code == 403
    )

    client, metrics, actuator = build()
    assert client.post("/decide", json=request).status_code == 401
    assert client.post("/decide", json=request, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert (
        client.post("/decide", json=request, headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
    )
    assert not actuator.applied

    ok = client.post("/decide", json=request, headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200
    body = ok.json()
    assert body["applied"] is True and body["changed"] is True and body["dry_run"] is True
    [(pipeline, decision)] = actuator.applied
    assert pipeline == "video" and [s.to_json() for s in decision.stages] == body["stages"]
    for stage in body["stages"]:
        labels = {"pipeline": "video", "stage": stage["stage"]}
        assert sample(metrics, "adapter_stage_replicas", **labels) == stage["replicas"]
        assert sample(metrics, "adapter_stage_batch_size", **labels) == stage["batch"]
        assert sample(metrics, "adapter_stage_variant_info", variant=stage["variant"], **labels) == 1
    assert sample(metrics, "adapter_sla_seconds", pipeline="video") == 2.0
    assert sample(metrics, "adapter_pas", pipeline="video") == pytest.approx(body["pas"])


def test_an_absent_rate_is_predicted_from_prometheus(build: Callable[..., Any]) -> None:
    client, metrics, _ = build()
    body = client.post("/decide", json={"pipeline": "video", "sla_s": 2.0}).json()
    assert body["predicted"] is True
    assert body["arrival_rate_rps"] == pytest.approx(12.0 * 1.1)  # the backfilled 12 req/s, headroom 1.1
    assert client.get("/healthz").json()["status"] == "ok"
    assert sample(metrics, "adapter_degraded") == 0


def test_prometheus_down_is_503_and_no_caller_sets_the_health(build: Callable[..., Any]) -> None:
    client, metrics, _ = build(prometheus=f"http://127.0.0.1:{free_port()}")
    response = client.post("/decide", json={"pipeline": "video", "sla_s": 2.0})
    assert response.status_code == 503
    assert "cannot be predicted" in response.json()["detail"] and "unreachable" in response.json()["detail"]
    # Health reflects the loop's own steps: a caller's failed prediction marks nothing (issue 10).
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert client.get("/healthz", params={"strict": "true"}).status_code == 200
    assert sample(metrics, "adapter_degraded") == 0
    # An explicit rate needs no Prometheus.
    assert (
        client.post("/decide", json={"pipeline": "video", "sla_s": 2.0, "arrival_rate_rps": 3}).status_code
        == 200
    )


def test_metrics_and_docs_are_served(build: Callable[..., Any]) -> None:
    client, _, _ = build()
    client.post("/decide", json={"pipeline": "video", "sla_s": 2.0, "arrival_rate_rps": 1})
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    assert "adapter_decisions_total{" in metrics.text and "adapter_degraded 0.0" in metrics.text
    assert client.get("/docs").status_code == 200
    assert "/decide" in client.get("/openapi.json").json()["paths"]


def test_variant_series_follow_the_variant_in_force() -> None:
    metrics = AdapterMetrics()
    profile = video_profile()
    solver = get_solver("exhaustive")
    light = solver.solve(Problem(profile, 30.0, 0.5))
    heavy = solver.solve(Problem(profile, 1.0, 10.0))
    assert light.stages[0].variant != heavy.stages[0].variant
    metrics.set_in_force(profile, light, 0.5)
    metrics.set_in_force(profile, heavy, 10.0)
    for stage in heavy.stages:
        families = {s.labels["variant"] for f in text_string_to_metric_families(metrics.exposition().decode())
                    for s in f.samples if s.name == "adapter_stage_variant_info" and s.labels["stage"] == stage.stage}  # fmt: skip
        assert families == {stage.variant}
        point = (
            profile.stages[[s.name for s in profile.stages].index(stage.stage)]
            .variant(stage.variant)
            .batch(stage.batch)
        )
        assert sample(
            metrics, "adapter_stage_energy_per_request_joules", stage=stage.stage, variant=stage.variant
        ) == (pytest.approx(point.energy_per_request_j))


# --- the real server -----------------------------------------------------------------------


class SeldonRequests(Collector):
    """Seldon v1's request counter of pipeline "video", growing at 8 req/s of wall time."""

    def __init__(self) -> None:
        self.started_s = time.time()

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import SummaryMetricFamily

        count = int(8 * (time.time() - self.started_s))
        family = SummaryMetricFamily(
            "seldon_api_executor_server_requests_seconds", "", labels=["deployment_name"]
        )
        family.add_metric(["video"], count_value=count, sum_value=0.05 * count)
        yield family


def _serve(profiles: Path, prometheus_url: str, port: int) -> subprocess.Popen[str]:
    env = {**os.environ, "ADAPTER_API_TOKEN": TOKEN}
    command = [
        sys.executable, "-m", "adapter", "run", "--port", str(port), "--profiles", str(profiles),
        "--prometheus-url", prometheus_url, "--interval", "1", "--sla-s", "2", "--rate-window", "3", "--log-level", "WARNING",
    ]  # fmt: skip
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_healthy(process: subprocess.Popen[str], url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[0]
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError("adapter run did not answer /healthz")


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=20)
    assert process.returncode == 0, output
    return output


@pytest.fixture
def profiles_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "profiles"
    directory.mkdir()
    (directory / "video.json").write_text(
        json.dumps(video_profile().model_dump(mode="json", exclude_none=True))
    )
    return directory


def test_adapter_run_against_a_real_prometheus(profiles_dir: Path) -> None:
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry()
    registry.register(SeldonRequests())
    exporter_port = free_port()
    server, thread = start_http_server(exporter_port, addr="127.0.0.1", registry=registry)
    try:
        with start_prometheus([f"127.0.0.1:{exporter_port}"], scrape_interval_s=1) as prom:
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            process = _serve(profiles_dir, prom, port)
            try:
                _wait_healthy(process, url)
                deadline = time.monotonic() + 30
                observed = 0.0
                # rate() extrapolates over its window, so it is low until the window is full.
                while abs(observed - 8.0) > 2.0 and time.monotonic() < deadline:
                    time.sleep(0.5)
                    text = httpx.get(f"{url}/metrics").text
                    for family in text_string_to_metric_families(text):
                        for s in family.samples:
                            if s.name == "adapter_observed_requests_per_second":
                                observed = s.value
                assert observed == pytest.approx(8.0, abs=2.0)
                assert httpx.get(f"{url}/healthz").json()["status"] == "ok"
                predicted = httpx.post(f"{url}/decide", json={"pipeline": "video", "sla_s": 2.0}).json()
                assert predicted["predicted"] is True and predicted["arrival_rate_rps"] == pytest.approx(
                    8.8, rel=0.25
                )
                assert "adapter_stage_replicas{" in httpx.get(f"{url}/metrics").text
            finally:
                _stop(process)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_adapter_run_with_prometheus_unreachable_is_degraded(profiles_dir: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = _serve(profiles_dir, f"http://127.0.0.1:{free_port()}", port)
    try:
        _wait_healthy(process, url)
        deadline = time.monotonic() + 20
        while httpx.get(f"{url}/healthz").json()["status"] != "degraded":
            assert time.monotonic() < deadline, "never reported degraded"
            time.sleep(0.2)
        assert "loop:video" in httpx.get(f"{url}/healthz").json()["reasons"]
        assert "adapter_degraded 1.0" in httpx.get(f"{url}/metrics").text
        assert httpx.post(f"{url}/decide", json={"pipeline": "video", "sla_s": 2.0}).status_code == 503
        answer = httpx.post(f"{url}/decide", json={"pipeline": "video", "sla_s": 2.0, "arrival_rate_rps": 4})
        assert answer.status_code == 200 and answer.json()["feasible"] is True
        assert process.poll() is None
    finally:
        _stop(process)
