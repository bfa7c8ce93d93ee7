"""The policies compared by the evaluation, each a (weights, Solver) pair for the same AdaptLoop.

- ipa: the adapter's exact solver with gamma = 0 (IPA's accuracy/cost trade-off).
- energy: the same solver with an energy weight gamma > 0 per watt (ENERGY_GAMMA: the smallest
  gamma of the sweep in docs/evaluation that meets the team goal, >= 20 % fewer joules at <= 1
  point more SLA violations, on the measured video profile).
- fa2-low / fa2-high: variants frozen at each stage's lightest / heaviest (lowest / highest
  accuracy); replicas and batch still optimised: the same problem on a restricted profile.
- rim-high: heaviest variants with replicas pinned (replicas_min = replicas_max) at a generous
  allocation: enough replicas of the heaviest variant, at its smallest batch, for the trace's
  peak rate plus RIM_HEADROOM, the same count for every stage; the batch is still optimised.
- qlearning: the tabular learner of qlearning.py with gamma = 0.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from adapter.problem import Decision, Problem, Solver, Weights, least_replicas
from adapter.profiles import Profile, Stage, Variant
from adapter.sim.qlearning import QLearningSolver

POLICY_NAMES = ("ipa", "energy", "fa2-low", "fa2-high", "rim-high", "qlearning")
IPA_WEIGHTS = Weights()
ENERGY_GAMMA = 0.003
RIM_HEADROOM = 1.1


@dataclass(frozen=True)
class Policy:
    name: str
    weights: Weights
    solver: Solver
    replicas: int | None = None  # pinned per stage (the loop's replicas_min = replicas_max)


def lightest(stage: Stage) -> Variant:
    return min(stage.variants, key=lambda v: (v.accuracy, v.cores))


def heaviest(stage: Stage) -> Variant:
    return max(stage.variants, key=lambda v: (v.accuracy, -v.cores))


def restrict(profile: Profile, pick: Callable[[Stage], Variant]) -> Profile:
    """`profile` with one variant per stage."""
    return profile.model_copy(
        update={"stages": tuple(s.model_copy(update={"variants": (pick(s),)}) for s in profile.stages)}
    )


class RestrictedSolver:
    """Solves each problem on a restricted profile (and pinned replicas, when given)."""

    def __init__(self, inner: Solver, pick: Callable[[Stage], Variant], replicas: int | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self._pick = pick
        self._replicas = replicas
        self._restricted: dict[int, Profile] = {}

    def solve(self, problem: Problem) -> Decision:
        key = id(problem.profile)
        if key not in self._restricted:
            self._restricted[key] = restrict(problem.profile, self._pick)
        restricted = dataclasses.replace(problem, profile=self._restricted[key])
        if self._replicas is not None:
            restricted = dataclasses.replace(
                restricted, replicas_min=self._replicas, replicas_max=self._replicas
            )
        return self.inner.solve(restricted)


def rim_replicas(profile: Profile, peak_rps: float) -> int:
    """Replicas of the heaviest variant at its smallest batch for peak * headroom: generous
    enough that no stage needs to batch (and queue) to keep up, as RIM's name promises."""
    return max(
        least_replicas(peak_rps * RIM_HEADROOM, heaviest(stage).batches[0].replica_throughput_rps, 1)
        for stage in profile.stages
    )


def make_policy(
    name: str, base: Solver, profile: Profile, peak_rps: float, seed: int, gamma: float | None = None
) -> Policy:
    """The policy `name` over the exact solver `base`; `gamma` overrides ENERGY_GAMMA."""
    if name == "ipa":
        return Policy(name, IPA_WEIGHTS, base)
    if name == "energy":
        weights = dataclasses.replace(IPA_WEIGHTS, gamma=ENERGY_GAMMA if gamma is None else gamma)
        return Policy(name, weights, base)
    if name == "fa2-low":
        return Policy(name, IPA_WEIGHTS, RestrictedSolver(base, lightest))
    if name == "fa2-high":
        return Policy(name, IPA_WEIGHTS, RestrictedSolver(base, heaviest))
    if name == "rim-high":
        pinned = rim_replicas(profile, peak_rps)
        return Policy(name, IPA_WEIGHTS, RestrictedSolver(base, heaviest, pinned), pinned)
    if name == "qlearning":
        return Policy(name, IPA_WEIGHTS, QLearningSolver(seed=seed))
    raise ValueError(f"unknown policy {name!r}; choose one of {', '.join(POLICY_NAMES)}")
