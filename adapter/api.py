"""The REST API: POST /decide, GET /healthz, GET /metrics, OpenAPI docs at /docs.

`create_app` takes every dependency; nothing is built at import time. /decide is a plain `def`
endpoint, so FastAPI runs the CPU-bound solve in its threadpool and the event loop keeps
answering /healthz and /metrics meanwhile.

Status codes, one per error class (adapter/errors.py): ProfileError and malformed input 422,
QueryError 503 (and the adapter reports itself degraded), ActuationError 502, infeasible 200
with `"feasible": false`; apply without a valid bearer token 401, with no token configured 403.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field

from adapter.errors import ActuationError, AdapterError, ProfileError, QueryError
from adapter.loop import DEFAULT_HOLD_S, MAX_HOLD_S, Actuator, LoadHistory, LoadPredictor
from adapter.metrics import AdapterMetrics
from adapter.problem import Decision, Problem, Solver, Weights
from adapter.profiles import Profile, parse_profile
from adapter.settings import AdapterSettings
from adapter.solve import SOLVER_NAMES

logger = logging.getLogger(__name__)

SolverFactory = Callable[[str], Solver]
# Pins an applied decision in the pipeline's adaptation loop for hold_s; the time it ends, or
# None when no loop adapts that pipeline.
Hold = Callable[[str, Decision, float], float | None]


class WeightsIn(BaseModel):
    """Objective weights; each one left out takes the server's default."""

    model_config = ConfigDict(extra="forbid")

    alpha: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    beta: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    gamma: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    delta: float | None = Field(default=None, ge=0, allow_inf_nan=False)


class DecideRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pipeline: str | dict[str, Any] = Field(description="a pipeline name from --profiles, or a whole profile")
    sla_s: float = Field(gt=0, allow_inf_nan=False, description="end-to-end latency bound, seconds")
    arrival_rate_rps: float | None = Field(
        default=None, ge=0, allow_inf_nan=False, description="absent: predicted from Prometheus"
    )
    weights: WeightsIn | None = None
    replicas_min: int = Field(default=1, ge=1)
    replicas_max: int = Field(default=32, ge=1)
    batch_sizes: list[int] | None = Field(
        default=None, min_length=1, description="default: every measured size"
    )
    solver: str = Field(default="auto", description=f"one of {', '.join(SOLVER_NAMES)}")
    apply: bool = False
    hold_s: float = Field(
        default=DEFAULT_HOLD_S,
        ge=0,
        le=MAX_HOLD_S,
        allow_inf_nan=False,
        description="with apply: seconds the adaptation loop keeps this configuration before adapting again",
    )


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts) or "(body)"


def _authorize(authorization: str | None, token: str | None) -> None:
    if not token:
        raise HTTPException(
            403, "apply is refused: no API token is configured on the server (set ADAPTER_API_TOKEN)"
        )
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise HTTPException(
            401,
            "apply needs a valid 'Authorization: Bearer <token>' header",
            headers={"WWW-Authenticate": "Bearer"},
        )


def create_app(
    profiles: Mapping[str, Profile],
    metrics: AdapterMetrics,
    solvers: SolverFactory,
    actuator: Actuator,
    predictor: LoadPredictor,
    load: LoadHistory | None,
    settings: AdapterSettings,
    now_s: Callable[[], float] = time.time,
    hold: Hold | None = None,
) -> FastAPI:
    app = FastAPI(
        title="energyd adapter",
        summary="Energy-aware configuration of ML inference pipelines (variant, batch, replicas per stage)",
    )

    @app.exception_handler(RequestValidationError)
    async def _malformed(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": _field(tuple(e["loc"])), "message": e["msg"]} for e in exc.errors()]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return JSONResponse({"detail": detail, "errors": errors}, status_code=422)

    @app.exception_handler(ProfileError)
    async def _bad_profile(request: Request, exc: ProfileError) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "field": exc.field}, status_code=422)

    @app.exception_handler(QueryError)
    async def _no_prometheus(request: Request, exc: QueryError) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "degraded": True}, status_code=503)

    @app.exception_handler(ActuationError)
    async def _actuation(request: Request, exc: ActuationError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=502)

    def resolve(pipeline: str | dict[str, Any]) -> Profile:
        if isinstance(pipeline, dict):
            return parse_profile(pipeline, "request body")
        if pipeline not in profiles:
            known = ", ".join(sorted(profiles)) or "none loaded"
            raise HTTPException(422, f"pipeline: unknown pipeline {pipeline!r} (known: {known})")
        return profiles[pipeline]

    def arrival_rate(name: str) -> float:
        if load is None:
            raise QueryError(
                "arrival_rate_rps is absent and no Prometheus is configured: send arrival_rate_rps"
            )
        now = now_s()
        try:
            history = load.request_rate_history(name, now, settings.history_window_s)
        except QueryError as exc:
            metrics.report("prometheus", str(exc))
            raise QueryError(f"arrival_rate_rps is absent and cannot be predicted: {exc}") from exc
        metrics.report("prometheus", None)
        return max(0.0, predictor.predict_rps(history, now))

    @app.post("/decide")
    def decide(request: DecideRequest, authorization: str | None = Header(default=None)) -> dict[str, Any]:
        """Choose variant, batch size and replicas per stage for the SLA and the arrival rate."""
        if request.apply:
            _authorize(authorization, settings.api_token)
        profile = resolve(request.pipeline)
        predicted = request.arrival_rate_rps is None
        rate = (
            arrival_rate(profile.pipeline) if request.arrival_rate_rps is None else request.arrival_rate_rps
        )
        given = request.weights.model_dump(exclude_none=True) if request.weights else {}
        try:
            problem = Problem(
                profile=profile,
                arrival_rate_rps=rate,
                sla_s=request.sla_s,
                weights=Weights(**{**vars(settings.weights), **given}),
                replicas_min=request.replicas_min,
                replicas_max=request.replicas_max,
                batch_sizes=tuple(request.batch_sizes) if request.batch_sizes is not None else None,
            )
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc
        try:
            decision = solvers(request.solver).solve(problem)
        except (ValueError, AdapterError) as exc:
            # A solver that cannot take this request: not installed, no licence, or an instance
            # too large for the exhaustive oracle. The caller can pick another.
            raise HTTPException(422, f"solver: {exc}") from exc
        metrics.count_decision(profile.pipeline, decision)
        body = decision.to_json()
        body.update(applied=False, changed=False, predicted=predicted, dry_run=None, held_until_s=None)
        if request.apply:
            try:
                body["changed"] = actuator.apply(profile.pipeline, decision)
            except ActuationError as exc:
                metrics.report("actuator", str(exc))
                raise
            metrics.report("actuator", None)
            metrics.set_in_force(profile, decision, request.sla_s)
            if hold is not None:
                body["held_until_s"] = hold(profile.pipeline, decision, request.hold_s)
            body.update(applied=True, dry_run=bool(getattr(actuator, "dry_run", False)))
        return body

    @app.get("/healthz")
    def healthz(strict: bool = False) -> JSONResponse:
        """200 with "ok" or "degraded" and the reasons; with ?strict=true a degraded adapter
        answers 503 (for a readiness probe that should take it out of rotation)."""
        reasons = metrics.degraded_reasons()
        status = "degraded" if reasons else "ok"
        body = {"status": status, "reasons": reasons, "pipelines": sorted(profiles)}
        return JSONResponse(body, status_code=503 if (strict and reasons) else 200)

    @app.get("/metrics")
    def prometheus_metrics() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return app
