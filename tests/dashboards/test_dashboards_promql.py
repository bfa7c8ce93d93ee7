"""Every panel's PromQL, run through a real Prometheus that scrapes the real energyd, the real
adapter and the stand-in cluster (tests/dashboards/live_stack.py) every second and evaluates
deploy/prometheus/rules.yaml. Each query must return data with finite values; a few are checked
against what was fed in: the zones' watts, the request rate, and conservation of the node's
energy between pods and unattributed.

Every series the panels read comes from those processes: energyd (node, pod, unattributed,
source, errors), the adapter (adapter_*), and the stand-in, which exports Seldon's request
histogram and kube-state-metrics' kube_pod_labels for the pods it runs.
"""

from __future__ import annotations

import json
import math
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.dashboards.generated import expressions, generate
from tests.dashboards.live_stack import NODE_W, PIPELINE, REQUESTS_PER_S, LiveStack, live_stack
from tests.prom import query, wait_for_series

# What Grafana puts for its own variables with a 1 s scrape interval ($__rate_interval is
# 4 x the scrape interval) and a short time range.
GRAFANA_VALUES = {"$__rate_interval": "4s", "$__range": "1m", "$__interval": "1s"}
# Rate windows of 4 s over 1 s scrapes of counters energyd updates every 0.5 s, fed by a thread
# every 0.05 s: a few % off, more while the box is loaded.
REL = 0.15


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    with live_stack(Path(tmp_path_factory.mktemp("stack"))) as live:
        url = live.prometheus
        # Data over more than a whole [4s] window, decisions made, and the pipeline rules joined.
        wait_for_series(url, 'count_over_time(up{job="energyd"}[6s]) >= 6', timeout_s=30)
        wait_for_series(url, "adapter_stage_variant_info == 1", timeout_s=30)
        wait_for_series(
            url, "namespace_pipeline:energyd_energy_per_request_joules:ratio_rate2m", timeout_s=30
        )
        yield live


def label_values(url: str, metric: str, label: str) -> list[str]:
    """What Grafana's `label_values(metric, label)` variable query lists."""
    params = urllib.parse.urlencode({"match[]": metric})
    with urllib.request.urlopen(f"{url}/api/v1/label/{label}/values?{params}", timeout=5) as resp:
        values: list[str] = json.load(resp)["data"]
    return values


def substitute(url: str, dashboard: dict[str, Any], expr: str) -> str:
    """Fill the dashboard's variables as Grafana would with every value selected."""
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "textbox":  # a number the user types; its default until then
            expr = expr.replace(f"${variable['name']}", variable["query"])
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
    stack: LiveStack, dashboards: dict[str, dict[str, Any]]
) -> None:
    url = stack.prometheus
    failures = []
    count = 0
    for name, dashboard in dashboards.items():
        for title, expr in expressions(dashboard):
            count += 1
            values = [float(s["value"][1]) for s in query(url, substitute(url, dashboard, expr))]
            if not values or not all(math.isfinite(v) for v in values):
                failures.append(f"{name} / {title}: {expr} -> {values}")
    assert count >= 20
    assert failures == []


def _by(result: list[dict[str, Any]], label: str) -> dict[str, float]:
    return {series["metric"].get(label, ""): float(series["value"][1]) for series in result}


def test_panels_show_what_was_fed_in(stack: LiveStack, dashboards: dict[str, dict[str, Any]]) -> None:
    url = stack.prometheus
    exprs: dict[tuple[str, str], list[str]] = {}
    for name, dashboard in dashboards.items():
        for title, expr in expressions(dashboard):
            exprs.setdefault((name, title), []).append(expr)

    def run(dashboard: str, title: str, target: int = 0) -> list[dict[str, Any]]:
        expr = exprs[(dashboard, title)][target]
        return query(url, substitute(url, dashboards[dashboard], expr))

    # The rate over 4 s of scrapes: the zones in the proportions fed in (all are written together,
    # so a feeder running late on a loaded box moves them alike), and psys near the watts fed in.
    by_source = _by(run("energyd", "Node power by source"), "zone")
    assert by_source.keys() == NODE_W.keys()
    for zone, watts in NODE_W.items():
        assert by_source[zone] / by_source["psys"] == pytest.approx(watts / NODE_W["psys"], rel=REL), by_source
    assert by_source["psys"] == pytest.approx(NODE_W["psys"], rel=0.5), by_source
    # The gauges cover one 0.5 s pass, which a late write of the feeder skews as much as the
    # box is loaded; all zones are written together, so their ratios hold.
    by_zone = _by(run("energyd", "Node power by zone"), "zone")
    assert by_zone.keys() == NODE_W.keys()
    for zone, watts in NODE_W.items():
        assert by_zone[zone] / by_zone["psys"] == pytest.approx(watts / NODE_W["psys"], rel=REL), by_zone
    # psys alone is the node total: package, core and dram are inside it.
    (node,) = run("energyd", "Node power")
    assert float(node["value"][1]) == by_zone["psys"]
    pods = _by(run("energyd", "Top 10 pods by power"), "pod")
    assert pods and all(p.startswith(f"{PIPELINE}-") for p in pods), pods
    assert 0 < sum(pods.values()) < NODE_W["psys"]
    (observed,) = run("adapter", "Load: predicted vs observed", 1)
    # The stand-in paces requests in real time: on a loaded box (2 cores, a whole stack and the
    # test runner) ticks run late, and the adapter's offered-load estimate follows them.
    assert float(observed["value"][1]) == pytest.approx(REQUESTS_PER_S, rel=0.5)


def test_pods_and_unattributed_make_up_the_node_total(stack: LiveStack) -> None:
    # Over the node_total zones, in one instant query (same scrapes): pods + system + idle = node.
    total = 'node_total="true"'
    (ratio,) = query(
        stack.prometheus,
        f"(sum(rate(energyd_pod_energy_joules_total{{{total}}}[4s]))"
        f" + sum(rate(energyd_unattributed_energy_joules_total{{{total}}}[4s])))"
        f" / sum(rate(energyd_node_energy_joules_total{{{total}}}[4s]))",
    )
    assert float(ratio["value"][1]) == pytest.approx(1.0, rel=1e-6)


def test_pipeline_energy_per_request_rule(stack: LiveStack) -> None:
    # The pipeline pods' node-total watts over the requests per second, both from the rules.
    url = stack.prometheus
    (watts,) = query(url, "namespace_pipeline:energyd_pod_energy_joules:rate2m")
    (rps,) = query(url, "namespace_pipeline:seldon_api_executor_server_requests:rate2m")
    (joules,) = query(url, "namespace_pipeline:energyd_energy_per_request_joules:ratio_rate2m")
    assert joules["metric"]["pipeline"] == PIPELINE
    assert float(rps["value"][1]) > 0
    assert float(joules["value"][1]) == pytest.approx(float(watts["value"][1]) / float(rps["value"][1]))
