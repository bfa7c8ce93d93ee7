"""POST /decide and /healthz under hostile clients and a broken Prometheus (issue 10): every
request is refused naming its field or answered with finite numbers, quickly; nothing a client
sends grows memory or hangs the adapter."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from adapter import limits
from adapter.actuate import DryRunActuator
from adapter.api import INLINE_PIPELINE_LABEL, create_app
from adapter.errors import QueryError
from adapter.loop import LoadHistory, RateSample
from adapter.metrics import AdapterMetrics
from adapter.predict import MaxWindowPredictor
from adapter.query import PrometheusQuery
from adapter.settings import AdapterSettings
from tests.prom import free_port
from tests.sim.profiles import video_profile

TOKEN = "hostile-test-token"


def make_app(load: LoadHistory | None = None, metrics: AdapterMetrics | None = None) -> Any:
    from adapter.solve import get_solver

    return create_app(
        {"video": video_profile()},
        metrics or AdapterMetrics(),
        get_solver,
        DryRunActuator(),
        MaxWindowPredictor(headroom=1.1),
        load,
        AdapterSettings(api_token=TOKEN),
        now_s=lambda: 1_700_000_000.0,
    )


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(make_app()) as c:
        yield c


def inline(**point: Any) -> dict[str, Any]:
    """A one-stage profile whose one measured point takes `point`'s values."""
    batch = {"size": 1, "latency_s": 0.1, "energy_per_request_j": 0.5, **point}
    variant = {"name": "v", "accuracy": 50.0, "cores": 1, "idle_power_w": 1.0, "batches": [batch]}
    return {"pipeline": "adhoc", "stages": [{"name": "s", "variants": [variant]}]}


def numbers(value: Any) -> Iterator[float]:
    if isinstance(value, dict):
        for v in value.values():
            yield from numbers(v)
    elif isinstance(value, list):
        for v in value:
            yield from numbers(v)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield float(value)


VIDEO = {"pipeline": "video", "sla_s": 2.0, "arrival_rate_rps": 5.0}
TOO_MANY_STAGES = {
    **inline(),
    "stages": [{**inline()["stages"][0], "name": f"s{i}"} for i in range(limits.MAX_STAGES + 1)],
}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"arrival_rate_rps": 1e30}, "arrival_rate_rps"),  # hung the adapter for good
        ({"replicas_max": 10**6}, "replicas_max"),
        ({"batch_sizes": [1, 10**9]}, "batch_sizes"),
        ({"batch_sizes": list(range(1, 200))}, "batch_sizes"),
        ({"sla_s": 1e12}, "sla_s"),
        ({"weights": {"gamma": 1e308}}, "weights.gamma"),  # IndexError in the frontier: 500
        ({"weights": {"alpha": 1e308}}, "weights.alpha"),  # "objective": null
        ({"sla_s": "2"}, "sla_s"),  # coerced
        ({"replicas_max": True}, "replicas_max"),  # coerced
        ({"apply": "yes"}, "apply"),
        ({"pipeline": inline(throughput_rps=5e-324)}, "throughput_rps"),  # OverflowError: 500
        ({"pipeline": inline(latency_s=5e-324)}, "batches[0]"),  # size / latency_s overflows
        ({"pipeline": inline(energy_per_request_j=1e308)}, "energy_per_request_j"),
        (
            {
                "pipeline": {
                    **inline(),
                    "stages": [
                        {"name": "s", "variants": [{**inline()["stages"][0]["variants"][0], "cores": 1e308}]}
                    ],
                }
            },
            "cores",
        ),
        ({"pipeline": TOO_MANY_STAGES}, "stages"),
    ],
)
def test_out_of_bounds_input_is_422_naming_the_field(
    client: TestClient, changes: dict[str, Any], field: str
) -> None:
    response = client.post("/decide", json={**VIDEO, **changes})
    assert response.status_code == 422, response.text
    assert field in response.json()["field"]


@pytest.mark.parametrize(
    ("pipeline", "rate_rps"),
    [
        (inline(size=limits.MAX_BATCH_SIZE, throughput_rps=1.0), 1e-300),  # "queue_s": null
        (inline(throughput_rps=limits.MIN_THROUGHPUT_RPS), limits.MAX_ARRIVAL_RATE_RPS),  # 1e12 replicas
        (inline(), limits.MAX_ARRIVAL_RATE_RPS),
    ],
)
def test_extremes_within_bounds_are_answered_with_finite_numbers(
    client: TestClient, pipeline: dict[str, Any], rate_rps: float
) -> None:
    body = {
        "pipeline": pipeline,
        "sla_s": limits.MAX_SLA_S,
        "arrival_rate_rps": rate_rps,
        "replicas_max": 1000,
    }
    response = client.post("/decide", json=body)
    assert response.status_code == 200, response.text
    assert all(math.isfinite(x) for x in numbers(response.json()))


