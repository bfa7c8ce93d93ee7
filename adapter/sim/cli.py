"""The `adapter simulate` and `adapter evaluate` subcommands; adapter/cli.py calls `register`.

Each subcommand sets `func(args) -> int` (the exit status) as its argparse default.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from adapter.errors import AdapterError
from adapter.sim.policies import POLICY_NAMES
from adapter.sim.trace import WORKLOADS


def _quiet_loop() -> None:
    """Simulated reconfigurations are not events of a cluster: the loop's per-change log lines
    would drown the output (the JSON's `log`, with --log, has them all)."""
    logging.getLogger("adapter.loop").setLevel(logging.WARNING)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `simulate` and `evaluate` to the adapter's subcommands."""
    sim = subparsers.add_parser(
        "simulate",
        help="replay a trace through a simulated pipeline under one policy",
        description=(
            "Replay a request trace through a simulated pipeline (one batching queue per stage, the "
            "profile's latencies and energy) while the adapter's own loop reconfigures it every 10 s "
            "under one policy. Prints the result as JSON (requests, served, dropped, late, p99 "
            "latency, PAS, cores, joules; docs/simulator.md)."
        ),
        epilog=(
            "policies, as IPA's experiment configs define them and at IPA's weights for the pipeline: "
            "ipa (accuracy vs cores), energy (plus an energy weight), fa2-low / fa2-high (variants "
            "frozen at the lightest / IPA's yolov5s + resnet101), rim-high (3 replicas per stage, "
            "variants free), qlearning (tabular epsilon-greedy). Example: adapter simulate --profile "
            "adapter/data/profiles/video.yaml --workload bursty --policy energy"
        ),
    )
    sim.add_argument("--profile", type=Path, required=True, help="profile file (YAML or JSON)")
    trace = sim.add_mutually_exclusive_group(required=True)
    trace.add_argument(
        "--trace", type=Path, help="CSV, one integer per line: the requests arriving in that second"
    )
    trace.add_argument(
        "--workload",
        choices=sorted(WORKLOADS),
        help="one of IPA's 20-minute windows of the Twitter trace (adapter/data/workloads)",
    )
    sim.add_argument(
        "--policy", choices=POLICY_NAMES, required=True, help="who decides (docs/simulator.md: each one's definition)"
    )
    sim.add_argument(
        "--sla-s",
        type=float,
        default=None,
        help="pipeline SLA in seconds (default: the profile's sla_s, else IPA's rule, adapter.profiles.default_sla_s)",
    )
    sim.add_argument(
        "--seed", type=int, default=0, help="spreads each second's arrivals (default: %(default)s)"
    )
    sim.add_argument("--json", type=Path, default=None, help="write the result here (default: stdout)")
    sim.add_argument(
        "--solver", default="auto", help="solver behind the optimising policies (default: %(default)s)"
    )
    sim.add_argument("--switch-delay-s", type=float, default=None, help="reconfiguration delay in seconds")
    sim.add_argument("--log", action="store_true", help="include the per-interval decision log")
    sim.set_defaults(func=_simulate)

    ev = subparsers.add_parser(
        "evaluate",
        help="every workload x policy x seed -> docs/evaluation",
        description="Simulate IPA's windows and the drawn ones under every policy and both frontiers "
        "(beta and gamma swept) for each profile; tune gamma on the tune windows, score on the test "
        "windows; write a Markdown report with tables and PNG plots (what make evaluate runs).",
    )
    ev.add_argument("--profiles", type=Path, nargs="+", required=True, help="profile files")
    ev.add_argument(
        "--out", type=Path, default=Path("docs/evaluation"), help="report folder (default: %(default)s)"
    )
    ev.add_argument(
        "--node-idle-power-w",
        type=float,
        default=None,
        help="the node power floor's idle watts per node (default: 72, ipa-ext's idle node)",
    )
    ev.add_argument("--jobs", type=int, default=2, help="worker processes (default: %(default)s)")
    ev.add_argument(
        "--solver", default="auto", help="solver behind the optimising policies (default: %(default)s)"
    )
    ev.set_defaults(func=_evaluate)


def _simulate(args: argparse.Namespace) -> int:
    from adapter.profiles import load_profile
    from adapter.sim.runner import RunSpec, run
    from adapter.sim.trace import read_trace, workload

    _quiet_loop()
    try:
        profile = load_profile(args.profile)
        counts = read_trace(args.trace) if args.trace is not None else workload(args.workload)
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

    _quiet_loop()
    try:
        floor = {} if args.node_idle_power_w is None else {"node_idle_power_w": args.node_idle_power_w}
        evaluate(args.profiles, args.out, jobs=args.jobs, solver=args.solver, **floor)
    except (AdapterError, ValueError, OSError) as exc:
        print(f"adapter evaluate: {exc}", file=sys.stderr)
        return 2
    return 0
