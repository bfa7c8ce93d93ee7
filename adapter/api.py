"""The REST API: POST /decide, GET /healthz, GET /metrics, OpenAPI docs at /docs.

`create_app` takes every dependency; nothing is built at import time. /decide is a plain `def`
endpoint, so FastAPI runs the CPU-bound solve in its threadpool; /healthz and /metrics are
coroutines on the event loop, so they answer even while every pool thread waits on a solve or a
Prometheus query.

Status codes, one per error class (adapter/errors.py): ProfileError and malformed input 422,
QueryError 503, a solver past its time limit 503, ActuationError 502, a body past
MAX_BODY_BYTES 413, infeasible 200 with `"feasible": false`; apply without a valid bearer token
401, with no token configured 403. Every error body is an ErrorBody; the OpenAPI document says
so (tests/adapter/test_openapi.py holds it to that).
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapter import limits
from adapter.decide import DecideRequest, DecideResponse, RequestError, SolverFactory, decide
from adapter.errors import ActuationError, ProfileError, QueryError
from adapter.loop import Actuator, LoadHistory, LoadPredictor
from adapter.metrics import AdapterMetrics
from adapter.problem import Decision
from adapter.profiles import Profile, parse_profile
from adapter.settings import AdapterSettings

logger = logging.getLogger(__name__)

# The metrics label of every decision on an inline profile: labels come only from configured
# pipelines, so that clients cannot grow the series without bound.
INLINE_PIPELINE_LABEL = "(inline)"
# Pins an applied decision in the pipeline's adaptation loop for hold_s; the time it ends, or
# None when no loop adapts that pipeline.
Hold = Callable[[str, Decision, float], float | None]


class FieldError(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    """Every error answer: `detail` says what and why; `field` (422) names the input at fault."""

    detail: str
    field: str | None = None
    errors: list[FieldError] | None = None


class HealthBody(BaseModel):
    status: Literal["ok", "degraded", "unhealthy"]
    reasons: dict[str, str]
    pipelines: list[str]


def _error(status: int, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse(ErrorBody(detail=detail, **extra).model_dump(exclude_none=True), status_code=status)


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": what}
    for status, what in (
        (400, "the body could not be read"),
        (401, "apply without a valid bearer token"),
        (403, "apply, and no token is configured on the server"),
        (413, f"the body exceeds {limits.MAX_BODY_BYTES} bytes"),
        (422, "malformed input: `field` names it"),
        (502, "the actuator failed"),
        (503, "Prometheus cannot predict the rate, or the solver ran out of time"),
    )
}


class BodyLimit:
    """Refuses a request body past `max_bytes` with 413, whether or not it states its length,
    before the application reads it whole."""

    def __init__(self, app: ASGIApp, max_bytes: int = limits.MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._refuse(send)
            return
        received = 0
        too_large = False

        async def counted() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    too_large = True
                    raise _BodyTooLarge
            return message

        refused = False

        async def guarded(message: Message) -> None:
            # FastAPI turns the failed read into its own 400: answer 413 in its place.
            nonlocal refused
            if not too_large:
                await send(message)
            elif message["type"] == "http.response.start" and not refused:
                refused = True
                await self._refuse(send)

        try:
            await self.app(scope, counted, guarded)
        except _BodyTooLarge:
            if not refused:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        response = _error(413, f"(body): larger than {self.max_bytes} bytes", field="(body)")
        await response({"type": "http"}, _no_body, send)


class _BodyTooLarge(Exception):
    pass


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def _field(loc: tuple[Any, ...]) -> str:
    # Unknown keys are part of the location: quote at most a prefix of a hostile one.
    parts = [str(p)[: limits.MAX_QUOTED_CHARS] for p in loc if p != "body"]
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
    liveness: Callable[[], Mapping[str, str]] | None = None,
    hold: Hold | None = None,
) -> FastAPI:
    """`liveness` gives the reasons the adaptation loop is unhealthy (a step overdue), if any;
    `hold` pins an applied decision in the pipeline's loop for the request's hold_s."""
    # /docs and /redoc with their assets served from the package, not a CDN: they work offline.
    app = FastAPIOffline(
        title="energyd adapter",
        summary="Energy-aware configuration of ML inference pipelines (variant, batch, replicas per stage)",
    )
    app.add_middleware(BodyLimit)

    @app.exception_handler(RequestValidationError)
    async def _malformed(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [FieldError(field=_field(tuple(e["loc"])), message=e["msg"]) for e in exc.errors()]
        detail = "; ".join(f"{e.field}: {e.message}" for e in errors[:5])
        return _error(422, detail, field=errors[0].field if errors else "(body)", errors=errors[:20])

    @app.exception_handler(RequestError)
    async def _refused(request: Request, exc: RequestError) -> JSONResponse:
        return _error(exc.status, str(exc), field=exc.field)

    @app.exception_handler(ProfileError)
    async def _bad_profile(request: Request, exc: ProfileError) -> JSONResponse:
        return _error(422, str(exc), field=exc.field)

    @app.exception_handler(QueryError)
    async def _no_prometheus(request: Request, exc: QueryError) -> JSONResponse:
        return _error(503, str(exc))

    @app.exception_handler(ActuationError)
    async def _actuation(request: Request, exc: ActuationError) -> JSONResponse:
        return _error(502, str(exc))

    def resolve(pipeline: str | dict[str, Any]) -> Profile:
        if isinstance(pipeline, dict):
            return parse_profile(pipeline, "request body")
        if pipeline not in profiles:
            known = ", ".join(sorted(profiles)) or "none loaded"
            raise RequestError(
                422, "pipeline", f"unknown pipeline {limits.quoted(pipeline)} (known: {known})"
            )
        return profiles[pipeline]

    def arrival_rate(name: str) -> float:
        """The predicted rate. A failure answers this caller with 503; it is no sign of the
        adapter's health (the loop's own steps are), so it marks nothing degraded."""
        if load is None:
            raise QueryError(
                "arrival_rate_rps is absent and no Prometheus is configured: send arrival_rate_rps"
            )
        now = now_s()
        try:
            history = load.request_rate_history(name, now, settings.history_window_s)
        except QueryError as exc:
            raise QueryError(f"arrival_rate_rps is absent and cannot be predicted: {exc}") from exc
        predicted = max(0.0, predictor.predict_rps(history, now))
        if not predicted <= limits.MAX_ARRIVAL_RATE_RPS:
            raise QueryError(
                f"arrival_rate_rps is absent and the prediction {predicted:.3g} req/s is past "
                f"{limits.MAX_ARRIVAL_RATE_RPS:g}"
            )
        return predicted

    @app.post("/decide", response_model=None, responses={200: {"model": DecideResponse}, **_ERRORS})
    def decide_endpoint(
        request: DecideRequest, authorization: str | None = Header(default=None)
    ) -> dict[str, Any]:
        """Choose variant, batch size and replicas per stage for the SLA and the arrival rate."""
        if request.apply:
            _authorize(authorization, settings.api_token)
        profile = resolve(request.pipeline)
        configured = profile.pipeline in profiles
        if request.apply and not configured:
            raise RequestError(
                422, "pipeline", f"apply needs a configured pipeline, not {limits.quoted(profile.pipeline)}"
            )
        predicted = request.arrival_rate_rps is None
        rate = (
            arrival_rate(profile.pipeline) if request.arrival_rate_rps is None else request.arrival_rate_rps
        )
        decision, body = decide(request, profile, rate, settings.weights, solvers)
        body["predicted"] = predicted
        metrics.count_decision(profile.pipeline if configured else INLINE_PIPELINE_LABEL, decision)
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
                metrics.set_hold(profile.pipeline, body["held_until_s"])
            body.update(applied=True, dry_run=bool(getattr(actuator, "dry_run", False)))
        return body

    @app.get(
        "/healthz",
        responses={
            200: {"model": HealthBody},
            422: _ERRORS[422],
            503: {"model": HealthBody, "description": "unhealthy, or degraded with ?strict=true"},
        },
    )
    async def healthz(strict: bool = False) -> JSONResponse:
        """200 with "ok" or "degraded" and the reasons; with ?strict=true a degraded adapter
        answers 503 (for a readiness probe that should take it out of rotation). A loop that
        has not completed a step for several intervals is "unhealthy": 503 always."""
        unhealthy = dict(liveness()) if liveness is not None else {}
        reasons = {**metrics.degraded_reasons(), **unhealthy}
        status: Literal["ok", "degraded", "unhealthy"] = (
            "unhealthy" if unhealthy else ("degraded" if reasons else "ok")
        )
        body = HealthBody(status=status, reasons=reasons, pipelines=sorted(profiles))
        failing = bool(unhealthy) or (strict and bool(reasons))
        return JSONResponse(body.model_dump(), status_code=503 if failing else 200)

    @app.get(
        "/metrics",
        response_class=Response,
        responses={
            200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "metrics"}
        },
    )
    async def prometheus_metrics() -> Response:
        """The adapter's metrics in Prometheus' text format."""
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return app
