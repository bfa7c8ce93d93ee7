"""Prometheus HTTP API client: the adapter's view of load, latency and energy.

Every query goes over `/api/v1/query` or `/api/v1/query_range` with a timeout and a bounded
number of retries with exponential back-off. Transport errors and 5xx answers are retried
(Prometheus restarting, a proxy hiccup); a 4xx is a bad query and fails at once. Whatever
fails ends as `QueryError`, which the loop turns into "degraded, keep the last decision".

Every answer is hostile input: its shape is checked (a list where an object belongs, no `data`,
a null result are QueryErrors, never KeyErrors), and so is every value (finite, >= 0, within
adapter/limits.py, and recent), so that nothing Prometheus says can wedge or mislead the loop.

Default metric names are Seldon Core v1's executor metrics, labelled by `deployment_name`.
For MLServer alone use `request_metric="model_infer_request_success"` and
`pipeline_label="model_name"` (see docs/adapter.md).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from adapter import limits
from adapter.errors import QueryError
from adapter.loop import RateSample

logger = logging.getLogger(__name__)

SELDON_V1_REQUESTS = "seldon_api_executor_server_requests_seconds_count"
SELDON_V1_LATENCY_BUCKETS = "seldon_api_executor_server_requests_seconds_bucket"
ENERGYD_POD_ENERGY = "energyd_pod_energy_joules_total"
# energyd labels the zones whose sum is the node total, without double counting (docs/energyd.md).
NODE_TOTAL_MATCHER = 'node_total="true"'
# Seldon v1's executor counts requests in the orchestrator pod; per model pod, MLServer does.
MLSERVER_POD_REQUESTS = "model_infer_request_success_total"
# Requests in flight through a proxy in front of the model servers (Envoy, as in Seldon Core v2
# and Istio): arrived and not yet answered. Its growth is the demand the servers fail to serve.
ENVOY_IN_FLIGHT = "envoy_cluster_upstream_rq_active"


def _number(value: Any, what: str) -> float:
    """A sample value or timestamp as Prometheus encodes it (a string, or a JSON number)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise QueryError(f"{what} is not a number: {limits.quoted(value)}")
    try:
        return float(value)
    except ValueError as exc:
        raise QueryError(f"{what} is not a number: {limits.quoted(value)}") from exc


def _series(data: Any, promql: str, kind: str) -> list[dict[str, Any]]:
    """The result list of a query's `data`, each entry an object with a `metric` object."""
    expected = {"vector": "instant", "matrix": "range"}[kind]
    if not isinstance(data, dict) or data.get("resultType") != kind:
        got = data.get("resultType") if isinstance(data, dict) else type(data).__name__
        raise QueryError(f"{promql!r} returned {limits.quoted(got)}, not a {kind} ({expected} query)")
    result = data.get("result")
    if not isinstance(result, list) or not all(
        isinstance(r, dict) and isinstance(r.get("metric"), dict) for r in result
    ):
        raise QueryError(f"{promql!r} returned a malformed result: {limits.quoted(result)}")
    return result


def _point(pair: Any, promql: str) -> tuple[float, float]:
    if not isinstance(pair, list) or len(pair) != 2:
        raise QueryError(f"{promql!r} returned a malformed sample: {limits.quoted(pair)}")
    return _number(pair[0], "a sample time"), _number(pair[1], "a sample value")


