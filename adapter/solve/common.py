"""What every backend shares: the throughput-feasible options it chooses from, and the signal
that a backend cannot run here (not installed, or its licence refuses the model)."""

from __future__ import annotations

from adapter.errors import AdapterError
from adapter.problem import Option, Problem


class SolverUnavailable(AdapterError):
    """A solver backend cannot run here; `reason` says why (auto falls back on it)."""

    def __init__(self, solver: str, reason: str) -> None:
        super().__init__(f"solver {solver!r} is unavailable: {reason}")
        self.solver = solver
        self.reason = reason


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
