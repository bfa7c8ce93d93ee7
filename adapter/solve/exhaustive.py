"""The oracle: walks every (variant, batch, replicas) of every stage straight from the
formulation in shared/interfaces.md. It does not assume that the least sufficient replicas are
optimal (problem.py's reduction); it proves per instance what it skips.

The one reduction it makes is exact by construction: two choices of one stage with the same
total latency are interchangeable for the latency constraint, so only the one of highest value
among them can be in an optimum. Everything else is enumerated, for small instances only: the
size of the walk is checked before any of it is done, and the walk stops at its time limit.

Infeasible instances get the best effort of shared/interfaces.md, found here by walking every
replica count as well: the most load carried, then the least latency, then the best value.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

from adapter.errors import AdapterError
from adapter.limits import SOLVE_TIME_LIMIT_S
from adapter.problem import LATENCY_TOLERANCE_S, Decision, Option, Problem
from adapter.solve.common import SolverTimeout

MAX_COMBINATIONS = 2_000_000
# Options built while walking every replica count of every (variant, batch) of every stage.
MAX_OPTIONS_WALKED = 200_000
# The clock is read once per this many combinations.
_CLOCK_EVERY = 4096


class InstanceTooLarge(AdapterError):
    """The exhaustive oracle refuses an instance it could not enumerate in reasonable time."""


class ExhaustiveSolver:
    name = "exhaustive"

    def __init__(
        self,
        max_combinations: int = MAX_COMBINATIONS,
        clock: Callable[[], float] = time.perf_counter,
        time_limit_s: float = SOLVE_TIME_LIMIT_S,
        max_options_walked: int = MAX_OPTIONS_WALKED,
    ) -> None:
        self.max_combinations = max_combinations
        self.max_options_walked = max_options_walked
        self.time_limit_s = time_limit_s
        self._clock = clock

    def solve(self, problem: Problem) -> Decision:
        started = self._clock()
        self._check_size(problem)
        walked = [self._walk(problem, s) for s in range(len(problem.profile.stages))]
        per_stage = [self._by_latency(problem, options) for options in walked]
        if any(not candidates for candidates in per_stage):
            return self._best_effort(problem, walked, started, "throughput")
        limit_s = problem.sla_s + LATENCY_TOLERANCE_S
        deadline_s = started + self.time_limit_s
        best: tuple[Option, ...] | None = None
        best_value = float("-inf")
        for count, combo in enumerate(itertools.product(*per_stage)):
            if count % _CLOCK_EVERY == 0 and self._clock() > deadline_s:
                raise SolverTimeout(self.name, self.time_limit_s)
            if sum(o.total_latency_s for o in combo) > limit_s:
                continue
            value = sum(o.value for o in combo)
            if value > best_value:
                best, best_value = combo, value
        if best is None:
            return self._best_effort(problem, walked, started, "latency")
        return problem.decision(best, self.name, self._clock() - started)

    def _check_size(self, problem: Problem) -> None:
        """Refuse, before walking anything, an instance whose walk or enumeration is too large."""
        replica_counts = problem.replicas_max - problem.replicas_min + 1
        walk = replica_counts * sum(len(problem.stage_choices(s)) for s in range(len(problem.profile.stages)))
        if walk > self.max_options_walked:
            raise InstanceTooLarge(
                f"{walk} (variant, batch, replicas) choices exceed the exhaustive limit of "
                f"{self.max_options_walked}; use highs or frontier"
            )
        # At most one candidate per (variant, batch) that some replica count lets carry the load.
        combinations = 1
        for s in range(len(problem.profile.stages)):
            combinations *= sum(
                1
                for v, b in problem.stage_choices(s)
                if problem.replicas_max * problem.usable_throughput_rps(v, b) >= problem.arrival_rate_rps
            )
        if combinations > self.max_combinations:
            raise InstanceTooLarge(
                f"{combinations} combinations exceed the exhaustive limit of {self.max_combinations}; "
                "use highs or frontier"
            )

    @staticmethod
    def _walk(problem: Problem, stage: int) -> list[Option]:
        """Every (variant, batch, n) of one stage, n over [replicas_min, replicas_max]."""
        return [
            problem.option(stage, variant, batch, n)
            for variant, batch in problem.stage_choices(stage)
            for n in range(problem.replicas_min, problem.replicas_max + 1)
        ]

    @staticmethod
    def _by_latency(problem: Problem, options: list[Option]) -> list[Option]:
        """The throughput-feasible options, keeping per distinct total latency only the highest value."""
        by_latency: dict[float, Option] = {}
        for option in options:
            if not option.feasible_throughput:
                continue
            kept = by_latency.get(option.total_latency_s)
            if kept is None or option.value > kept.value:
                by_latency[option.total_latency_s] = option
        return list(by_latency.values())

    def _best_effort(
        self, problem: Problem, walked: list[list[Option]], started: float, binding: str
    ) -> Decision:
        """The carried load is the least over stages of min(λ, n x throughput), so the most of it
        is the least over stages of each stage's most; every stage then takes, among its options
        that carry that much, the least latency and then the highest value (both are sums)."""

        def carried(o: Option) -> float:
            return min(problem.arrival_rate_rps, o.replicas * problem.usable_throughput_rps(o.variant, o.batch))

        most = min(max(carried(o) for o in options) for options in walked)
        chosen = [
            min((o for o in options if carried(o) >= most), key=lambda o: (o.total_latency_s, -o.value))
            for options in walked
        ]
        return Decision.build(problem, chosen, self.name, self._clock() - started, binding=binding)
