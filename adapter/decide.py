"""One decision from one request: what POST /decide and `adapter decide` share.

The request and response models are the OpenAPI schema of /decide. Types are strict (`"2"` is
not a number, `true` is not a count) and every number is bounded (adapter/limits.py), so that a
request is either refused naming its field or answered with finite numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from adapter import limits
from adapter.errors import AdapterError
from adapter.loop import DEFAULT_HOLD_S, MAX_HOLD_S
from adapter.problem import Decision, InvalidProblem, Problem, Solver, StageChoice, Weights
from adapter.profiles import Profile
from adapter.solve import SolverName, SolverUnavailable
from adapter.solve.common import SolverTimeout

SolverFactory = Callable[[str], Solver]

_STRICT = ConfigDict(extra="forbid", strict=True)


class RequestError(AdapterError):
    """A request the adapter refuses: `status` (422, 503) and the `field` at fault."""

    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.status = status
        self.field = field


def _weight(what: str) -> Any:
    return Field(
        default=None, ge=0, le=limits.MAX_WEIGHT, allow_inf_nan=False, description=f"weight of {what}"
    )


class WeightsIn(BaseModel):
    """Objective weights; each one left out takes the server's default."""

    model_config = _STRICT

    alpha: float | None = _weight("accuracy")
    beta: float | None = _weight("cores")
    gamma: float | None = _weight("watts")
    delta: float | None = _weight("batch size")


class DecideRequest(BaseModel):
    model_config = _STRICT

    pipeline: Annotated[str, Field(min_length=1, max_length=limits.MAX_NAME_CHARS)] | dict[str, Any] = Field(
        description="a pipeline name from --profiles, or a whole profile object"
    )
    sla_s: float = Field(
        gt=0, le=limits.MAX_SLA_S, allow_inf_nan=False, description="end-to-end latency bound, seconds"
    )
    arrival_rate_rps: float | None = Field(
        default=None,
        ge=0,
        le=limits.MAX_ARRIVAL_RATE_RPS,
        allow_inf_nan=False,
        description="requests per second; absent: predicted from Prometheus",
    )
    weights: WeightsIn | None = None
    replicas_min: int = Field(default=1, ge=1, le=limits.MAX_REPLICAS)
    replicas_max: int = Field(default=32, ge=1, le=limits.MAX_REPLICAS)
    batch_sizes: list[Annotated[int, Field(ge=1, le=limits.MAX_BATCH_SIZE)]] | None = Field(
        default=None,
        min_length=1,
        max_length=limits.MAX_BATCH_SIZES,
        description="batch sizes allowed; default: every measured size",
    )
    solver: SolverName = "auto"
    apply: bool = Field(default=False, description="apply the decision (needs the bearer token)")
    hold_s: float = Field(
        default=DEFAULT_HOLD_S,
        ge=0,
        le=MAX_HOLD_S,
        allow_inf_nan=False,
        description="with apply: seconds the adaptation loop keeps this configuration before adapting again",
    )


class DecideResponse(BaseModel):
    """The decision (shared/interfaces.md); when infeasible, `binding` says what binds and
    `stages` hold the best effort."""

    feasible: bool
    objective: float
    stages: list[StageChoice]  # the dataclass the solvers fill: one schema, no copy
    pas: float
    cores: float
    power_w: float
    latency_s: float
    arrival_rate_rps: float
    sla_s: float
    solver: str
    solve_time_s: float
    binding: Literal["latency", "throughput"] | None
    applied: bool
    changed: bool
    predicted: bool = Field(description="the arrival rate was predicted from Prometheus")
    dry_run: bool | None = Field(description="when applied: whether the actuator only logged it")
    held_until_s: float | None = Field(
        description="when applied to a pipeline the loop adapts: Unix time until which the loop holds it"
    )


def decide(
    request: DecideRequest,
    profile: Profile,
    arrival_rate_rps: float,
    default_weights: Weights,
    solvers: SolverFactory,
) -> tuple[Decision, dict[str, Any]]:
    """Solve the request for `profile` at `arrival_rate_rps`: the decision and the response
    body (not applied, rate not predicted). Raises RequestError naming the field."""
    given = request.weights.model_dump(exclude_none=True) if request.weights else {}
    try:
        problem = Problem(
            profile=profile,
            arrival_rate_rps=arrival_rate_rps,
            sla_s=request.sla_s,
            weights=Weights(**{**vars(default_weights), **given}),
            replicas_min=request.replicas_min,
            replicas_max=request.replicas_max,
            batch_sizes=tuple(request.batch_sizes) if request.batch_sizes is not None else None,
        )
    except InvalidProblem as exc:
        raise RequestError(422, exc.field, str(exc)) from exc
    try:
        decision = solvers(request.solver).solve(problem)
    except SolverTimeout as exc:
        raise RequestError(503, "solver", str(exc)) from exc
    except (ValueError, SolverUnavailable, AdapterError) as exc:
        # Not installed, no licence, or an instance too large for the exhaustive oracle: the
        # caller can pick another solver.
        raise RequestError(422, "solver", str(exc)) from exc
    body = decision.to_json()
    body.update(
        sla_s=problem.sla_s, applied=False, changed=False, predicted=False, dry_run=None, held_until_s=None
    )
    return decision, body