def test_inline_profiles_share_one_metrics_label(client: TestClient) -> None:
    for i in range(20):
        profile = {**inline(), "pipeline": f"adhoc-{i}"}
        assert client.post("/decide", json={**VIDEO, "pipeline": profile}).status_code == 200
    exposition = client.get("/metrics").text
    assert "adhoc-" not in exposition
    assert f'pipeline="{INLINE_PIPELINE_LABEL}"' in exposition


def test_apply_is_only_for_configured_pipelines(client: TestClient) -> None:
    body = {**VIDEO, "pipeline": inline(), "apply": True}
    response = client.post("/decide", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 422 and response.json()["field"] == "pipeline"


def test_a_body_past_the_limit_is_413(client: TestClient) -> None:
    big = json.dumps({**VIDEO, "pipeline": "x" * (limits.MAX_BODY_BYTES + 1)}).encode()
    assert (
        client.post("/decide", content=big, headers={"content-type": "application/json"}).status_code == 413
    )

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for i in range(0, len(big), 64 * 1024):
            yield big[i : i + 64 * 1024]

    response = client.post("/decide", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json()["field"] == "(body)"


def test_errors_quote_a_short_prefix_of_what_they_refuse(client: TestClient) -> None:
    long_name = "n" * 200_000
    for body in ({**VIDEO, "pipeline": long_name}, {**VIDEO, long_name: 1}):
        response = client.post("/decide", json=body)
        assert response.status_code == 422
        assert len(response.content) < 2000, response.content[:200]


def test_the_response_states_its_sla(client: TestClient) -> None:
    assert client.post("/decide", json=VIDEO).json()["sla_s"] == 2.0


@pytest.mark.parametrize(
    "answer",
    [[1, 2], {"status": "success"}, {"status": "success", "data": {"resultType": "matrix", "result": None}}],
)
def test_garbage_from_prometheus_is_503_not_500(answer: Any) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=answer))
    query = PrometheusQuery("http://prometheus", retries=0, client=httpx.Client(transport=transport))
    with TestClient(make_app(query)) as client:
        response = client.post("/decide", json={"pipeline": "video", "sla_s": 2.0})
        assert response.status_code == 503, response.text
        assert client.get("/healthz").json()["status"] == "ok"  # a caller's failure is not ours


class BlockedPrometheus:
    """A LoadHistory that never answers until released: the Prometheus that hangs."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.waiting = threading.Semaphore(0)

    def request_rate_history(self, pipeline: str, now_s: float, window_s: float) -> Sequence[RateSample]:
        self.waiting.release()
        self.release.wait(60)
        raise QueryError("released")


def test_healthz_answers_while_every_worker_waits_on_prometheus() -> None:
    blocked = BlockedPrometheus()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(make_app(blocked), host="127.0.0.1", port=port, log_level="warning")
    )
    serving = threading.Thread(target=server.run, daemon=True)
    serving.start()
    url = f"http://127.0.0.1:{port}"
    callers: list[threading.Thread] = []
    try:
        for _ in range(200):
            if server.started:
                break
            threading.Event().wait(0.05)

        def decide() -> None:
            httpx.post(f"{url}/decide", json={"pipeline": "video", "sla_s": 2.0}, timeout=90)

        callers = [threading.Thread(target=decide, daemon=True) for _ in range(45)]
        for caller in callers:
            caller.start()
        for _ in range(40):  # the threadpool's 40 workers, each stuck in a query
            assert blocked.waiting.acquire(timeout=30)
        response = httpx.get(f"{url}/healthz", timeout=10)
        assert response.status_code == 200 and response.json()["status"] == "ok"
        assert httpx.get(f"{url}/metrics", timeout=10).status_code == 200
    finally:
        blocked.release.set()
        for caller in callers:
            caller.join(30)
        server.should_exit = True
        serving.join(30)


def test_no_caller_can_wedge_the_solver(client: TestClient) -> None:
    # With the limits, the largest instance the exhaustive oracle would walk is refused before
    # any walking: replicas_max at its limit over the video profile's choices.
    body = {**VIDEO, "solver": "exhaustive", "replicas_max": limits.MAX_REPLICAS, "arrival_rate_rps": 1e5}
    response = client.post("/decide", json=body)
    assert response.status_code in (200, 422), response.text
    assert response.status_code == 200 or response.json()["field"] == "solver"
