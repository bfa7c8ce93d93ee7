"""`adapter`: the one place where the adapter's objects are built and wired.

`adapter run` starts the adaptation loop (one AdaptLoop per pipeline, stepped every --interval
seconds in a background thread) and the REST API on uvicorn (one worker). SIGTERM or SIGINT
stops uvicorn, then the loop thread, and the process exits 0. Prometheus unreachable makes the
adapter degraded, never makes it exit. Other subcommands come from adapter.sim.cli and
adapter.profiler.cli.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from adapter.errors import AdapterError, QueryError
from adapter.loop import Actuator, AdaptLoop, LoopSettings, StepResult
from adapter.metrics import AdapterMetrics
from adapter.predict import PREDICTOR_NAMES, make_predictor
from adapter.problem import Decision, Weights
from adapter.profiles import Profile, load_profiles
from adapter.query import NODE_TOTAL_MATCHER, PrometheusQuery
from adapter.settings import TOKEN_ENV, AdapterSettings, default_profiles_dir
from adapter.solve import SOLVER_NAMES, get_solver

logger = logging.getLogger(__name__)

# Subcommands other packages register, and the commands each is expected to add.
SUBCOMMAND_MODULES = {"adapter.sim.cli": ("simulate", "evaluate"), "adapter.profiler.cli": ("profile",)}


class LoopRunner:
    """Steps every loop each `interval_s` in a daemon thread and keeps the metrics current."""

    def __init__(
        self,
        loops: Sequence[AdaptLoop],
        metrics: AdapterMetrics,
        interval_s: float,
        p99_latency_s: Callable[[str, float], float | None] | None = None,
    ) -> None:
        self.loops = list(loops)
        self.metrics = metrics
        self.interval_s = interval_s
        self._p99_latency_s = p99_latency_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="adapt-loop", daemon=True)

    def step_all(self, now_s: float) -> list[StepResult]:
        results = []
        for loop in self.loops:
            pipeline = loop.settings.pipeline
            try:
                result = loop.step(now_s)
            except Exception as exc:
                # The thread must outlive any one bad step (a solver refusing the model, a bug):
                # a dead loop behind a healthy API would go unnoticed. Degraded says it.
                logger.exception("step of %s failed", pipeline)
                self.metrics.report(f"loop:{pipeline}", f"step failed: {exc.__class__.__name__}: {exc}")
                continue
            self.metrics.report(f"loop:{pipeline}", result.reason if result.degraded else None)
            self.metrics.set_rates(pipeline, result.observed_rps, result.predicted_rps)
            if not result.degraded and result.decision is not None:
                self.metrics.count_decision(pipeline, result.decision)
                self.metrics.set_in_force(loop.profile, result.decision, loop.settings.sla_s)
            if self._p99_latency_s is not None and not result.degraded:
                self._observe_latency(self._p99_latency_s, pipeline, now_s)
            results.append(result)
        return results

    def _observe_latency(
        self, p99_latency_s: Callable[[str, float], float | None], pipeline: str, now_s: float
    ) -> None:
        """The served p99 beside the predicted latency; no latency histogram is no failure."""
        try:
            p99_s = p99_latency_s(pipeline, now_s)
        except QueryError as exc:
            logger.info("no p99 latency for %s: %s", pipeline, exc)
            return
        if p99_s is not None:
            self.metrics.observed_p99.labels(pipeline).set(p99_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.step_all(time.time())
            self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)


def _key_values(items: Sequence[str], option: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise SystemExit(f"adapter: {option} wants KEY=VALUE, got {item!r}")
        pairs[key] = value
    return pairs


def settings_from_args(args: argparse.Namespace) -> AdapterSettings:
    return AdapterSettings(
        host=args.host,
        port=args.port,
        profiles_dir=args.profiles,
        prometheus_url=args.prometheus_url or None,
        interval_s=args.interval,
        pipelines=tuple(args.pipeline or ()),
        sla_s=args.sla_s,
        weights=Weights(alpha=args.alpha, beta=args.beta, gamma=args.gamma, delta=args.delta),
        replicas_min=args.replicas_min,
        replicas_max=args.replicas_max,
        solver=args.solver,
        predictor=args.predictor,
        headroom=args.headroom,
        apply=args.apply,
        seldon=args.seldon,
        namespace=args.namespace,
        kubeconfig=args.kubeconfig,
        variant_uris=_key_values(args.variant_uri or (), "--variant-uri"),
        query_timeout_s=args.query_timeout,
        rate_window_s=args.rate_window,
        request_metric=args.request_metric,
        latency_bucket_metric=args.latency_metric,
        pipeline_label=args.pipeline_label,
        arrival_metric=args.arrival_metric or None,
        backlog_metric=args.backlog_metric or None,
        refresh_energy=args.refresh_energy,
        energy_matchers=args.energy_matchers,
        api_token=os.environ.get(TOKEN_ENV) or None,
    )


def build_actuator(settings: AdapterSettings) -> Actuator:
    """Dry run unless --apply; the kubernetes client is configured in-cluster, else from kubeconfig."""
    from adapter.actuate import DryRunActuator

    if not settings.apply:
        return DryRunActuator()
    from kubernetes import client, config

    from adapter.actuate.seldon import SeldonActuator

    if settings.kubeconfig is not None:
        config.load_kube_config(config_file=str(settings.kubeconfig))  # type: ignore[no-untyped-call]
    else:
        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
        except config.ConfigException:
            config.load_kube_config()  # type: ignore[no-untyped-call]
    version: Literal["v1", "v2"] = "v2" if settings.seldon == "v2" else "v1"
    return SeldonActuator(
        client.CustomObjectsApi(),
        settings.namespace,
        version,
        apply=True,
        variant_uris=settings.variant_uris,
        events=client.CoreV1Api(),
    )


def build_loops(
    settings: AdapterSettings,
    profiles: dict[str, Profile],
    query: PrometheusQuery | None,
    actuator: Actuator,
) -> list[AdaptLoop]:
    names = settings.pipelines or tuple(sorted(profiles))
    unknown = [n for n in names if n not in profiles]
    if unknown:
        raise AdapterError(f"--pipeline {', '.join(unknown)}: no such profile in {settings.profiles_dir}")
    if query is None:
        return []
    return [
        AdaptLoop(
            profiles[name],
            LoopSettings(
                pipeline=name,
                sla_s=settings.sla_for(profiles[name]),
                weights=settings.weights,
                replicas_min=settings.replicas_min,
                replicas_max=settings.replicas_max,
                history_window_s=settings.history_window_s,
            ),
            query,
            make_predictor(settings.predictor, settings.history_window_s, settings.headroom),
            get_solver(settings.solver),
            actuator,
            energy=query if settings.refresh_energy else None,
        )
        for name in names
    ]


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from adapter.api import create_app

    settings = settings_from_args(args)
    try:
        profiles = load_profiles(settings.profiles_dir)
        query = (
            PrometheusQuery(
                settings.prometheus_url,
                timeout_s=settings.query_timeout_s,
                retries=settings.query_retries,
                request_metric=settings.request_metric,
                latency_bucket_metric=settings.latency_bucket_metric,
                pipeline_label=settings.pipeline_label,
                rate_window_s=settings.rate_window_s,
                energy_matchers=settings.energy_matchers,
                arrival_metric=settings.arrival_metric,
                backlog_metric=settings.backlog_metric,
            )
            if settings.prometheus_url
            else None
        )
        actuator = build_actuator(settings)
        loops = build_loops(settings, profiles, query, actuator)
    except (AdapterError, ValueError, OSError) as exc:
        print(f"adapter run: {exc}", file=sys.stderr)
        return 2
    metrics = AdapterMetrics()
    predictor = make_predictor(settings.predictor, settings.history_window_s, settings.headroom)
    by_pipeline = {loop.settings.pipeline: loop for loop in loops}

    def hold(pipeline: str, decision: Decision, hold_s: float) -> float | None:
        loop = by_pipeline.get(pipeline)
        return loop.hold(decision, time.time(), hold_s) if loop is not None else None

    app = create_app(profiles, metrics, get_solver, actuator, predictor, query, settings, hold=hold)
    runner = LoopRunner(loops, metrics, settings.interval_s, query.p99_latency_s if query else None)
    server = uvicorn.Server(
        uvicorn.Config(
            app, host=settings.host, port=settings.port, workers=1, log_level=args.log_level.lower()
        )
    )
    print(
        f"adapter: API on http://{settings.host}:{settings.port}/docs, {len(loops)} loop(s) every "
        f"{settings.interval_s:g} s, {'applying to Seldon ' + settings.seldon if settings.apply else 'dry run'}",
        flush=True,
    )
    # uvicorn catches SIGINT/SIGTERM while it serves, shuts down gracefully, then re-raises the
    # signal to the handlers it found: these make that a clean return instead of a kill.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _after_shutdown)
    runner.start()
    try:
        server.run()
    finally:
        runner.stop()
        if query is not None:
            query.close()
    return 0


def _after_shutdown(signum: int, frame: object) -> None:
    logger.info("stopped by signal %d", signum)


def _add_run(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "run",
        help="adaptation loop + REST API",
        description=(
            "Every --interval seconds, for each pipeline: query its request rate from Prometheus, "
            "predict the next interval's load, solve for variant/batch/replicas per stage and apply "
            "it (dry run unless --apply). Serves POST /decide, GET /healthz, GET /metrics and the "
            f"OpenAPI docs at /docs. apply over the API needs the bearer token in ${TOKEN_ENV}. "
            "Prometheus unreachable: the last decision stays, the adapter reports degraded."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address the API listens on")
    p.add_argument("--port", type=int, default=8080, help="API port")
    p.add_argument(
        "--profiles",
        type=Path,
        default=default_profiles_dir(),
        help="directory of *.yaml/*.yml/*.json profiles",
    )
    p.add_argument(
        "--prometheus-url", default="http://127.0.0.1:9090", help="Prometheus base URL ('' = none: no loop)"
    )
    p.add_argument("--interval", type=float, default=10.0, help="seconds between adaptation steps")
    p.add_argument(
        "--pipeline", action="append", help="pipeline to adapt (repeatable; default: every profile)"
    )
    p.add_argument(
        "--sla-s",
        type=float,
        default=None,
        help="end-to-end SLA in seconds (default: IPA's 25 x mean batch-1 latency)",
    )
    p.add_argument(
        "--solver",
        default="auto",
        choices=SOLVER_NAMES,
        help="solver of the loop",
    )
    p.add_argument(
        "--predictor",
        default="max",
        choices=PREDICTOR_NAMES,
        help="load predictor: max of the window, or Holt",
    )
    p.add_argument("--headroom", type=float, default=1.1, help="factor on the predicted load (>= 1)")
    for name, default, what in (
        ("alpha", 1.0, "accuracy"),
        ("beta", 0.01, "cores"),
        ("gamma", 0.0, "watts"),
        ("delta", 1e-6, "batch size"),
    ):
        p.add_argument(f"--{name}", type=float, default=default, help=f"objective weight of {what}")
    p.add_argument("--replicas-min", type=int, default=1)
    p.add_argument("--replicas-max", type=int, default=32)
    p.add_argument("--apply", action="store_true", help="patch Seldon objects (default: dry run, log only)")
    p.add_argument("--seldon", choices=("v1", "v2"), default="v1", help="SeldonDeployment (v1) or Model (v2)")
    p.add_argument("--namespace", default="default", help="namespace of the Seldon objects")
    p.add_argument(
        "--kubeconfig",
        type=Path,
        default=None,
        help="kubeconfig file (default: in-cluster, else ~/.kube/config)",
    )
    p.add_argument(
        "--variant-uri", action="append", metavar="VARIANT=URI", help="model URI per variant (v2: required)"
    )
    p.add_argument("--query-timeout", type=float, default=2.0, help="Prometheus query timeout, seconds")
    p.add_argument(
        "--rate-window", type=float, default=30.0, help="seconds of the rate() window (>= 2 scrapes)"
    )
    p.add_argument(
        "--request-metric",
        default=AdapterSettings.request_metric,
        help="request counter (MLServer: model_infer_request_success_total)",
    )
    p.add_argument(
        "--latency-metric", default=AdapterSettings.latency_bucket_metric, help="latency histogram buckets"
    )
    p.add_argument(
        "--pipeline-label",
        default=AdapterSettings.pipeline_label,
        help="label naming the pipeline (MLServer: model_name)",
    )
    p.add_argument(
        "--arrival-metric",
        default=None,
        help="counter of arriving requests: the offered load (default: none, see --backlog-metric)",
    )
    p.add_argument(
        "--backlog-metric",
        default=None,
        help="gauge of requests in flight or queued (e.g. envoy_cluster_upstream_rq_active): the offered "
        "load is the served rate plus its growth; with neither, the served rate, which saturates at capacity",
    )
    p.add_argument(
        "--refresh-energy",
        action="store_true",
        help="replace profile energy per request with energyd's measurement",
    )
    p.add_argument(
        "--energy-matchers",
        default=NODE_TOTAL_MATCHER,
        help="label matchers on energyd's pod energy, so that overlapping zones count once (default: %(default)s)",
    )
    p.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    p.set_defaults(func=run)


def _register_optional(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], module: str, commands: tuple[str, ...]
) -> None:
    try:
        importlib.import_module(module).register(subparsers)
    except ImportError as exc:
        # Its owner may still be writing it: its commands answer with the reason instead of
        # argparse's "invalid choice", and every other command keeps working.
        reason = f"{module} is not available: {exc}"
        for command in commands:
            # No option prefix at all: whatever options are given are taken, then refused with why.
            stub = subparsers.add_parser(command, help=f"(unavailable: {reason})", prefix_chars="\0")
            stub.add_argument("rest", nargs="*")
            stub.set_defaults(func=lambda _args, why=reason: _unavailable(why))


def _unavailable(reason: str) -> int:
    print(f"adapter: {reason}", file=sys.stderr)
    return 2


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="adapter", description="Energy-aware autoscaler for ML inference pipelines"
    )
    subparsers = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_run(subparsers)
    for module, commands in SUBCOMMAND_MODULES.items():
        _register_optional(subparsers, module, commands)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(args, "log_level", "INFO"), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # One line per Prometheus query every interval would drown what matters.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        return int(args.func(args))
    except BrokenPipeError:
        # The reader went away (`adapter simulate ... | head`): not an error of ours. Point stdout
        # at /dev/null so that the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
