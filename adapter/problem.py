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
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

from adapter.profiles import Profile, Stage, Variant

# Latency sums are compared with this slack so that solvers working in floating point and the
# oracle summing in Python agree on instances that sit exactly on the SLA.
LATENCY_TOLERANCE_S = 1e-9


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
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"weights.{name} must be a finite number >= 0, got {value}")


def least_replicas(arrival_rate_rps: float, replica_throughput_rps: float, replicas_min: int) -> int:
    """The least n >= replicas_min with n * throughput >= λ, robust to float rounding."""
    if arrival_rate_rps <= 0:
        return replicas_min
    n = math.ceil(arrival_rate_rps / replica_throughput_rps)
    while n > 1 and (n - 1) * replica_throughput_rps >= arrival_rate_rps:
        n -= 1
    while n * replica_throughput_rps < arrival_rate_rps:
        n += 1
    return max(n, replicas_min)


def queue_delay_s(batch: int, arrival_rate_rps: float) -> float:
    """Time to fill a batch in the stage's one queue: q(b) = (b - 1) / λ, 0 when λ = 0."""
    return (batch - 1) / arrival_rate_rps if arrival_rate_rps > 0 else 0.0


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
    # A stage runs its replicas at most this busy: n * throughput * utilisation_max >= λ. Below
    # 1 it leaves headroom for bursty arrivals, whose queues a plan at 100 % never drains.
    utilisation_max: float = 1.0

    def __post_init__(self) -> None:
        if not math.isfinite(self.utilisation_max) or not 0 < self.utilisation_max <= 1:
            raise ValueError(f"utilisation_max must be in (0, 1], got {self.utilisation_max}")
        if not math.isfinite(self.arrival_rate_rps) or self.arrival_rate_rps < 0:
            raise ValueError(f"arrival_rate_rps must be a finite number >= 0, got {self.arrival_rate_rps}")
        if not math.isfinite(self.sla_s) or self.sla_s <= 0:
            raise ValueError(f"sla_s must be a finite number > 0, got {self.sla_s}")
        if self.replicas_min < 1 or self.replicas_max < self.replicas_min:
            raise ValueError(
                f"replicas_min must be >= 1 and <= replicas_max, got {self.replicas_min}..{self.replicas_max}"
            )
        if self.batch_sizes is not None and (not self.batch_sizes or min(self.batch_sizes) < 1):
            raise ValueError(f"batch_sizes must be a non-empty list of sizes >= 1, got {self.batch_sizes}")
        for stage in self.profile.stages:
            if not self._batches(stage, stage.variants):
                raise ValueError(
                    f"batch_sizes {list(self.batch_sizes or ())} leave stage {stage.name!r} with no measured size"
                )

    def _batches(self, stage: Stage, variants: Sequence[Variant]) -> list[tuple[Variant, int]]:
        allowed = set(self.batch_sizes) if self.batch_sizes is not None else None
        return [
            (variant, point.size)
            for variant in variants
            for point in variant.batches
            if allowed is None or point.size in allowed
        ]

    def option(self, stage: int, variant: Variant, batch: int, replicas: int) -> Option:
        """Every term of one stage's choice, for any replica count (the oracle walks them all)."""
        point = variant.batch(batch)
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
                and replicas * self.usable_throughput_rps(variant, batch) >= lam
            ),
        )

    def usable_throughput_rps(self, variant: Variant, batch: int) -> float:
        """One replica's throughput at `batch` under the utilisation cap."""
        return variant.batch(batch).replica_throughput_rps * self.utilisation_max

    def stage_choices(self, stage: int) -> list[tuple[Variant, int]]:
        """The allowed (variant, batch size) pairs of one stage."""
        s = self.profile.stages[stage]
        return self._batches(s, s.variants)

    @cached_property
    def _options(self) -> tuple[tuple[Option, ...], ...]:
        # Solvers, infeasibility() and the API all ask for the same options; the problem is
        # immutable, so they are built once (cached_property writes past the frozen __setattr__).
        result = []
        for stage in range(len(self.profile.stages)):
            row = []
            for variant, batch in self.stage_choices(stage):
                thr = self.usable_throughput_rps(variant, batch)
                n = least_replicas(self.arrival_rate_rps, thr, self.replicas_min)
                row.append(self.option(stage, variant, batch, n))
            result.append(tuple(row))
        return tuple(result)

    def options(self, stage: int) -> list[Option]:
        """Each allowed (variant, batch) with its least sufficient replicas; includes options
        whose least replicas exceed replicas_max (feasible_throughput False)."""
        return list(self._options[stage])

    def best_effort(self) -> list[Option]:
        """Per stage, the most throughput the profiles allow (replicas_max of the option with the
        highest replica throughput; ties to the lower latency): what an infeasible answer holds."""
        chosen = []
        for stage in range(len(self.profile.stages)):
            variant, batch = max(
                self.stage_choices(stage),
                key=lambda vb: (
                    vb[0].batch(vb[1]).replica_throughput_rps,
                    -vb[0].batch(vb[1]).latency_s,
                ),
            )
            chosen.append(self.option(stage, variant, batch, self.replicas_max))
        return chosen

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
        return {
            "stage": self.stage,
            "variant": self.variant,
            "replicas": self.replicas,
            "batch": self.batch,
            "latency_s": self.latency_s,
            "queue_s": self.queue_s,
            "power_w": self.power_w,
            "cores": self.cores,
        }


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
