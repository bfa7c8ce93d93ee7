"""The decision problem of shared/interfaces.md as data. It knows no solver.

For each stage choose a variant v, a batch size b and replicas n. Because every weight is
non-negative, the objective never rises with n, so for a fixed (v, b) the best n is the least
that carries the load: n*(v, b) = max(replicas_min, ceil(λ / throughput(v, b))). The problem is
therefore a choice of one *option* (v, b, n*) per stage under one latency budget, which is what
`options` enumerates and every solver consumes; the exhaustive oracle in tests also walks every
n to prove this reduction right.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from adapter import limits
from adapter.profiles import BatchPoint, Profile, Stage, Variant

# Latency sums are compared with this slack so that solvers working in floating point and the
# oracle summing in Python agree on instances that sit exactly on the SLA.
LATENCY_TOLERANCE_S = 1e-9


class InvalidProblem(ValueError):
    """An argument of the problem is out of its bounds (adapter/limits.py); `field` names it as
    a POST /decide request does, and the message starts with it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Weights:
    """Objective weights: accuracy (alpha), cores (beta), watts (gamma), batch size (delta)."""

    alpha: float = 1.0
    beta: float = 0.01
    gamma: float = 0.0
    delta: float = 1e-6

    def __post_init__(self) -> None:
        for name in ("alpha", "beta", "gamma", "delta"):
            value = getattr(self, name)
            if not math.isfinite(value) or not 0 <= value <= limits.MAX_WEIGHT:
                raise InvalidProblem(
                    f"weights.{name}",
                    f"weights.{name} must be a number in [0, {limits.MAX_WEIGHT:g}], got {value}",
                )


# Below 2**52 a float quotient is within one unit of the true one, so one correction step suffices.
_EXACT_QUOTIENT = float(2**52)


def least_replicas(arrival_rate_rps: float, replica_throughput_rps: float, replicas_min: int) -> int:
    """The least n >= replicas_min with n * throughput >= λ, robust to float rounding; O(1)."""
    if arrival_rate_rps <= 0:
        return replicas_min
    ratio = arrival_rate_rps / replica_throughput_rps
    if not ratio <= _EXACT_QUOTIENT:  # also NaN and inf
        raise InvalidProblem(
            "arrival_rate_rps",
            f"arrival_rate_rps / throughput_rps = {ratio:.3g} replicas is past any limit "
            f"(arrival rate <= {limits.MAX_ARRIVAL_RATE_RPS:g}, throughput >= {limits.MIN_THROUGHPUT_RPS:g})",
        )
    n = max(1, math.ceil(ratio))
    # The products below are the very ones the throughput constraint evaluates.
    if n * replica_throughput_rps < arrival_rate_rps:
        n += 1
    elif n > 1 and (n - 1) * replica_throughput_rps >= arrival_rate_rps:
        n -= 1
    return max(n, replicas_min)


def queue_delay_s(batch: int, arrival_rate_rps: float) -> float:
    """Time to fill a batch in the stage's one queue: q(b) = (b - 1) / λ, 0 when λ = 0. Rates
    below MIN_ARRIVAL_RATE_RPS count as that rate, so that q stays finite (~4e9 s at most)."""
    if arrival_rate_rps <= 0:
        return 0.0
    return (batch - 1) / max(arrival_rate_rps, limits.MIN_ARRIVAL_RATE_RPS)


@dataclass(frozen=True)
class Option:
    """One (variant, batch, replicas) choice of one stage with every term precomputed."""

    stage: int
    variant: Variant
    batch: int
    replicas: int
    latency_s: float  # the batch's processing latency
    queue_s: float  # q(b)
    power_w: float
    cores: float  # replicas * cores per replica
    value: float  # this stage's contribution to the objective
    feasible_throughput: bool  # replicas <= replicas_max

    @property
    def total_latency_s(self) -> float:
        return self.latency_s + self.queue_s


