"""The dashboards as `make dashboards` writes them (here into a scratch folder), and the PromQL inside them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)\}")


def generate(out_dir: Path) -> dict[str, dict[str, Any]]:
    """Run the generator as `make dashboards` does; dashboard name -> its JSON."""
    subprocess.run(
        [sys.executable, "-m", "dashboards.generate", "--out", str(out_dir)],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return {path.stem: json.loads(path.read_text()) for path in sorted(out_dir.glob("*.json"))}


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))  # panels folded inside rows
    return [p for p in found if p["type"] != "row"]


def expressions(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) for every target of every panel."""
    return [(p["title"], t["expr"]) for p in panels(dashboard) for t in p["targets"]]


def variables_used(expr: str) -> set[str]:
    return {a or b for a, b in VARIABLE.findall(expr)}
