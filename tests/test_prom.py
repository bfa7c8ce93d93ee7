"""tests/prom.py's Prometheus configuration, checked by Prometheus' own `promtool check config`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.prom import duration, prometheus_config


@pytest.mark.parametrize(
    ("seconds", "written"), [(1, "1000ms"), (1.5, "1500ms"), (0.25, "250ms"), (15, "15000ms")]
)
def test_durations_are_whole_milliseconds(seconds: float, written: str) -> None:
    assert duration(seconds) == written


@pytest.mark.parametrize("targets", [["127.0.0.1:9102"], []])
def test_promtool_accepts_a_fractional_interval(tmp_path: Path, targets: list[str]) -> None:
    config = tmp_path / "prometheus.yml"
    config.write_text(prometheus_config(targets, 1.5, []))
    checked = subprocess.run(["promtool", "check", "config", str(config)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
