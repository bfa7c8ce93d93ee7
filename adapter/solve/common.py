"""What every backend shares: the throughput-feasible options it chooses from, its time limit,
and the signal that a backend cannot run here (not installed, its licence refuses the model, or
it ran out of time)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from adapter.errors import AdapterError
from adapter.limits import SOLVE_TIME_LIMIT_S
from adapter.problem import Decision, Option, Problem


class SolverUnavailable(AdapterError):
    """A solver backend cannot run here; `reason` says why (auto falls back on it)."""

    def __init__(self, solver: str, reason: str) -> None:
        super().__init__(f"solver {solver!r} is unavailable: {reason}")
        self.solver = solver
        self.reason = reason


class SolverTimeout(SolverUnavailable):
    """A solve ran past its time limit. `auto` passes the problem on to its next backend; a
    named solver's caller gets this (HTTP 503)."""

    def __init__(self, solver: str, time_limit_s: float) -> None:
        super().__init__(solver, f"no answer within its time limit of {time_limit_s:g} s")
        self.time_limit_s = time_limit_s


def candidate_options(problem: Problem) -> list[list[Option]] | None:
    """Per stage, the options whose least replicas fit within replicas_max; None when some stage
    has none (the problem is then infeasible on throughput and no model needs building)."""
    per_stage = []
    for stage in range(len(problem.profile.stages)):
        options = [o for o in problem.options(stage) if o.feasible_throughput]
        if not options:
            return None
        per_stage.append(options)
    return per_stage


def scaled_costs(per_stage: list[list[Option]]) -> list[float]:
    """Option values shifted per stage (by that stage's best value) and scaled to at most 1 in
    magnitude, flattened in stage order. Every configuration picks one option per stage, so the
    shift changes the objective by a constant and the scale by a positive factor: the optimum is
    the same, but MILP solvers, whose tolerances are absolute (~1e-9), now resolve differences
    relative to the spread of values rather than to their magnitude (delta * batch terms are
    often 1e-6 of an accuracy term)."""
    shifted = []
    for options in per_stage:
        best = max(o.value for o in options)
        shifted += [o.value - best for o in options]
    spread = max((-c for c in shifted), default=0.0)
    return [c / spread for c in shifted] if spread > 0 else shifted


def picked_options(per_stage: list[list[Option]], x: Sequence[float]) -> list[Option]:
    """The option of each stage whose binary is set in a MILP solution `x` (flattened in stage
    order); the largest value wins, so integrality tolerances cannot pick two or none."""
    chosen = []
    offset = 0
    for options in per_stage:
        best = max(range(len(options)), key=lambda i: float(x[offset + i]))
        chosen.append(options[best])
        offset += len(options)
    return chosen


class OptionSolver:
    """What every exact backend does around its own search: drop the options that cannot carry
    the load, answer "throughput" at once when a stage has none, time the search, and turn
    "no choice fits the SLA" into the best-effort infeasible answer."""

    name = "option-solver"

    def __init__(
        self, clock: Callable[[], float] = time.perf_counter, time_limit_s: float = SOLVE_TIME_LIMIT_S
    ) -> None:
        if not time_limit_s > 0:
            raise ValueError(f"time_limit_s must be > 0, got {time_limit_s}")
        self._clock = clock
        self.time_limit_s = time_limit_s

    def solve(self, problem: Problem) -> Decision:
        started = self._clock()
        per_stage = candidate_options(problem)
        if per_stage is None:
            return problem.infeasible_decision(self.name, self._clock() - started, binding="throughput")
        chosen = self.choose(problem, per_stage)
        elapsed = self._clock() - started
        if chosen is None:
            # Every stage can carry the load, so only the latency budget can be what binds.
            return problem.infeasible_decision(self.name, elapsed, binding="latency")
        return problem.decision(chosen, self.name, elapsed)

    def choose(self, problem: Problem, per_stage: list[list[Option]]) -> list[Option] | None:
        """One option per stage maximising the value within the SLA, or None when none fits.
        Raises SolverTimeout past `time_limit_s`."""
        raise NotImplementedError
