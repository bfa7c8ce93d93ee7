"""Many simulations at once: a grid of (profile, workload, policy, seed, gamma) runs, spread over
worker processes, with a tqdm progress bar on stderr."""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from tqdm import tqdm

from adapter.profiles import Profile, load_profile
from adapter.sim.runner import RunSpec, run


@dataclass(frozen=True)
class Task:
    profile_path: Path
    workload: str
    counts: tuple[int, ...]
    spec: RunSpec
    keep_log: bool = False


@cache
def _profile(path: Path) -> Profile:
    return load_profile(path)


def run_task(task: Task) -> dict[str, Any]:
    result = run(_profile(task.profile_path), task.counts, task.spec)
    if not task.keep_log:
        result.pop("log")
    result["workload"] = task.workload
    result["pipeline"] = _profile(task.profile_path).pipeline
    return result


def run_tasks(tasks: Sequence[Task], jobs: int) -> list[dict[str, Any]]:
    """Every task's result, in the order given. Slow tasks (Q-learning) should come first so
    that the pool's tail is short."""
    bar = tqdm(total=len(tasks), desc="simulations", unit="run", file=sys.stderr)
    try:
        if jobs <= 1:
            results = []
            for task in tasks:
                results.append(run_task(task))
                bar.update()
            return results
        # fork: workers inherit the imported modules, so each run starts at once.
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            results = []
            for result in pool.imap(run_task, tasks, chunksize=1):
                results.append(result)
                bar.update()
            return results
    finally:
        bar.close()
