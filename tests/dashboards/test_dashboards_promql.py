"""Every panel's PromQL, run through a real Prometheus (loopback, temp dir) that scrapes the
fixture exporter (tests/dashboards/fixture_exporter.py: energyd's, the adapter's and Seldon's
metric names with known rates) and evaluates deploy/prometheus/rules.yaml. Each query must
return data with finite values; a few are checked against the rates the fixtures feed in.

When energyd and the adapter can run on fixture roots here, point the scrape at them instead of
(or beside) the fixture exporter: the assertions stay the same."""

from __future__ import annotations

import json
import math
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.dashboards import fixture_exporter as fx
from tests.dashboards.generated import REPO, expressions, generate
from tests.prom import query, start_prometheus, wait_for_series

RULES = REPO / "deploy" / "prometheus" / "rules.yaml"
# What Grafana puts for its own variables with a 1 s scrape interval ($__rate_interval is
# 4 x the scrape interval) and a short time range.
GRAFANA_VALUES = {"$__rate_interval": "4s", "$__range": "1m", "$__interval": "1s"}


@pytest.fixture(scope="module")
def prometheus() -> Iterator[str]:
    with fx.serve_fixture_exporter() as exporter, start_prometheus([exporter.address], 1, [RULES]) as url:
        # Data over more than a whole rate window: rate() over a window the series only partly
        # covers underestimates, and the expected values below are exact rates.
        wait_for_series(url, "count_over_time(adapter_degraded[6s]) >= 6", timeout_s=30)
        wait_for_series(
            url, "namespace_pipeline_zone:energyd_energy_per_request_joules:ratio_rate2m", timeout_s=30
        )
        yield url


def label_values(url: str, metric: str, label: str) -> list[str]:
    """What Grafana's `label_values(metric, label)` variable query lists."""
    params = urllib.parse.urlencode({"match[]": metric})
    with urllib.request.urlopen(f"{url}/api/v1/label/{label}/values?{params}", timeout=5) as resp:
        values: list[str] = json.load(resp)["data"]
    return values


def substitute(url: str, dashboard: dict[str, Any], expr: str) -> str:
    """Fill the dashboard's variables as Grafana would with every value selected."""
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        metric, label = variable["query"].removeprefix("label_values(").removesuffix(")").split(", ")
        values = label_values(url, metric, label)
        assert values, f"variable {variable['name']} lists nothing"
        expr = expr.replace(f"${variable['name']}", "|".join(values))
    for name, value in GRAFANA_VALUES.items():
        expr = expr.replace(name, value)
    return expr


@pytest.fixture(scope="module")
def dashboards(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    return generate(tmp_path_factory.mktemp("dashboards"))


def test_every_panel_query_returns_finite_data(
    prometheus: str, dashboards: dict[str, dict[str, Any]]
) -> None:
    failures = []
    count = 0
    for name, dashboard in dashboards.items():
        for title, expr in expressions(dashboard):
            count += 1
            result = query(prometheus, substitute(prometheus, dashboard, expr))
            values = [float(series["value"][1]) for series in result]
            if not values or not all(math.isfinite(v) for v in values):
                failures.append(f"{name} / {title}: {expr} -> {values}")
    assert count >= 20
    assert failures == []


def _by(result: list[dict[str, Any]], label: str) -> dict[str, float]:
    return {series["metric"].get(label, ""): float(series["value"][1]) for series in result}


def test_panels_show_the_rates_the_fixtures_feed(
    prometheus: str, dashboards: dict[str, dict[str, Any]]
) -> None:
    exprs: dict[tuple[str, str], list[str]] = {}
    for name, dashboard in dashboards.items():
        for title, expr in expressions(dashboard):
            exprs.setdefault((name, title), []).append(expr)

    def run(dashboard: str, title: str, target: int = 0) -> list[dict[str, Any]]:
        expr = exprs[(dashboard, title)][target]
        return query(prometheus, substitute(prometheus, dashboards[dashboard], expr))

    assert _by(run("energyd", "Node power by zone"), "zone") == fx.NODE_W
    pods = {
        (s["metric"]["pod"], s["metric"]["zone"]): float(s["value"][1])
        for s in run("energyd", "Top 10 pods by power")
    }
    expected = {(pod, "package-0"): pkg for pod, _, _, _, pkg, _ in fx.PODS}
    expected |= {(pod, "dram"): dram for pod, _, _, _, _, dram in fx.PODS}
    assert pods.keys() == expected.keys()
    for key, watts in expected.items():
        assert pods[key] == pytest.approx(watts, rel=0.1, abs=1e-9), key
    (predicted,) = run("adapter", "Load: predicted vs observed", 0)
    (observed,) = run("adapter", "Load: predicted vs observed", 1)
    assert (float(predicted["value"][1]), float(observed["value"][1])) == (fx.PREDICTED_RPS, fx.OBSERVED_RPS)
    (p99,) = run("adapter", "Solve time p99")
    # Every solve lies in the (1 ms, 10 ms] bucket: histogram_quantile interpolates inside it.
    assert float(p99["value"][1]) == pytest.approx(0.001 + 0.99 * 0.009, rel=0.01)


def test_pipeline_energy_per_request_rule(prometheus: str) -> None:
    # Per zone, the pipeline pods' watts over 11 requests per second. The rules' 2 m windows are
    # only partly covered yet, which scales watts and requests alike: their ratio is exact.
    result = query(prometheus, "namespace_pipeline_zone:energyd_energy_per_request_joules:ratio_rate2m")
    assert {s["metric"]["pipeline"] for s in result} == {fx.PIPELINE}
    measured = {s["metric"]["zone"]: float(s["value"][1]) for s in result}
    expected = {
        "package-0": sum(pkg for *_, pkg, _ in fx.PODS) / fx.OBSERVED_RPS,
        "dram": sum(dram for *_, dram in fx.PODS) / fx.OBSERVED_RPS,
    }
    assert measured.keys() == expected.keys()
    for zone, joules in expected.items():
        assert measured[zone] == pytest.approx(joules, rel=0.1), zone
