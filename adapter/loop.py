"""One pass of query -> predict -> solve -> stabilize -> actuate, driven by an injected clock.

Production calls `AdaptLoop.step(now_s)` from a timer with Prometheus and Seldon behind the
`LoadHistory` and `Actuator` seams; the simulator calls it from its event queue with a simulated
cluster behind the same seams, so both run the very same problem and solver code.

Stabilization (docs/adapter.md, "controller"), because every change is a rollout: the loop
provisions for the highest prediction of the last `scale_down_window_s`, so replicas go up at
once and down only once the higher predictions have left the window (the HorizontalPodAutoscaler's
scale-down stabilization window, which keeps the highest recommendation of its window); the
variant and batch in force are kept, with the replicas that load needs, while they still meet
the SLA and the load, unless the solver's answer beats them by more than `switch_cost` in
objective and they have been in force for `min_dwell_s`. A manual apply
(`hold`) pins its configuration for `hold_s`; the loop reports the hold and resumes after.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from adapter.actuate.dryrun import configuration, describe_change
from adapter.errors import ActuationError, QueryError
from adapter.problem import Decision, Option, Problem, Solver, Weights
from adapter.profiles import Profile

logger = logging.getLogger(__name__)

RateSample = tuple[float, float]  # (time_s, requests per second)


class LoadHistory(Protocol):
    """Where the observed request rate comes from (Prometheus, or the simulated cluster)."""

    def request_rate_history(self, pipeline: str, now_s: float, window_s: float) -> Sequence[RateSample]:
        """Offered load (arrivals, or served + backlog growth; not the served rate alone, which
        saturates at capacity) over (now_s - window_s, now_s], oldest first. Raises QueryError."""
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
    # Stabilization (module docstring): the HPA's default scale-down window; a switch of variant
    # or batch must gain more than 0.02 in objective (2 cores at the default beta) and wait
    # for the predictor's window (120 s) since the last one.
    scale_down_window_s: float = 300.0
    switch_cost: float = 0.02
    min_dwell_s: float = 120.0
    # Plans keep each stage at most 80 % busy (Problem.utilisation_max): the headroom that
    # absorbs a burst during the interval and the switch delay before the next plan serves.
    utilisation_max: float = 0.8

    def __post_init__(self) -> None:
        if not 0 < self.utilisation_max <= 1:
            raise ValueError(f"utilisation_max must be in (0, 1], got {self.utilisation_max}")
        for name in ("scale_down_window_s", "switch_cost", "min_dwell_s"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")


# A manual apply holds its configuration this long unless the request says otherwise, and at
# most MAX_HOLD_S (a forgotten hold must not switch the loop off for good).
DEFAULT_HOLD_S = 600.0
MAX_HOLD_S = 86400.0


@dataclass(frozen=True)
class StepResult:
    now_s: float
    decision: Decision | None  # the configuration in force after this step
    observed_rps: float | None  # the latest observed rate, None when unknown
    predicted_rps: float | None
    degraded: bool
    reason: str  # why degraded ("" when healthy)
    changed: bool  # the actuator changed something
    held_until_s: float | None = None  # a manual apply pins the configuration until then


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
        self._choice_since_s = -math.inf  # when the variant or batch in force last changed
        self._predictions: deque[tuple[float, float]] = deque()  # (time_s, rate) in the window
        self._lock = threading.Lock()  # hold() comes from the API's threads
        self._held: tuple[Decision, float] | None = None
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
            utilisation_max=s.utilisation_max,
        )

    def hold(self, decision: Decision, now_s: float, hold_s: float = DEFAULT_HOLD_S) -> float:
        """Pin `decision` (applied by hand) until now_s + hold_s; returns that time."""
        if not math.isfinite(hold_s) or not 0 <= hold_s <= MAX_HOLD_S:
            raise ValueError(f"hold_s must be within 0..{MAX_HOLD_S:g} s, got {hold_s}")
        until_s = now_s + hold_s
        with self._lock:
            self._held = (decision, until_s)
        logger.info(
            "%s: manual configuration held until %.0f (%g s): %s",
            self.settings.pipeline,
            until_s,
            hold_s,
            describe_change(None, configuration(decision)),
        )
        return until_s

    def held_until_s(self, now_s: float) -> float | None:
        with self._lock:
            return self._held[1] if self._held is not None and now_s < self._held[1] else None

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
        self._predictions.append((now_s, predicted))
        while (
            len(self._predictions) > 1
            and self._predictions[0][0] <= now_s - self.settings.scale_down_window_s
        ):
            self._predictions.popleft()
        with self._lock:
            held = self._held
        if held is not None:
            decision, until_s = held
            if now_s < until_s:
                self._adopt(decision, now_s)
                return self._record(
                    StepResult(now_s, decision, observed, predicted, False, "", False, held_until_s=until_s)
                )
            with self._lock:
                if self._held is held:
                    self._held = None
            logger.info("%s: manual hold over, adapting again", self.settings.pipeline)
        started = time.perf_counter()
        # Scale-down stabilization: provision for the window's highest prediction (this one
        # included, so scaling up is immediate).
        problem = self.problem(max(rate for _, rate in self._predictions))
        decision = self._stabilize(problem, self._solver.solve(problem), now_s)
        logger.debug("solved in %.4f s", time.perf_counter() - started)
        try:
            changed = self._actuator.apply(self.settings.pipeline, decision)
        except ActuationError as exc:
            logger.warning("actuation failed: %s", exc)
            return self._record(
                StepResult(now_s, kept, observed, predicted, True, f"actuation: {exc}", False)
            )
        if changed:
            logger.info(
                "%s: reconfigured for %.1f req/s: %s",
                self.settings.pipeline,
                predicted,
                describe_change(configuration(kept) if kept else None, configuration(decision)),
            )
        self._adopt(decision, now_s)
        if changed or self._in_force_since_s is None:
            self._in_force_since_s = now_s
        return self._record(StepResult(now_s, decision, observed, predicted, False, "", changed))

    def _adopt(self, decision: Decision, now_s: float) -> None:
        """Note when the variant or batch of some stage changes (the dwell counts from there)."""
        before = self.last.decision if self.last else None
        if before is None or _choices(before) != _choices(decision):
            self._choice_since_s = now_s

    def _stabilize(self, problem: Problem, fresh: Decision, now_s: float) -> Decision:
        """The solver's answer, or the (variant, batch) per stage in force with the replicas
        this problem needs for it (see the module docstring)."""
        in_force = self.last.decision if self.last else None
        keep = _options_for(problem, _choices(in_force)) if in_force is not None else None
        if keep is None or not problem.is_feasible(keep):
            return fresh  # nothing in force, or it no longer holds: the solver's answer at once
        gain = fresh.objective - sum(o.value for o in keep)
        worth_it = fresh.feasible and gain > self.settings.switch_cost
        if worth_it and now_s - self._choice_since_s >= self.settings.min_dwell_s:
            return fresh
        return Decision.build(problem, keep, fresh.solver, fresh.solve_time_s, binding=None)

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


def _choices(decision: Decision) -> list[tuple[str, int]]:
    return [(c.variant, c.batch) for c in decision.stages]


def _options_for(problem: Problem, choices: Sequence[tuple[str, int]]) -> list[Option] | None:
    """The problem's option (least replicas at its rate) for each stage's (variant, batch); None
    when one is not allowed in this problem (a batch size left out, a variant gone)."""
    chosen = []
    for stage, (variant, batch) in enumerate(choices):
        found = next(
            (o for o in problem.options(stage) if (o.variant.name, o.batch) == (variant, batch)), None
        )
        if found is None:
            return None
        chosen.append(found)
    return chosen


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
