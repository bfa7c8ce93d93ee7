"""Write deploy/prometheus/prometheusrule.yaml, the Prometheus Operator's object for the rules in
deploy/prometheus/rules.yaml: that file's text, indented under `spec:` (its comments kept).

rules.yaml stays the one source of truth: promtool checks and unit-tests it as a plain rule file
(`make rules`), and promtool refuses any key beside `groups`, so it cannot carry the object's
apiVersion and kind itself; nor can kustomize put a file's content under `spec` without an alpha
plugin. `--check` exits 1 when the committed object is not what rules.yaml gives
(tests/deploy/test_manifests.py runs it)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DIRECTORY = Path(__file__).resolve().parents[1] / "deploy" / "prometheus"
RULES = DIRECTORY / "rules.yaml"
OBJECT = DIRECTORY / "prometheusrule.yaml"
HEADER = """\
# GENERATED from rules.yaml by `make rules` (scripts/prometheusrule.py): edit rules.yaml, not this.
# The energyd and adapter rules as a Prometheus Operator object; deploy/base applies it.
# kube-prometheus-stack selects it by its `release` label (deploy/overlays/kube-prometheus-stack).
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: energyd
  namespace: energyd-system
  labels:
    app.kubernetes.io/name: energyd
    app.kubernetes.io/part-of: energyd
spec:
"""


def render(rules_text: str) -> str:
    return HEADER + "".join(f"  {line}" if line.strip() else line for line in rules_text.splitlines(True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="only say whether the committed file is current")
    args = parser.parse_args(argv)
    text = render(RULES.read_text())
    if args.check:
        if OBJECT.read_text() != text:
            print(f"{OBJECT} is stale: run `make rules`", file=sys.stderr)
            return 1
        return 0
    OBJECT.write_text(text)
    print(OBJECT)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
