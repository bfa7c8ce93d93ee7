"""One pass of query -> predict -> solve -> actuate, driven by an injected clock.

Production calls `AdaptLoop.step(now_s)` from a timer with Prometheus and Seldon behind the
`LoadHistory` and `Actuator` seams; the simulator calls it from its event queue with a simulated
cluster behind the same seams, so both run the very same problem and solver code.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from adapter.errors import ActuationError, QueryError
from adapter.problem import Decision, Problem, Solver, Weights
from adapter.profiles import Profile

logger = logging.getLogger(__name__)

RateSample = tuple[float, float]  # (time_s, requests per second)


class LoadHistory(Protocol):
    """Where the observed request rate comes from (Prometheus, or the simulated cluster)."""

    def request_rate_history(self, pipeline: str, now_s: float, window_s: float) -> Sequence[RateSample]:
        """Observed arrival rate over (now_s - window_s, now_s], oldest first. Raises QueryError."""
        ...


class LoadPredictor(Protocol):
    def predict_rps(self, history: Sequence[RateSample], now_s: float) -> float:
        """The arrival rate to provision for over the next adaptation interval (>= 0)."""
        ...


class StageEnergy(Protocol):
    """Measured joules per request of the variant running in one stage (energyd via Prometheus)."""

    def stage_energy_per_request_j(self, pipeline: str, stage: str, now_s: float) -> float | None:
        """None when the stage served nothing in the window. Raises QueryError."""
        ...


class Actuator(Protocol):
    def apply(self, pipeline: str, decision: Decision) -> bool:
        """Reconfigure the pipeline; True when anything changed. Raises ActuationError."""
        ...


@dataclass(frozen=True)
class LoopSettings:
    pipeline: str
    sla_s: float
    weights: Weights = field(default_factory=Weights)
    replicas_min: int = 1
    replicas_max: int = 32
    batch_sizes: tuple[int, ...] | None = None
    history_window_s: float = 120.0
    # A configuration must have been in force this long before its energy is measured, so the
    # rate window holds no joules of the previous variant.
    energy_settle_s: float = 60.0


@dataclass(frozen=True)
class StepResult:
    now_s: float
    decision: Decision | None  # the configuration in force after this step
    observed_rps: float | None  # the latest observed rate, None when unknown
    predicted_rps: float | None
    degraded: bool
    reason: str  # why degraded ("" when healthy)
    changed: bool  # the actuator changed something


class AdaptLoop:
    def __init__(
        self,
        profile: Profile,
        settings: LoopSettings,
        load: LoadHistory,
        predictor: LoadPredictor,
        solver: Solver,
        actuator: Actuator,
        energy: StageEnergy | None = None,
    ) -> None:
        self.profile = profile
        self.settings = settings
        self._load = load
        self._predictor = predictor
        self._solver = solver
        self._actuator = actuator
        self._energy = energy
        self._in_force_since_s: float | None = None
        self.last: StepResult | None = None

    def problem(self, arrival_rate_rps: float) -> Problem:
        s = self.settings
        return Problem(
            profile=self.profile,
            arrival_rate_rps=arrival_rate_rps,
            sla_s=s.sla_s,
            weights=s.weights,
            replicas_min=s.replicas_min,
            replicas_max=s.replicas_max,
            batch_sizes=s.batch_sizes,
        )

    def step(self, now_s: float) -> StepResult:
        kept = self.last.decision if self.last else None
        if kept is not None and self._energy is not None:
            self._refresh_energy(self._energy, kept, now_s)
        try:
            history = self._load.request_rate_history(
                self.settings.pipeline, now_s, self.settings.history_window_s
            )
        except QueryError as exc:
            # Keep the configuration in force: a blind reconfiguration is worse than a stale one.
            logger.warning("load query failed, keeping the last decision: %s", exc)
            return self._record(StepResult(now_s, kept, None, None, True, f"query: {exc}", False))
        observed = history[-1][1] if history else None
        predicted = max(0.0, self._predictor.predict_rps(history, now_s))
        started = time.perf_counter()
        decision = self._solver.solve(self.problem(predicted))
        logger.debug("solved in %.4f s", time.perf_counter() - started)
        try:
            changed = self._actuator.apply(self.settings.pipeline, decision)
        except ActuationError as exc:
            logger.warning("actuation failed: %s", exc)
            return self._record(
                StepResult(now_s, kept, observed, predicted, True, f"actuation: {exc}", False)
            )
        if changed or self._in_force_since_s is None:
            self._in_force_since_s = now_s
        return self._record(StepResult(now_s, decision, observed, predicted, False, "", changed))

    def _refresh_energy(self, energy: StageEnergy, in_force: Decision, now_s: float) -> None:
        """Replace the profile's energy_per_request_j of each running (variant, batch) with the
        measured one. Only the running variant has pods to measure; the others keep theirs."""
        if self._in_force_since_s is None or now_s - self._in_force_since_s < self.settings.energy_settle_s:
            return
        for choice in in_force.stages:
            try:
                joules = energy.stage_energy_per_request_j(self.settings.pipeline, choice.stage, now_s)
            except QueryError as exc:
                logger.warning("energy query failed, keeping the profile's figures: %s", exc)
                return
            if joules is not None:
                self.profile = with_energy(self.profile, choice.stage, choice.variant, choice.batch, joules)

    def _record(self, result: StepResult) -> StepResult:
        self.last = result
        return result


def with_energy(
    profile: Profile, stage: str, variant: str, batch: int, energy_per_request_j: float
) -> Profile:
    """A copy of `profile` with one measured point's energy_per_request_j replaced."""
    stages = []
    for s in profile.stages:
        if s.name == stage:
            v = s.variant(variant)
            points = tuple(
                p.model_copy(update={"energy_per_request_j": energy_per_request_j}) if p.size == batch else p
                for p in v.batches
            )
            new_variant = v.model_copy(update={"batches": points})
            s = s.model_copy(
                update={"variants": tuple(new_variant if x.name == variant else x for x in s.variants)}
            )
        stages.append(s)
    return profile.model_copy(update={"stages": tuple(stages)})
