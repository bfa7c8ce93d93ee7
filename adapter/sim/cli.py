"""The `adapter simulate` and `adapter evaluate` subcommands; adapter/cli.py calls `register`.

Each subcommand sets `func(args) -> int` (the exit status) as its argparse default.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from adapter.errors import AdapterError
from adapter.sim.policies import POLICY_NAMES


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `simulate` and `evaluate` to the adapter's subcommands."""
    sim = subparsers.add_parser(
        "simulate", help="replay a trace through a simulated pipeline under one policy"
    )
    sim.add_argument("--profile", type=Path, required=True, help="profile file (YAML or JSON)")
    sim.add_argument("--trace", type=Path, required=True, help="CSV: requests arriving in each second")
    sim.add_argument("--policy", choices=POLICY_NAMES, required=True)
    sim.add_argument("--sla-s", type=float, default=None, help="pipeline SLA (default: from the profile)")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--json", type=Path, default=None, help="write the result here (default: stdout)")
    sim.add_argument("--solver", default="auto", help="solver behind the optimising policies")
    sim.add_argument("--switch-delay-s", type=float, default=None, help="reconfiguration delay")
    sim.add_argument("--log", action="store_true", help="include the per-interval decision log")
    sim.set_defaults(func=_simulate)

    ev = subparsers.add_parser("evaluate", help="every workload x policy x seed -> docs/evaluation")
    ev.add_argument("--profiles", type=Path, nargs="+", required=True, help="profile files")
    ev.add_argument("--out", type=Path, default=Path("docs/evaluation"))
    ev.add_argument("--seeds", type=int, default=3)
    ev.add_argument("--jobs", type=int, default=2)
    ev.add_argument("--solver", default="auto")
    ev.set_defaults(func=_evaluate)


def _simulate(args: argparse.Namespace) -> int:
    from adapter.profiles import load_profile
    from adapter.sim.runner import RunSpec, run
    from adapter.sim.trace import read_trace

    try:
        profile = load_profile(args.profile)
        counts = read_trace(args.trace)
        spec = RunSpec(
            policy=args.policy,
            seed=args.seed,
            sla_s=args.sla_s,
            solver=args.solver,
            switch_delay_s=args.switch_delay_s,
        )
        result = run(profile, counts, spec)
    except (AdapterError, ValueError, OSError) as exc:
        print(f"adapter simulate: {exc}", file=sys.stderr)
        return 2
    if not args.log:
        result.pop("log", None)
    text = json.dumps(result, indent=2)
    if args.json is None:
        print(text)
    else:
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from adapter.sim.report import evaluate

    try:
        evaluate(args.profiles, args.out, seeds=args.seeds, jobs=args.jobs, solver=args.solver)
    except (AdapterError, ValueError, OSError) as exc:
        print(f"adapter evaluate: {exc}", file=sys.stderr)
        return 2
    return 0
