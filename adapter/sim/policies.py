"""The policies compared by the evaluation, each a (weights, Solver) pair for the same AdaptLoop.

Every baseline is defined as IPA's experiment configs define it (reconfigurable-ml-pipeline/ipa,
data/configs/final/*.yaml; the `baseline_mode`, `initial_active_model`, `initial_replica`,
`alpha` and `beta` keys), always at IPA's weights for the pipeline (`ipa_weights`):
- ipa: the adapter's exact solver at IPA's alpha and beta, gamma = 0 (video-1.yaml: alpha 2,
  beta 1; sample-*.yaml, IPA's nlp/audio pipelines: alpha 10, beta 0.5).
- energy: the same solver and weights plus an energy weight gamma per watt (ENERGY_GAMMA, or
  the gamma the evaluation tunes on its tune windows).
- fa2-low: variants frozen at each stage's lightest (video-2.yaml, baseline_mode scale:
  yolov5n + resnet18, IPA's lightest); replicas and batch optimised.
- fa2-high: variants frozen at IPA's "high" pair (video-3.yaml, baseline_mode scale:
  yolov5s + resnet101, not the heaviest); a stage without a variant of IPA's pair takes its
  median-accuracy variant (IPA has no fa2 config for its other pipelines).
- rim-high: replicas pinned at 3 per stage, variants and batch free (video-5.yaml,
  baseline_mode switch, initial_replica 3).
- qlearning: the tabular learner of qlearning.py at IPA's weights.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from adapter.problem import Decision, Problem, Solver, Weights
from adapter.profiles import Profile, Stage, Variant
from adapter.sim.qlearning import QLearningSolver

POLICY_NAMES = ("ipa", "energy", "fa2-low", "fa2-high", "rim-high", "qlearning")
# IPA's (alpha, beta) per pipeline name, when the profile states none (docstring: the configs).
IPA_WEIGHTS_BY_PIPELINE = {"video": (2.0, 1.0), "nlp": (10.0, 0.5)}
# The energy weight per watt when the evaluation does not tune one: a busy core's ~2.75 W in the
# shipped profiles then costs ~0.8, about IPA's video beta of 1 per core, so watts count about
# as much as cores.
ENERGY_GAMMA = 0.3
FA2_HIGH_VARIANTS = frozenset({"yolov5s", "resnet101"})  # video-3.yaml initial_active_model
RIM_REPLICAS = 3  # video-5.yaml initial_replica


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


def fa2_high(stage: Stage) -> Variant:
    """IPA's FA2-high variant of the stage, else its median-accuracy variant."""
    for variant in stage.variants:
        if variant.name in FA2_HIGH_VARIANTS:
            return variant
    ranked = sorted(stage.variants, key=lambda v: (v.accuracy, -v.cores))
    return ranked[len(ranked) // 2]


def ipa_weights(profile: Profile) -> Weights:
    """IPA's weights for the pipeline: the profile's `ipa_weights`, else IPA_WEIGHTS_BY_PIPELINE,
    else the solver's defaults (a pipeline IPA never ran)."""
    if profile.ipa_weights is not None:
        return Weights(alpha=profile.ipa_weights.alpha, beta=profile.ipa_weights.beta)
    if profile.pipeline in IPA_WEIGHTS_BY_PIPELINE:
        alpha, beta = IPA_WEIGHTS_BY_PIPELINE[profile.pipeline]
        return Weights(alpha=alpha, beta=beta)
    return Weights()


def restrict(profile: Profile, pick: Callable[[Stage], Variant]) -> Profile:
    """`profile` with one variant per stage."""
    return profile.model_copy(
        update={"stages": tuple(s.model_copy(update={"variants": (pick(s),)}) for s in profile.stages)}
    )


class RestrictedSolver:
    """Solves each problem on a restricted profile (and pinned replicas, when given)."""

    def __init__(
        self, inner: Solver, pick: Callable[[Stage], Variant] | None, replicas: int | None = None
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self._pick = pick
        self._replicas = replicas
        self._restricted: dict[int, Profile] = {}

    def solve(self, problem: Problem) -> Decision:
        restricted = problem
        if self._pick is not None:
            key = id(problem.profile)
            if key not in self._restricted:
                self._restricted[key] = restrict(problem.profile, self._pick)
            restricted = dataclasses.replace(problem, profile=self._restricted[key])
        if self._replicas is not None:
            restricted = dataclasses.replace(
                restricted, replicas_min=self._replicas, replicas_max=self._replicas
            )
        return self.inner.solve(restricted)


def make_policy(
    name: str,
    base: Solver,
    profile: Profile,
    seed: int,
    gamma: float | None = None,
    beta: float | None = None,
) -> Policy:
    """The policy `name` over the exact solver `base`; `gamma` overrides ENERGY_GAMMA (energy
    policy) and `beta` IPA's cost weight (ipa and energy: the cost-only frontier's sweep)."""
    weights = ipa_weights(profile)
    if beta is not None:
        weights = dataclasses.replace(weights, beta=beta)
    if name == "ipa":
        return Policy(name, weights, base)
    if name == "energy":
        return Policy(
            name, dataclasses.replace(weights, gamma=ENERGY_GAMMA if gamma is None else gamma), base
        )
    if name == "fa2-low":
        return Policy(name, weights, RestrictedSolver(base, lightest))
    if name == "fa2-high":
        return Policy(name, weights, RestrictedSolver(base, fa2_high))
    if name == "rim-high":
        return Policy(name, weights, RestrictedSolver(base, None, RIM_REPLICAS), RIM_REPLICAS)
    if name == "qlearning":
        return Policy(name, weights, QLearningSolver(seed=seed))
    raise ValueError(f"unknown policy {name!r}; choose one of {', '.join(POLICY_NAMES)}")
