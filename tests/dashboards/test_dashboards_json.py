"""Structure of the generated dashboards: a datasource variable every panel uses, a unit on every
panel, at least one non-empty query per panel, only defined variables, only known metric names,
and a layout without overlaps."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.dashboards.generated import REPO, expressions, generate, panels, variables_used

GRAFANA_BUILTINS = {"__rate_interval", "__range", "__interval"}
UNITS = {"watt", "joule", "kwatth", "massg", "s", "reqps", "ops", "percent", "percentunit", "short", "none"}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# The metric names energyd, the adapter and Seldon Core v1 export (shared/interfaces.md, issues 2-3).
KNOWN_METRICS = {
    "energyd_node_energy_joules_total",
    "energyd_node_power_watts",
    "energyd_pod_energy_joules_total",
    "energyd_container_energy_joules_total",
    "energyd_unattributed_energy_joules_total",
    "energyd_source_info",
    "energyd_read_errors_total",
    "energyd_sample_duration_seconds",
    "adapter_decisions_total",
    "adapter_solve_duration_seconds_bucket",
    "adapter_degraded",
    "adapter_predicted_requests_per_second",
    "adapter_observed_requests_per_second",
    "adapter_stage_replicas",
    "adapter_stage_batch_size",
    "adapter_stage_variant_info",
    "adapter_predicted_power_watts",
    "adapter_predicted_latency_seconds",
    "adapter_sla_seconds",
    "adapter_pas",
    "adapter_stage_energy_per_request_joules",
    "seldon_api_executor_server_requests_seconds_bucket",
}
# A metric name, or a recorded one (level:metric:operation) from deploy/prometheus/rules.yaml.
METRIC = re.compile(r"\b((?:[a-z0-9_]+:)?(?:energyd|adapter|seldon)_[a-z0-9_]+(?::[a-z0-9_]+)?)")
RULES = REPO / "deploy" / "prometheus" / "rules.yaml"
# energyd's series that carry `zone` (and `node_total`), read raw rather than through a rule.
ZONED = re.compile(r"(?<!:)energyd_(node_energy|node_power|pod_energy|container_energy|unattributed_energy)")


@pytest.fixture(scope="module")
def dashboards(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    return generate(tmp_path_factory.mktemp("dashboards"))


def test_generator_writes_both_dashboards(dashboards: dict[str, dict[str, Any]]) -> None:
    assert set(dashboards) == {"energyd", "adapter"}
    uids = [d["uid"] for d in dashboards.values()]
    assert all(uids) and len(set(uids)) == len(uids)


def test_datasource_variable_is_used_by_every_panel(dashboards: dict[str, dict[str, Any]]) -> None:
    for name, dashboard in dashboards.items():
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        for variable in variables.values():
            if variable["type"] == "query":
                assert variable["datasource"] == DATASOURCE, (name, variable["name"])
        for panel in panels(dashboard):
            # References are objects (type and uid), as today's Grafana writes them, on the panel
            # and on each of its queries.
            assert panel["datasource"] == DATASOURCE, (name, panel["title"])
            assert [t["datasource"] for t in panel["targets"]] == [DATASOURCE] * len(panel["targets"])


def test_every_panel_has_a_unit_and_a_query(dashboards: dict[str, dict[str, Any]]) -> None:
    for name, dashboard in dashboards.items():
        assert len(panels(dashboard)) >= 8, name
        for panel in panels(dashboard):
            assert panel["fieldConfig"]["defaults"]["unit"] in UNITS, (name, panel["title"])
            exprs = [t.get("expr", "").strip() for t in panel["targets"]]
            assert exprs and all(exprs), (name, panel["title"])


def test_issue_panels_exist_with_their_units(dashboards: dict[str, dict[str, Any]]) -> None:
    units = {
        (n, p["title"]): p["fieldConfig"]["defaults"]["unit"]
        for n, d in dashboards.items()
        for p in panels(d)
    }
    assert units[("energyd", "Node power by zone")] == "watt"
    assert units[("energyd", "Node power by source")] == "watt"
    assert units[("energyd", "Node power")] == "watt"
    assert units[("energyd", "Top 10 pods by power")] == "watt"
    assert units[("energyd", "Top 10 pods by power per zone")] == "watt"
    assert units[("energyd", "Energy per pod over the time range")] == "joule"
    assert units[("energyd", "Power per namespace")] == "watt"
    assert units[("energyd", "Idle vs dynamic power")] == "watt"
    assert units[("energyd", "Energy per day")] == "kwatth"
    assert units[("energyd", "Energy per day by node")] == "kwatth"
    assert units[("energyd", "CO2 per day")] == "massg"
    assert units[("energyd", "Pod power ($pod)")] == "watt"
    assert units[("adapter", "Energy per request by stage and variant")] == "joule"
    assert units[("adapter", "Load: predicted vs observed")] == "reqps"
    assert units[("adapter", "Latency vs SLA")] == "s"
    for title in ("Variant per stage", "Replicas per stage", "Batch size per stage", "Adapter status"):
        assert ("adapter", title) in units


def test_queries_use_defined_variables_and_known_metrics(dashboards: dict[str, dict[str, Any]]) -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    recorded = {rule["record"] for group in groups for rule in group["rules"] if "record" in rule}
    for name, dashboard in dashboards.items():
        defined = {v["name"] for v in dashboard["templating"]["list"]} | GRAFANA_BUILTINS
        for title, expr in expressions(dashboard):
            assert variables_used(expr) <= defined, (name, title, expr)
            assert set(METRIC.findall(expr)) <= KNOWN_METRICS | recorded, (name, title, expr)


def test_layout_has_no_overlapping_panels(dashboards: dict[str, dict[str, Any]]) -> None:
    for name, dashboard in dashboards.items():
        cells: set[tuple[int, int]] = set()
        for panel in panels(dashboard):
            g = panel["gridPos"]
            assert g["x"] >= 0 and g["x"] + g["w"] <= 24, (name, panel["title"])
            mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
            assert not cells & mine, (name, panel["title"])
            cells |= mine


def test_generator_output_is_deterministic(tmp_path: Path, dashboards: dict[str, dict[str, Any]]) -> None:
    assert generate(tmp_path) == dashboards


def test_sums_over_zones_keep_to_the_node_total(dashboards: dict[str, dict[str, Any]]) -> None:
    # Zones overlap: a query that sums energyd's series without keeping `zone` must select the
    # node_total="true" zones (or a recorded node-total rule), else it counts joules twice.
    by = re.compile(r"by \(([^)]*)\)")
    checked = 0
    for name, dashboard in dashboards.items():
        for title, expr in expressions(dashboard):
            if not ZONED.search(expr):
                continue
            kept = {label.strip() for group in by.findall(expr) for label in group.split(",")}
            if "sum" in expr and "zone" not in kept:
                checked += 1
                assert 'node_total="true"' in expr, (name, title, expr)
    assert checked >= 3


def test_titles_say_what_the_queries_do(dashboards: dict[str, dict[str, Any]]) -> None:
    by_title = {p["title"]: [t["expr"] for t in p["targets"]] for p in panels(dashboards["energyd"])}
    # "per zone" keeps zone apart; the plain ranking sums the node-total zones once.
    (per_zone,) = by_title["Top 10 pods by power per zone"]
    (overall,) = by_title["Top 10 pods by power"]
    assert "by (namespace, pod, zone)" in per_zone and 'node_total="true"' not in per_zone
    assert "by (namespace, pod)" in overall and 'node_total="true"' in overall
    # Idle vs dynamic: idle is energyd's idle share; dynamic is pods + system, both node-total.
    idle, dynamic = by_title["Idle vs dynamic power"]
    assert 'kind="idle"' in idle and 'kind="system"' in dynamic and "energyd_pod_energy" in dynamic
    # CO2 = kWh over a day x the carbon intensity variable, whose default is documented.
    (co2,) = by_title["CO2 per day"]
    assert "[1d]" in co2 and "/ 3.6e+06" in co2 and "* $carbon_intensity" in co2
    variables = {v["name"]: v for v in dashboards["energyd"]["templating"]["list"]}
    assert variables["carbon_intensity"]["type"] == "textbox"
    assert variables["carbon_intensity"]["query"] == "475"
    assert "475" in (REPO / "docs" / "deploy.md").read_text()
    assert variables["pod"]["query"] == "label_values(energyd_pod_energy_joules_total, pod)"
    assert all('pod=~"$pod"' in e for t, es in by_title.items() if "($pod)" in t for e in es)


def test_descriptions_name_only_current_energyd_flags(dashboards: dict[str, dict[str, Any]]) -> None:
    import argparse

    from energyd.cli import parser

    [commands] = [a for a in parser()._actions if isinstance(a, argparse._SubParsersAction)]
    run_flags = {
        flag: action.help or ""
        for action in commands.choices["run"]._actions
        for flag in action.option_strings
    }
    descriptions = {p["title"]: p.get("description", "") for p in panels(dashboards["energyd"])}
    for title, text in descriptions.items():
        for flag in re.findall(r"--[a-z][a-z-]*", text):
            assert flag in run_flags, (title, flag)
            assert not run_flags[flag].startswith("deprecated"), (title, flag)
    # Pod series exist for the node-total zones only unless --pod-zones all: the per-zone pod
    # panels say so; the cost panel quotes the default (pods only) and --containers.
    for title in ("Top 10 pods by power per zone", "Attributed and unattributed power"):
        assert "--pod-zones all" in descriptions[title], title
    assert "--containers" in descriptions["Sampling cost (slowest node)"]