@dataclass(frozen=True)
class Problem:
    profile: Profile
    arrival_rate_rps: float
    sla_s: float
    weights: Weights = field(default_factory=Weights)
    replicas_min: int = 1
    replicas_max: int = 32
    batch_sizes: tuple[int, ...] | None = None  # None: every measured size
    # Every option, built once in __post_init__: solvers, infeasibility() and the API all ask
    # for them, and the problem is immutable. (Not a functools.cached_property: under Python
    # 3.11 its lock is shared by every instance, so one slow problem would stall all others.)
    # A stage runs its replicas at most this busy: n * throughput * utilisation_max >= λ. Below
    # 1 it leaves headroom for bursty arrivals, whose queues a plan at 100 % never drains.
    utilisation_max: float = 1.0
    _options: tuple[tuple[Option, ...], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0 < self.utilisation_max <= 1:  # also NaN
            raise InvalidProblem(
                "utilisation_max", f"utilisation_max must be a number in (0, 1], got {self.utilisation_max}"
            )
        if not 0 <= self.arrival_rate_rps <= limits.MAX_ARRIVAL_RATE_RPS:  # also NaN
            raise InvalidProblem(
                "arrival_rate_rps",
                f"arrival_rate_rps must be a number in [0, {limits.MAX_ARRIVAL_RATE_RPS:g}], "
                f"got {self.arrival_rate_rps}",
            )
        if not 0 < self.sla_s <= limits.MAX_SLA_S:
            raise InvalidProblem(
                "sla_s", f"sla_s must be a number in (0, {limits.MAX_SLA_S:g}], got {self.sla_s}"
            )
        if not 1 <= self.replicas_min <= self.replicas_max <= limits.MAX_REPLICAS:
            raise InvalidProblem(
                "replicas_min",
                f"replicas_min must be >= 1 and <= replicas_max <= {limits.MAX_REPLICAS}, "
                f"got {self.replicas_min}..{self.replicas_max}",
            )
        if self.batch_sizes is not None and (
            not 0 < len(self.batch_sizes) <= limits.MAX_BATCH_SIZES
            or not 1 <= min(self.batch_sizes) <= max(self.batch_sizes) <= limits.MAX_BATCH_SIZE
        ):
            raise InvalidProblem(
                "batch_sizes",
                f"batch_sizes must be 1 to {limits.MAX_BATCH_SIZES} sizes in [1, {limits.MAX_BATCH_SIZE}], "
                f"got {limits.quoted(list(self.batch_sizes))}",
            )
        for stage in self.profile.stages:
            if not self._points(stage):
                raise InvalidProblem(
                    "batch_sizes",
                    f"batch_sizes {limits.quoted(list(self.batch_sizes or ()))} leave stage "
                    f"{stage.name!r} with no measured size",
                )
        object.__setattr__(self, "_options", self._least_options(self.arrival_rate_rps))

    def _points(self, stage: Stage) -> list[tuple[Variant, BatchPoint]]:
        allowed = set(self.batch_sizes) if self.batch_sizes is not None else None
        return [
            (variant, point)
            for variant in stage.variants
            for point in variant.batches
            if allowed is None or point.size in allowed
        ]

    def option(self, stage: int, variant: Variant, batch: int, replicas: int) -> Option:
        """Every term of one stage's choice, for any replica count (the oracle walks them all)."""
        return self._option(stage, variant, variant.batch(batch), replicas)

    def _option(self, stage: int, variant: Variant, point: BatchPoint, replicas: int) -> Option:
        batch = point.size
        lam = self.arrival_rate_rps
        power_w = replicas * variant.idle_power_w + lam * point.energy_per_request_j
        w = self.weights
        value = (
            w.alpha * variant.accuracy / 100.0
            - w.beta * replicas * variant.cores
            - w.gamma * power_w
            - w.delta * batch
        )
        return Option(
            stage=stage,
            variant=variant,
            batch=batch,
            replicas=replicas,
            latency_s=point.latency_s,
            queue_s=queue_delay_s(batch, lam),
            power_w=power_w,
            cores=replicas * variant.cores,
            value=value,
            feasible_throughput=(
                self.replicas_min <= replicas <= self.replicas_max
                and replicas * (point.replica_throughput_rps * self.utilisation_max) >= lam
            ),
        )

    def usable_throughput_rps(self, variant: Variant, batch: int) -> float:
        """One replica's throughput at `batch` under the utilisation cap."""
        return variant.batch(batch).replica_throughput_rps * self.utilisation_max

    def stage_choices(self, stage: int) -> list[tuple[Variant, int]]:
        """The allowed (variant, batch size) pairs of one stage."""
        return [(variant, point.size) for variant, point in self._points(self.profile.stages[stage])]

    def _least_options(self, carried_rps: float) -> tuple[tuple[Option, ...], ...]:
        """Per stage, each allowed (variant, batch) with the least replicas carrying `carried_rps`."""
        result = []
        for stage in range(len(self.profile.stages)):
            row = []
            # (variant, measured point) pairs directly: every option is built at construction,
            # and looking each point up again by size was most of a 5-stage solve.
            for variant, point in self._points(self.profile.stages[stage]):
                usable_rps = point.replica_throughput_rps * self.utilisation_max
                row.append(self._option(stage, variant, point, least_replicas(carried_rps, usable_rps, self.replicas_min)))
            result.append(tuple(row))
        return tuple(result)

    def options(self, stage: int) -> list[Option]:
        """Each allowed (variant, batch) with its least sufficient replicas; includes options
        whose least replicas exceed replicas_max (feasible_throughput False)."""
        return list(self._options[stage])

    def max_throughput_rps(self) -> float:
        """The most requests per second any configuration carries (under the utilisation cap):
        its slowest stage at replicas_max of that stage's fastest (variant, batch)."""
        return min(
            max(self.replicas_max * self.usable_throughput_rps(v, b) for v, b in self.stage_choices(s))
            for s in range(len(self.profile.stages))
        )

    def carried_rps(self, chosen: Sequence[Option]) -> float:
        """The part of the arrival rate a configuration carries: λ, or its slowest stage's capacity."""
        return min(
            self.arrival_rate_rps,
            *(o.replicas * self.usable_throughput_rps(o.variant, o.batch) for o in chosen),
        )

    def best_effort(self) -> list[Option]:
        """What an infeasible answer holds (shared/interfaces.md): the configuration carrying the
        most of the load that can be carried (all of it when only the SLA binds), with the least
        end-to-end latency, ties to the best objective. Latency and objective are sums over
        stages, so each stage takes its own least (latency, -value) among the (variant, batch)
        that carry that load within replicas_max, at the least replicas that do."""
        target_rps = min(self.arrival_rate_rps, self.max_throughput_rps())
        per_stage = self._options if target_rps == self.arrival_rate_rps else self._least_options(target_rps)
        return [
            min(
                (o for o in options if o.replicas <= self.replicas_max),
                key=lambda o: (o.total_latency_s, -o.value),
            )
            for options in per_stage
        ]

    def infeasibility(self) -> str | None:
        """Which constraint makes the problem infeasible ("throughput" first), or None."""
        per_stage = [
            [o for o in self.options(s) if o.feasible_throughput] for s in range(len(self.profile.stages))
        ]
        if any(not opts for opts in per_stage):
            return "throughput"
        if sum(min(o.total_latency_s for o in opts) for opts in per_stage) > self.sla_s + LATENCY_TOLERANCE_S:
            return "latency"
        return None

    def is_feasible(self, chosen: Sequence[Option]) -> bool:
        return all(o.feasible_throughput for o in chosen) and (
            sum(o.total_latency_s for o in chosen) <= self.sla_s + LATENCY_TOLERANCE_S
        )

    def decision(self, chosen: Sequence[Option], solver: str, solve_time_s: float) -> Decision:
        """A feasible answer from one option per stage."""
        return Decision.build(self, chosen, solver, solve_time_s, binding=None)

    def infeasible_decision(self, solver: str, solve_time_s: float, binding: str) -> Decision:
        return Decision.build(self, self.best_effort(), solver, solve_time_s, binding=binding)


@dataclass(frozen=True)
class StageChoice:
    stage: str
    variant: str
    replicas: int
    batch: int
    latency_s: float
    queue_s: float
    power_w: float
    cores: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Decision:
    """A solver's answer, shaped like the POST /decide response."""

    feasible: bool
    objective: float
    stages: tuple[StageChoice, ...]
    pas: float
    cores: float
    power_w: float
    latency_s: float
    arrival_rate_rps: float
    solver: str
    solve_time_s: float
    binding: str | None

    @staticmethod
    def build(
        problem: Problem,
        chosen: Sequence[Option],
        solver: str,
        solve_time_s: float,
        binding: str | None,
    ) -> Decision:
        stages = problem.profile.stages
        pas = 100.0
        for o in chosen:
            pas *= o.variant.accuracy / 100.0
        return Decision(
            feasible=binding is None,
            objective=sum(o.value for o in chosen),
            stages=tuple(
                StageChoice(
                    stage=stages[o.stage].name,
                    variant=o.variant.name,
                    replicas=o.replicas,
                    batch=o.batch,
                    latency_s=o.latency_s,
                    queue_s=o.queue_s,
                    power_w=o.power_w,
                    cores=o.cores,
                )
                for o in chosen
            ),
            pas=pas,
            cores=sum(o.cores for o in chosen),
            power_w=sum(o.power_w for o in chosen),
            latency_s=sum(o.total_latency_s for o in chosen),
            arrival_rate_rps=problem.arrival_rate_rps,
            solver=solver,
            solve_time_s=solve_time_s,
            binding=binding,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "feasible": self.feasible,
            "objective": self.objective,
            "stages": [s.to_json() for s in self.stages],
            "pas": self.pas,
            "cores": self.cores,
            "power_w": self.power_w,
            "latency_s": self.latency_s,
            "arrival_rate_rps": self.arrival_rate_rps,
            "solver": self.solver,
            "solve_time_s": self.solve_time_s,
            "binding": self.binding,
        }


class Solver(Protocol):
    """Solves a Problem exactly (zero optimality gap). Infeasible problems are answered with
    `problem.infeasible_decision(...)`, never an exception."""

    name: str

    def solve(self, problem: Problem) -> Decision: ...
