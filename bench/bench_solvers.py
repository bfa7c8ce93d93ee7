"""Solve time of every available exact solver on synthetic pipelines of 1-20 stages x 5
variants x 7 batch sizes (1..64) x replicas 1..32, each answer checked against the exhaustive
oracle where it is tractable and against the other solvers everywhere.

    .venv/bin/python bench/bench_solvers.py [--repeats N]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import random
import statistics
import time

from adapter.problem import Decision, Problem, Weights
from adapter.solve import available_solvers, get_solver
from adapter.solve.synthetic import batch1_latency_s, synthetic_profile

STAGES = (1, 2, 5, 10, 20)
VARIANTS = 5
ORACLE_MAX_STAGES = 2  # 35^2 combinations; 35^5 would take minutes in Python


def instances(stages: int, repeats: int) -> list[Problem]:
    result = []
    for seed in range(repeats):
        rng = random.Random(seed)
        profile = synthetic_profile(seed, stages, VARIANTS)
        # Every fifth instance gets an SLA that is likely too tight and every tenth a load no
        # 32 replicas carry, so that infeasible answers are timed and checked too.
        sla_factor = rng.uniform(0.05, 0.25) if seed % 5 == 4 else rng.uniform(0.5, 6.0)
        result.append(
            Problem(
                profile,
                arrival_rate_rps=5000.0 if seed % 10 == 9 else rng.uniform(1.0, 60.0),
                sla_s=batch1_latency_s(profile) * sla_factor,
                weights=Weights(alpha=1.0, beta=0.01, gamma=rng.choice((0.0, 0.005, 0.02)), delta=1e-6),
                replicas_min=1,
                replicas_max=32,
            )
        )
    return result


def agree(a: Decision, b: Decision) -> bool:
    if a.feasible != b.feasible:
        return False
    if not a.feasible:
        return a.binding == b.binding
    return math.isclose(a.objective, b.objective, rel_tol=1e-9, abs_tol=1e-9)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args()
    # The oracle first, so that every other solver is checked against it where it runs.
    names = sorted(available_solvers(), key=lambda name: name != "exhaustive")
    print(f"os.cpu_count() = {os.cpu_count()}; solvers here: {', '.join(names)}; repeats = {args.repeats}")
    print("time per Problem(...) and solve() call: building the problem's options included")
    print(f"{'stages':>6} {'solver':>10} {'median ms':>10} {'p95 ms':>9} {'infeasible':>10}   checked")
    disagreements = 0
    for stages in STAGES:
        problems = instances(stages, args.repeats)
        answers: dict[str, list[Decision]] = {}
        for name in names:
            if name == "exhaustive" and stages > ORACLE_MAX_STAGES:
                continue
            solver = get_solver(name)
            solver.solve(problems[0])  # untimed: the first call loads the library (Gurobi: its licence)
            times_s, decisions = [], []
            for problem in problems:
                # A fresh Problem per call, timed with the solve: it builds the options.
                started = time.perf_counter()
                fresh = Problem(
                    **{f.name: getattr(problem, f.name) for f in dataclasses.fields(problem) if f.init}
                )
                decisions.append(solver.solve(fresh))
                times_s.append(time.perf_counter() - started)
            answers[name] = decisions
            # The first solver of each row (the oracle where it ran) is the others' reference.
            reference = next(iter(answers))
            matches = sum(agree(d, r) for d, r in zip(decisions, answers[reference], strict=True))
            disagreements += len(decisions) - matches
            checked = "(reference)" if name == reference else f"{matches:>3}/{len(decisions)} vs {reference}"
            print(
                f"{stages:>6} {name:>10} {statistics.median(times_s) * 1e3:>10.3f} "
                f"{percentile(times_s, 0.95) * 1e3:>9.3f} {sum(not d.feasible for d in decisions):>10} "
                f"{checked}"
            )
    print(f"disagreements: {disagreements}")
    if disagreements:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
