"""An exact solver without a MILP: a Pareto-frontier merge over stages.

The objective and the latency constraint are both sums over stages, so a partial choice for
stages 0..s is only worth keeping if no other partial choice has a latency sum <= and a value
sum >= it: whatever the remaining stages add, the dominating one stays at least as good and at
least as feasible. Merging stage by stage and keeping only the (latency sum, value sum) Pareto
frontier is therefore exact. Floating point keeps this exact too: sums are formed left to right
in stage order, as Problem.is_feasible and Decision.build form them, and adding the same number
to two floats never reverses their order.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from adapter.limits import SOLVE_TIME_LIMIT_S
from adapter.problem import LATENCY_TOLERANCE_S, Option, Problem
from adapter.solve.common import OptionSolver, SolverTimeout, SolverUnavailable

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

# Pruning partial sums against the SLA only saves work; this relative slack makes sure a
# rounding difference between the pruning bound and the final left-to-right sum never prunes a
# feasible choice (the exact check happens once, on complete choices).
_PRUNE_SLACK = 1e-9

# Frontiers stay small on profiles like the measured ones (about 700 entries at 20 stages),
# but adversarial instances can grow them; past this size a MILP backend is the better tool.
MAX_FRONTIER = 20_000


class FrontierSolver(OptionSolver):
    name = "frontier"

    def __init__(
        self,
        max_frontier: int = MAX_FRONTIER,
        clock: Callable[[], float] = time.perf_counter,
        time_limit_s: float = SOLVE_TIME_LIMIT_S,
    ) -> None:
        super().__init__(clock, time_limit_s)
        self.max_frontier = max_frontier

    def choose(self, problem: Problem, per_stage: list[list[Option]]) -> list[Option] | None:
        deadline_s = self._clock() + self.time_limit_s

        def check_time() -> None:
            if self._clock() > deadline_s:
                raise SolverTimeout(self.name, self.time_limit_s)

        return _merge(per_stage, problem.sla_s + LATENCY_TOLERANCE_S, self.max_frontier, check_time)


def _pareto(latency: FloatArray, value: FloatArray, idx: IntArray) -> IntArray:
    """The entries of `idx` on the (latency, value) Pareto frontier, by latency ascending: each
    one's value beats every entry of lower or equal latency."""
    # Latency ascending, value descending among equal latencies.
    order = idx[np.lexsort((-value[idx], latency[idx]))]
    sorted_value = value[order]
    best_before = np.empty_like(sorted_value)
    best_before[0] = -np.inf
    np.maximum.accumulate(sorted_value[:-1], out=best_before[1:])
    kept: IntArray = order[sorted_value > best_before]
    return kept


def _merge(
    per_stage: list[list[Option]], limit_s: float, max_frontier: int, check_time: Callable[[], None]
) -> list[Option] | None:
    # Options dominated within their own stage can never be part of an optimum either.
    stage_options: list[list[Option]] = []
    for options in per_stage:
        lat = np.array([o.total_latency_s for o in options])
        val = np.array([o.value for o in options])
        stage_options.append([options[i] for i in _pareto(lat, val, np.arange(lat.size))])
    stage_latency = [np.array([o.total_latency_s for o in options]) for options in stage_options]
    stage_value = [np.array([o.value for o in options]) for options in stage_options]
    # rest_min[s]: the least latency stages s+1.. can still add, for pruning.
    mins = [float(lat[0]) for lat in stage_latency]
    rest_min = [sum(mins[s + 1 :]) for s in range(len(mins))]

    latency: FloatArray = np.zeros(1)
    value: FloatArray = np.zeros(1)
    # Per stage, for each kept partial choice: its parent partial choice and its option index.
    parents: list[IntArray] = []
    picks: list[IntArray] = []
    for s, (lat, val) in enumerate(zip(stage_latency, stage_value, strict=True)):
        check_time()
        cand_latency = (latency[:, None] + lat[None, :]).ravel()
        cand_value = (value[:, None] + val[None, :]).ravel()
        bound = limit_s - rest_min[s] + _PRUNE_SLACK * max(1.0, abs(limit_s))
        idx = np.flatnonzero(cand_latency <= bound)
        if idx.size == 0:
            return None
        kept = _pareto(cand_latency, cand_value, idx)
        if kept.size > max_frontier:
            raise SolverUnavailable("frontier", f"the frontier grew past {max_frontier} entries at stage {s}")
        parents.append(kept // lat.size)
        picks.append(kept % lat.size)
        latency, value = cand_latency[kept], cand_value[kept]

    feasible = np.flatnonzero(latency <= limit_s)
    if feasible.size == 0:
        return None
    # Along a frontier value rises with latency: the last feasible entry is the optimum.
    at = int(feasible[-1])
    chosen: list[Option] = []
    for s in range(len(stage_options) - 1, -1, -1):
        chosen.append(stage_options[s][int(picks[s][at])])
        at = int(parents[s][at])
    chosen.reverse()
    return chosen
