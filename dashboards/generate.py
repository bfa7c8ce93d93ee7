"""Write every dashboard's JSON: `python -m dashboards.generate [--out DIR] [--check]` (what `make
dashboards` runs). The output is committed in deploy/grafana/dashboards/, so users import it (or
apply it as a ConfigMap for Grafana's sidecar, deploy/grafana) without Python.

The panels are built with grafanalib, which writes Grafana's JSON of its day: nulls and keys
today's Grafana has dropped (`rows`, `span`, per-target `step`...). Each dashboard is then read
into grafana-foundation-sdk's model of Grafana 12's dashboard (schemaVersion 41) and written back
from it, so what lands on disk holds only fields that model defines, with its defaults.
tests/dashboards/test_dashboards_schema.py checks that the committed files are that model's fixed
point and are current with the code."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.cog import plugins
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard as GrafanaModel
from grafanalib._gen import DashboardEncoder
from grafanalib.core import Dashboard

from dashboards import adapter_dashboard, energyd_dashboard

OUT = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "dashboards"
BUILDERS: dict[str, Callable[[], Dashboard]] = {
    "energyd": energyd_dashboard.build,
    "adapter": adapter_dashboard.build,
}


def without_nulls(value: Any) -> Any:
    """grafanalib writes every unset field as null; Grafana's model wants such fields absent."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def through_model(data: dict[str, Any]) -> dict[str, Any]:
    """`data` read into Grafana's dashboard model and written back from it."""
    # The panel and query types (timeseries, prometheus, ...) decode through their own models.
    plugins.register_default_plugins()
    result: dict[str, Any] = json.loads(json.dumps(GrafanaModel.from_json(data), cls=JSONEncoder))
    return result


def render(build: Callable[[], Dashboard]) -> str:
    legacy = json.loads(json.dumps(build().to_json_data(), cls=DashboardEncoder))
    return json.dumps(through_model(without_nulls(legacy)), indent=2, sort_keys=True) + "\n"


def write_all(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, build in BUILDERS.items():
        path = out_dir / f"{name}.json"
        path.write_text(render(build))
        written.append(path)
    return written


def stale(out_dir: Path) -> list[Path]:
    """The files in `out_dir` that differ from what the code generates (or are missing)."""
    paths = {name: out_dir / f"{name}.json" for name in BUILDERS}
    return [
        path
        for name, path in paths.items()
        if not path.is_file() or path.read_text() != render(BUILDERS[name])
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=OUT, help="output folder (default: the committed one)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file is stale")
    args = parser.parse_args(argv)
    if args.check:
        outdated = stale(args.out)
        for path in outdated:
            print(f"{path} is stale: run `make dashboards`", file=sys.stderr)
        return 1 if outdated else 0
    for path in write_all(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
