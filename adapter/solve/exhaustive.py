"""The oracle: walks every (variant, batch, replicas) of every stage straight from the
formulation in shared/interfaces.md. It does not assume that the least sufficient replicas are
optimal (problem.py's reduction); it proves per instance what it skips.

The one reduction it makes is exact by construction: two choices of one stage with the same
total latency are interchangeable for the latency constraint, so only the one of highest value
among them can be in an optimum. Everything else is enumerated, for small instances only.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

from adapter.errors import AdapterError
from adapter.problem import LATENCY_TOLERANCE_S, Decision, Option, Problem

MAX_COMBINATIONS = 2_000_000


class InstanceTooLarge(AdapterError):
    """The exhaustive oracle refuses an instance it could not enumerate in reasonable time."""


class ExhaustiveSolver:
    name = "exhaustive"

    def __init__(
        self, max_combinations: int = MAX_COMBINATIONS, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self.max_combinations = max_combinations
        self._clock = clock

    def solve(self, problem: Problem) -> Decision:
        started = self._clock()
        per_stage = [self._stage_candidates(problem, s) for s in range(len(problem.profile.stages))]
        if any(not candidates for candidates in per_stage):
            return problem.infeasible_decision(self.name, self._clock() - started, binding="throughput")
        combinations = 1
        for candidates in per_stage:
            combinations *= len(candidates)
        if combinations > self.max_combinations:
            raise InstanceTooLarge(
                f"{combinations} combinations exceed the exhaustive limit of {self.max_combinations}; "
                "use highs or frontier"
            )
        limit_s = problem.sla_s + LATENCY_TOLERANCE_S
        best: tuple[Option, ...] | None = None
        best_value = float("-inf")
        for combo in itertools.product(*per_stage):
            if sum(o.total_latency_s for o in combo) > limit_s:
                continue
            value = sum(o.value for o in combo)
            if value > best_value:
                best, best_value = combo, value
        elapsed = self._clock() - started
        if best is None:
            return problem.infeasible_decision(self.name, elapsed, binding="latency")
        return problem.decision(best, self.name, elapsed)

    @staticmethod
    def _stage_candidates(problem: Problem, stage: int) -> list[Option]:
        """Every throughput-feasible (variant, batch, n) of one stage, keeping per distinct total
        latency only the highest value."""
        lam = problem.arrival_rate_rps
        by_latency: dict[float, Option] = {}
        for variant, batch in problem.stage_choices(stage):
            throughput_rps = problem.usable_throughput_rps(variant, batch)
            for n in range(problem.replicas_min, problem.replicas_max + 1):
                if n * throughput_rps < lam:
                    continue
                option = problem.option(stage, variant, batch, n)
                kept = by_latency.get(option.total_latency_s)
                if kept is None or option.value > kept.value:
                    by_latency[option.total_latency_s] = option
        return list(by_latency.values())
