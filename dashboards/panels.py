"""Panel builders shared by the dashboards: every panel reads the `datasource` variable and sets a unit.

Grafana units used here: watt, joule, kwatth, massg, s, reqps, ops, percent, percentunit, short, none.
The JSON is today's Grafana model (schemaVersion 41, data sources referenced as objects): grafanalib
writes whatever its fields hold, so the references and the version are set here, and
tests/dashboards/test_dashboards_schema.py checks the output against grafana-foundation-sdk.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from grafanalib.core import (
    Dashboard,
    GridPos,
    Stat,
    StateTimeline,
    Table,
    Target,
    Template,
    Templating,
    Threshold,
    Time,
    TimeSeries,
)

# Grafana 12's dashboard schema (grafana-foundation-sdk's Dashboard model defaults to it).
SCHEMA_VERSION = 41
# Every query goes to the Prometheus the `datasource` variable picks.
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
PANEL_WIDTH = 12
PANEL_HEIGHT = 8
# A query is (PromQL, legend). Legends use Prometheus label templates, e.g. "{{zone}}".
Query = tuple[str, str]


def datasource_variable() -> Template:
    """The Prometheus data source picker: every panel queries `${datasource}`."""
    return Template(name="datasource", label="Data source", type="datasource", query="prometheus")


def label_variable(name: str, metric: str, label: str, title: str = "") -> Template:
    """A multi-select over the values `label` takes on `metric`; 'All' matches every value."""
    return Template(
        name=name,
        label=title or label,
        dataSource=DATASOURCE,
        query=f"label_values({metric}, {label})",
        includeAll=True,
        multi=True,
        allValue=".*",
        refresh=2,  # on time range change, so new pods and pipelines appear
        default="$__all",
    )


def number_variable(name: str, label: str, default: float) -> Template:
    """A free-text number the user may change (Grafana's textbox variable), `default` until then."""
    return Template(
        name=name,
        label=label,
        type="textbox",
        query=f"{default:g}",
        default=f"{default:g}",
    )


def _targets(queries: Sequence[Query], instant: bool = False, table: bool = False) -> list[Target]:
    return [
        Target(
            expr=expr,
            legendFormat=legend,
            refId=chr(ord("A") + i),
            instant=instant,
            datasource=DATASOURCE,
            **({"format": "table"} if table else {}),
        )
        for i, (expr, legend) in enumerate(queries)
    ]


def timeseries(title: str, queries: Sequence[Query], unit: str, description: str = "") -> TimeSeries:
    return TimeSeries(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=_targets(queries),
        unit=unit,
        legendDisplayMode="table",
        legendCalcs=["mean", "max", "lastNotNull"],
    )


def stat(
    title: str,
    queries: Sequence[Query],
    unit: str,
    thresholds: Sequence[tuple[float, str]] = ((0.0, "green"),),
    mappings: Sequence[dict[str, Any]] = (),
    description: str = "",
) -> Stat:
    return Stat(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=_targets(queries),
        format=unit,
        reduceCalc="lastNotNull",
        graphMode="none",
        thresholds=[
            Threshold(color=color, index=i, value=value) for i, (value, color) in enumerate(thresholds)
        ],
        mappings=list(mappings),
    )


def table(title: str, queries: Sequence[Query], unit: str, description: str = "") -> Table:
    """An instant-query table, one row per series: for rankings and info metrics."""
    return Table(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=_targets(queries, instant=True, table=True),
        unit=unit,
        transformations=[{"id": "organize", "options": {"excludeByName": {"Time": True}}}],
    )


def state_timeline(title: str, queries: Sequence[Query], description: str = "") -> StateTimeline:
    """One lane per series: shows which variant a stage ran when (the value is 1 while chosen)."""
    return StateTimeline(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=_targets(queries),
        mergeValues=True,
        showValue="never",
        # grafanalib's StateTimeline has no unit field; Grafana reads it from fieldConfig.
        extraJson={"fieldConfig": {"defaults": {"unit": "none"}}},
    )


def grid(panels: Sequence[Any], columns: int = 2) -> list[Any]:
    """Lay panels out left to right, `columns` per row, in the order given."""
    width = 24 // columns
    for i, panel in enumerate(panels):
        panel.gridPos = GridPos(
            h=PANEL_HEIGHT, w=width, x=(i % columns) * width, y=(i // columns) * PANEL_HEIGHT
        )
    return list(panels)


def dashboard(
    title: str, uid: str, tags: Sequence[str], variables: Sequence[Template], panels: Sequence[Any]
) -> Dashboard:
    """A dashboard in UTC over the last hour, refreshed every 30 s, with the data source picker
    first and the panels laid out on the grid."""
    return Dashboard(
        title=title,
        uid=uid,
        schemaVersion=SCHEMA_VERSION,
        tags=list(tags),
        timezone="utc",
        refresh="30s",
        time=Time("now-1h", "now"),
        templating=Templating(list=[datasource_variable(), *variables]),
        panels=grid(panels),
    ).auto_panel_ids()
