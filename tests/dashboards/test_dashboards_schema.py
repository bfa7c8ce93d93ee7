"""The committed dashboards (deploy/grafana/dashboards/*.json) are current with the code and valid
for today's Grafana: grafana-foundation-sdk's model of Grafana 12's dashboard reads each one and
writes it back unchanged (every field one the model defines, of the type it defines: a string
data source reference or a null fails to decode), at that model's schemaVersion."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from grafana_foundation_sdk.models.dashboard import Dashboard as GrafanaModel

from dashboards.generate import OUT, through_model
from tests.dashboards.generated import REPO, panels

COMMITTED = sorted(OUT.glob("*.json"))


def test_committed_dashboards_are_current() -> None:
    assert [p.name for p in COMMITTED] == ["adapter.json", "energyd.json"]
    check = subprocess.run(
        [sys.executable, "-m", "dashboards.generate", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stderr


def test_check_notices_a_stale_file(tmp_path: Path) -> None:
    for path in COMMITTED:
        (tmp_path / path.name).write_text(path.read_text().replace('"Node power"', '"Node powr"'))
    check = subprocess.run(
        [sys.executable, "-m", "dashboards.generate", "--check", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 1 and "energyd.json is stale" in check.stderr


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.stem)
def test_dashboard_is_a_fixed_point_of_grafanas_model(path: Path) -> None:
    data = json.loads(path.read_text())
    assert through_model(data) == data
    assert data["schemaVersion"] == GrafanaModel().schema_version == 41
    for panel in panels(data):
        assert isinstance(panel["datasource"], dict), panel["title"]


def test_the_model_refuses_what_old_grafana_json_holds() -> None:
    data: dict[str, Any] = json.loads(COMMITTED[0].read_text())
    data["panels"][0]["datasource"] = "${datasource}"  # a string reference, as grafanalib writes
    with pytest.raises((TypeError, AttributeError)):
        through_model(data)
    data = json.loads(COMMITTED[0].read_text())
    data["panels"][0]["span"] = 6  # a key today's model does not have
    assert through_model(data) != data
