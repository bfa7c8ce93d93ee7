"""PrometheusQuery against a real Prometheus serving backfilled series."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from adapter.errors import QueryError
from adapter.query import PrometheusQuery
from tests.adapter.prom_backfill import backfilled_prometheus, request_counter_lines
from tests.prom import free_port

BASE_S = int(time.time()) - 3 * 3600  # inside the default 15 d retention, well before the head
MakeQuery = Callable[..., PrometheusQuery]
POD = "video-default-0-detect-7d9f"
OTHER_POD = "video-default-1-classify-5c2a"


def _rate(t: float) -> float:
    """10 req/s for 5 minutes, then 30 req/s."""
    return 10.0 if t < 300 else 30.0


def _pod_lines() -> list[str]:
    lines = ["# TYPE energyd_pod_energy_joules counter", "# TYPE model_infer_request_success counter"]
    for t in range(0, 601, 5):
        ts = BASE_S + t
        for pod, watts, rps in ((POD, 12.0, 8.0), (OTHER_POD, 3.0, 8.0)):
            # core sits inside package, as on RAPL: energyd marks it node_total="false".
            for zone, share, total in (
                ("package", 0.75, "true"),
                ("dram", 0.25, "true"),
                ("core", 0.5, "false"),
            ):
                lines.append(
                    f'energyd_pod_energy_joules_total{{namespace="default",node_total="{total}",pod="{pod}",'
                    f'zone="{zone}"}} {watts * share * t} {ts}'
                )
            lines.append(f'model_infer_request_success_total{{pod="{pod}"}} {rps * t} {ts}')
    return lines


@pytest.fixture(scope="module")
def prometheus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    lines = request_counter_lines("video", BASE_S, 600, _rate) + _pod_lines()
    with backfilled_prometheus(tmp_path_factory.mktemp("prom"), lines) as url:
        yield url


@pytest.fixture
def make_query() -> Iterator[Callable[..., PrometheusQuery]]:
    made: list[PrometheusQuery] = []

    def make(*args: Any, **kwargs: Any) -> PrometheusQuery:
        made.append(PrometheusQuery(*args, **kwargs))
        return made[-1]

    yield make
    for query in made:
        query.close()


def test_request_rate_history_follows_the_series(prometheus_url: str, make_query: MakeQuery) -> None:
    query = make_query(prometheus_url, rate_window_s=30, step_s=10)
    history = query.request_rate_history("video", BASE_S + 400, 120)
    times = [t for t, _ in history]
    assert times == [float(BASE_S + 400 - 110 + 10 * i) for i in range(12)]
    # The counter's slope: 10/s until 300 s, 30/s after; windows straddling the step mix both.
    assert history[0][1] == pytest.approx(10.0)
    assert history[-1][1] == pytest.approx(30.0)
    assert all(10.0 - 1e-9 <= rate <= 30.0 + 1e-9 for _, rate in history)


def test_a_pipeline_without_series_is_an_error(prometheus_url: str, make_query: MakeQuery) -> None:
    with pytest.raises(QueryError, match=r"no series for .*deployment_name=\"nlp\""):
        make_query(prometheus_url).request_rate_history("nlp", BASE_S + 400, 120)


def test_label_values_are_quoted(prometheus_url: str, make_query: MakeQuery) -> None:
    # A quote in a name must not break (or inject into) the PromQL selector.
    with pytest.raises(QueryError, match="no series"):
        make_query(prometheus_url).request_rate_history('vi"deo', BASE_S + 400, 120)


def test_p99_latency_from_the_histogram(prometheus_url: str, make_query: MakeQuery) -> None:
    query = make_query(prometheus_url)
    # 90 % of requests under 0.5 s, the rest in +Inf: quantile 0.99 is the highest finite bucket.
    assert query.p99_latency_s("video", BASE_S + 400) == pytest.approx(0.5)
    assert query.p99_latency_s("nlp", BASE_S + 400) is None


def test_energy_per_request_sums_the_node_total_zones_over_the_pods(
    prometheus_url: str, make_query: MakeQuery
) -> None:
    query = make_query(prometheus_url)
    # One pod: 12 W over 8 req/s; both pods: 15 W over 16 req/s.
    assert query.stage_energy_per_request_j("video", "detect", BASE_S + 400) == pytest.approx(12.0 / 8.0)
    assert query.energy_per_request_j("video-.*", BASE_S + 400) == pytest.approx(15.0 / 16.0)
    assert query.stage_energy_per_request_j("video", "missing", BASE_S + 400) is None
    package_only = make_query(prometheus_url, energy_matchers='zone="package"')
    assert package_only.stage_energy_per_request_j("video", "detect", BASE_S + 400) == pytest.approx(
        0.75 * 12.0 / 8.0
    )


def test_a_bad_query_fails_at_once(prometheus_url: str, make_query: MakeQuery) -> None:
    slept: list[float] = []
    query = make_query(prometheus_url, retries=3, sleep=slept.append, request_metric="not a metric(")
    with pytest.raises(QueryError, match="bad_data"):
        query.request_rate_history("video", BASE_S + 400, 120)
    assert slept == []  # a 4xx is not retried


def test_unreachable_prometheus_is_retried_then_a_query_error(make_query: MakeQuery) -> None:
    slept: list[float] = []
    query = make_query(f"http://127.0.0.1:{free_port()}", timeout_s=0.5, retries=2, sleep=slept.append)
    with pytest.raises(QueryError, match=r"unreachable.*after 3 attempts"):
        query.request_rate_history("video", time.time(), 120)
    assert slept == [0.2, 0.4]


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="retries"):
        PrometheusQuery("http://127.0.0.1:9090", retries=-1)


# --- garbage from Prometheus (issue 10): each answer is what a broken or hostile server sent ---

NOW_S = 1_700_000_000.0


def _answering(body: Any, status: int = 200) -> PrometheusQuery:
    """A PrometheusQuery whose server answers every query with `body` (JSON)."""
    transport = httpx.MockTransport(lambda request: httpx.Response(status, json=body))
    return PrometheusQuery("http://prometheus", retries=0, client=httpx.Client(transport=transport))


def _matrix(points: list[list[Any]]) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {"resultType": "matrix", "result": [{"metric": {}, "values": points}]},
    }


def _recent(*values: Any) -> list[list[Any]]:
    """Points every 10 s ending at NOW_S, as a range query returns them."""
    return [[NOW_S - 10 * (len(values) - 1 - i), v] for i, v in enumerate(values)]


@pytest.mark.parametrize(
    "body",
    [
        [1, 2, 3],
        {"status": "success"},
        {"status": "success", "data": None},
        {"status": "success", "data": {"resultType": "matrix", "result": None}},
        {"status": "success", "data": {"resultType": "matrix", "result": [{"metric": {}, "values": None}]}},
        {"status": "success", "data": {"resultType": "matrix", "result": [["not", "a", "series"]]}},
        _matrix([[NOW_S, "many"]]),
        _matrix([[NOW_S, None]]),
        _matrix([[NOW_S]]),
        {"status": "error", "errorType": "x" * 10_000, "error": "y" * 10_000},
    ],
)
def test_a_malformed_answer_is_a_query_error(body: Any) -> None:
    with _answering(body) as query, pytest.raises(QueryError) as raised:
        query.request_rate_history("video", NOW_S, 60)
    assert len(str(raised.value)) < 600  # a prefix of what it refuses, not all of it


@pytest.mark.parametrize(
    ("points", "why"),
    [
        (_recent(5, 6, "1e30"), "not in"),
        (_recent(5, "NaN", 6), "not in"),
        (_recent(5, -2, 6), "not in"),
        (_recent(5, "+Inf"), "not in"),
        ([[NOW_S - 300, 5], [NOW_S - 290, 6]], "stale"),
        ([[NOW_S, 5], [NOW_S - 10, 6]], "out of order"),
    ],
)
def test_invalid_rate_history_is_a_query_error_not_zero_load(points: list[list[Any]], why: str) -> None:
    # NaN, negative and stale points used to be dropped or read as zero load, 1e30 hung the loop.
    with _answering(_matrix(points)) as query, pytest.raises(QueryError, match=why):
        query.request_rate_history("video", NOW_S, 60)


def test_a_valid_history_passes(make_query: MakeQuery) -> None:
    with _answering(_matrix(_recent(5, "6.5", 7))) as query:
        assert [v for _, v in query.request_rate_history("video", NOW_S, 60)] == [5.0, 6.5, 7.0]


def test_energy_past_its_limit_is_a_query_error() -> None:
    vector = {
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": {}, "value": [NOW_S, "1e300"]}]},
    }
    with _answering(vector) as query, pytest.raises(QueryError, match="J per request"):
        query.energy_per_request_j("video-.*", NOW_S)
