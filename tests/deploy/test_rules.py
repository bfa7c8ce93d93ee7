"""deploy/prometheus/rules.yaml through promtool: syntax (`check rules`), the unit tests in
rules.test.yaml (`test rules`), and that every rule there has a test case."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

RULES_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULES = RULES_DIR / "rules.yaml"
RULE_TESTS = RULES_DIR / "rules.test.yaml"
REQUIRED_ALERTS = {"EnergydDown", "EnergydEstimatedSource", "AdapterDegraded", "EnergydReadErrors"}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    assert exe, "promtool not found: run `make prometheus` (Debian package prometheus)"
    return subprocess.run([exe, *args], cwd=RULES_DIR, capture_output=True, text=True, timeout=120)


def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    result = promtool("test", "rules", RULE_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_rule_is_unit_tested() -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    alerts = {r["alert"] for g in groups for r in g["rules"] if "alert" in r}
    records = {r["record"] for g in groups for r in g["rules"] if "record" in r}
    assert alerts >= REQUIRED_ALERTS
    cases = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    tested_alerts = {a["alertname"] for c in cases for a in c.get("alert_rule_test", [])}
    # Every alert is seen firing somewhere, not only silent.
    firing = {a["alertname"] for c in cases for a in c.get("alert_rule_test", []) if a["exp_alerts"]}
    tested_exprs = " ".join(t["expr"] for c in cases for t in c.get("promql_expr_test", []))
    assert alerts == tested_alerts == firing
    assert {r for r in records if r not in tested_exprs} == set()