def _label_value(value: str) -> str:
    """A PromQL string literal (label values may hold quotes and backslashes)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class PrometheusQuery:
    """Implements `LoadHistory` and the latency and energy look-ups the adapter needs."""

    def __init__(
        self,
        base_url: str,
        timeout_s: float = 2.0,
        retries: int = 2,
        backoff_s: float = 0.2,
        request_metric: str = SELDON_V1_REQUESTS,
        latency_bucket_metric: str = SELDON_V1_LATENCY_BUCKETS,
        energy_metric: str = ENERGYD_POD_ENERGY,
        pod_request_metric: str = MLSERVER_POD_REQUESTS,
        pipeline_label: str = "deployment_name",
        pod_label: str = "pod",
        pod_regex_template: str = "{pipeline}-.+-{stage}-.+",
        energy_matchers: str = NODE_TOTAL_MATCHER,
        rate_window_s: float = 30.0,
        step_s: float = 10.0,
        arrival_metric: str | None = None,
        backlog_metric: str | None = None,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if retries < 0 or timeout_s <= 0 or step_s <= 0 or rate_window_s <= 0:
            raise ValueError("timeout_s, step_s and rate_window_s must be > 0 and retries >= 0")
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.backoff_s = backoff_s
        self.request_metric = request_metric
        self.latency_bucket_metric = latency_bucket_metric
        self.energy_metric = energy_metric
        self.pod_request_metric = pod_request_metric
        self.pipeline_label = pipeline_label
        self.pod_label = pod_label
        self.pod_regex_template = pod_regex_template
        # energyd's zones overlap (core in package, psys around both): the default keeps the zones
        # that make up the node total, so that the energy sum counts each joule once.
        self.energy_matchers = energy_matchers
        self.rate_window_s = rate_window_s
        self.step_s = step_s
        # The offered load, not the served one (served saturates at capacity): an arrival
        # counter when the stack has one, else served + the growth of a backlog gauge.
        self.arrival_metric = arrival_metric
        self.backlog_metric = backlog_metric
        self._client = client or httpx.Client(timeout=timeout_s)
        self._sleep = sleep

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> PrometheusQuery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get(self, path: str, params: dict[str, str]) -> Any:
        url = f"{self.base_url}{path}"
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self._sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                response = self._client.get(url, params=params)
            except httpx.HTTPError as exc:
                last = f"{url} unreachable: {exc.__class__.__name__}: {exc}"
                continue
            if response.status_code >= 500:
                last = f"{url} answered {response.status_code}"
                continue
            try:
                body = response.json()
            except ValueError as exc:
                raise QueryError(f"{url} answered {response.status_code} with no JSON body") from exc
            if not isinstance(body, dict):
                raise QueryError(f"{url} answered {response.status_code} with {limits.quoted(body)}")
            if response.status_code != 200 or body.get("status") != "success":
                raise QueryError(
                    f"{url} refused {params.get('query')!r}: "
                    f"{limits.quoted(body.get('errorType', response.status_code))}: "
                    f"{limits.quoted(body.get('error', ''))}"
                )
            if "data" not in body:
                raise QueryError(f"{url} answered success without data")
            return body["data"]
        raise QueryError(f"{last} (after {self.retries + 1} attempts)")

    def instant(self, promql: str, time_s: float) -> list[tuple[dict[str, str], float]]:
        """An instant vector: (labels, value) per series."""
        data = self._get("/api/v1/query", {"query": promql, "time": f"{time_s:.3f}"})
        return [(r["metric"], _point(r.get("value"), promql)[1]) for r in _series(data, promql, "vector")]

    def range(
        self, promql: str, start_s: float, end_s: float, step_s: float
    ) -> list[tuple[dict[str, str], list[RateSample]]]:
        """A range query: (labels, [(time_s, value), ...]) per series, oldest first."""
        params = {"query": promql, "start": f"{start_s:.3f}", "end": f"{end_s:.3f}", "step": f"{step_s:g}"}
        data = self._get("/api/v1/query_range", params)
        series = []
        for r in _series(data, promql, "matrix"):
            values = r.get("values")
            if not isinstance(values, list):
                raise QueryError(f"{promql!r} returned a series without values")
            series.append((r["metric"], [_point(pair, promql) for pair in values]))
        return series

    def _window(self) -> str:
        return f"{max(1, round(self.rate_window_s))}s"

    def request_rate_promql(self, pipeline: str) -> str:
        """The offered load: the arrival counter's rate; else the served rate plus the backlog's
        growth per second, at least 0 (a backlog that empties by timeouts or cancellations, not
        by serving, shrinks faster than requests are served: no demand, not a negative one);
        else (neither configured) the served rate alone."""
        selector = f"{{{self.pipeline_label}={_label_value(pipeline)}}}"
        window = self._window()
        if self.arrival_metric:
            return f"sum(rate({self.arrival_metric}{selector}[{window}]))"
        served = f"sum(rate({self.request_metric}{selector}[{window}]))"
        if self.backlog_metric:
            growth = f"sum(delta({self.backlog_metric}{selector}[{window}])) / {window[:-1]}"
            return f"clamp_min({served} + {growth}, 0)"
        return served

    def request_rate_history(self, pipeline: str, now_s: float, window_s: float) -> Sequence[RateSample]:
        """Requests per second of `pipeline` every `step_s` over (now_s - window_s, now_s], the last
        point at now_s.

        No series at all is a QueryError, not an empty history: an idle pipeline's counter still
        has a series (at rate 0), so a missing one means a scrape failing, a fresh Prometheus or a
        wrong metric or label, and provisioning for zero load on that ground would be wrong. So
        is a value that is NaN, negative or past MAX_ARRIVAL_RATE_RPS, a time out of order, and a
        history whose last point is older than two steps (the series went stale): read as zero
        load, each would scale every stage down."""
        # Whole milliseconds, so that the grid from start lands exactly on end (Prometheus rounds
        # both to ms; rounded separately the last point can fall just past `end` and vanish).
        end_ms = math.floor(now_s * 1000)  # never past now_s: predictors ignore the future
        step_ms = round(self.step_s * 1000)
        start_ms = end_ms - max(0, math.ceil(window_s * 1000 / step_ms) - 1) * step_ms
        promql = self.request_rate_promql(pipeline)
        series = self.range(promql, start_ms / 1000, end_ms / 1000, step_ms / 1000)
        if not series:
            raise QueryError(f"no series for {promql}: check the request metric and the pipeline label")
        history = series[0][1]
        for t, v in history:
            if not 0 <= v <= limits.MAX_ARRIVAL_RATE_RPS:  # also NaN
                raise QueryError(
                    f"{promql} gave {v} req/s at {t:.3f}: not in [0, {limits.MAX_ARRIVAL_RATE_RPS:g}]"
                )
        times = [t for t, _ in history]
        if (
            not all(math.isfinite(t) for t in times)
            or times != sorted(times)
            or len(set(times)) != len(times)
        ):
            raise QueryError(f"{promql} gave sample times out of order")
        if not history or history[-1][0] < end_ms / 1000 - 2 * self.step_s:
            last = f"{end_ms / 1000 - history[-1][0]:.0f} s old" if history else "absent"
            raise QueryError(f"{promql} is stale: its last sample is {last}")
        return history

    def p99_latency_s(self, pipeline: str, now_s: float) -> float | None:
        """The pipeline's p99 latency over the rate window; None without traffic."""
        selector = f"{{{self.pipeline_label}={_label_value(pipeline)}}}"
        promql = (
            f"histogram_quantile(0.99, sum by (le) "
            f"(rate({self.latency_bucket_metric}{selector}[{self._window()}])))"
        )
        result = self.instant(promql, now_s)
        # NaN without traffic; +Inf when the quantile lies in the +Inf bucket: no latency to show.
        if not result or not math.isfinite(result[0][1]):
            return None
        if result[0][1] < 0:
            raise QueryError(f"{promql} gave a negative latency {result[0][1]}")
        return result[0][1]

    def energy_per_request_j(self, pod_regex: str, now_s: float) -> float | None:
        """Joules per request of the pods matching `pod_regex`: their summed energy rate (energyd)
        over their summed request rate (`pod_request_metric`, counted in each model pod). None when they served no requests in the window."""
        pods = f"{self.pod_label}=~{_label_value(pod_regex)}"
        energy = ",".join(m for m in (pods, self.energy_matchers) if m)
        window = self._window()
        promql = (
            f"sum(rate({self.energy_metric}{{{energy}}}[{window}])) / "
            f"sum(rate({self.pod_request_metric}{{{pods}}}[{window}]))"
        )
        result = self.instant(promql, now_s)
        if not result or not math.isfinite(result[0][1]):
            return None  # no requests in the window (0 / 0)
        if not 0 <= result[0][1] <= limits.MAX_ENERGY_PER_REQUEST_J:
            raise QueryError(
                f"{promql} gave {result[0][1]} J per request: not in [0, {limits.MAX_ENERGY_PER_REQUEST_J:g}]"
            )
        return result[0][1]

    def stage_energy_per_request_j(self, pipeline: str, stage: str, now_s: float) -> float | None:
        """`energy_per_request_j` over the stage's pods, named by `pod_regex_template` (Seldon v1
        names them `<deployment>-<predictor>-<component index>-<containers>-<hash>`)."""
        return self.energy_per_request_j(
            self.pod_regex_template.format(pipeline=pipeline, stage=stage), now_s
        )
