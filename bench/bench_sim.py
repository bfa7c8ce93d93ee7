"""Simulator speed: simulated requests per second of wall time, and the time one 20-minute
workload takes under each policy (goal: < 5 s). Run by `make bench`.

Profile: adapter/data/profiles/video.yaml (the measured one) when present, else a synthetic
2-stage x 5-variant profile. Q-learning is timed with a fresh learner per run, so its time
includes all its training: the first predicted rate from scratch (1000 episodes), then 200
episodes per further distinct rate on the same table (QLearningSettings.warm_episodes).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

from adapter.problem import Solver
from adapter.profiles import Profile, load_profile
from adapter.sim.policies import POLICY_NAMES
from adapter.sim.runner import RunSpec, run
from adapter.sim.trace import workload
from adapter.solve import get_solver
from adapter.solve.synthetic import synthetic_profile

DEFAULT_PROFILE = Path(__file__).resolve().parent.parent / "adapter" / "data" / "profiles" / "video.yaml"
GOAL_S = 5.0


def timed(profile: Profile, counts: list[int], policy: str, solver: Solver) -> tuple[float, int]:
    started = time.perf_counter()
    result = run(profile, counts, RunSpec(policy, seed=0), solver)
    return time.perf_counter() - started, int(result["requests"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", type=Path, default=DEFAULT_PROFILE)
    parser.add_argument("--workloads", nargs="+", default=["bursty", "steady_high"])
    parser.add_argument("--solver", default="auto")
    args = parser.parse_args()
    if args.profile.is_file():
        profile, source = load_profile(args.profile), str(args.profile)
    else:
        profile, source = synthetic_profile(0, 2, 5), "synthetic (2 stages x 5 variants)"
    print(
        f"os.cpu_count() = {os.cpu_count()}, {platform.processor() or platform.machine()}, Python {platform.python_version()}"
    )
    print(f"profile: {source}; solver: {args.solver}; a 20-minute workload, 120 adaptation steps")
    print(
        f"{'workload':<12} {'policy':<10} {'requests':>9} {'wall s':>8} {'sim req/s':>11} {'µs/request':>11}  goal"
    )
    for name in args.workloads:
        counts = workload(name)
        for policy in POLICY_NAMES:
            wall_s, requests = timed(profile, counts, policy, get_solver(args.solver))
            verdict = "ok" if wall_s < GOAL_S else f"over {GOAL_S:g} s"
            print(
                f"{name:<12} {policy:<10} {requests:>9} {wall_s:>8.2f} {requests / wall_s:>11,.0f} "
                f"{1e6 * wall_s / requests:>11.1f}  {verdict}"
            )


if __name__ == "__main__":
    main()
