"""`adapter`: the one place where the adapter's objects are built and wired.

`adapter run` starts the adaptation loop (one AdaptLoop per pipeline, stepped every --interval
seconds in a background thread) and the REST API on uvicorn (one worker). SIGTERM or SIGINT
stops uvicorn (requests still in flight get GRACEFUL_SHUTDOWN_S), then the loop thread, and the
process exits 0. Prometheus unreachable makes the adapter degraded, never makes it exit; a loop
that completes no step for several intervals makes it unhealthy. `adapter decide` answers one
request as POST /decide would. Other subcommands come from adapter.sim.cli and
adapter.profiler.cli. Every number on the command line is checked at start against its bounds.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from adapter import __version__, limits, serving
from adapter.errors import AdapterError
from adapter.extras import missing_extra_message
from adapter.loop import Actuator, AdaptLoop, LoopSettings
from adapter.loop_runner import LoopRunner
from adapter.metrics import AdapterMetrics
from adapter.predict import PREDICTOR_NAMES, make_predictor
from adapter.problem import Decision, Weights
from adapter.profiles import Profile, default_sla_s, load_profile, load_profiles
from adapter.query import NODE_TOTAL_MATCHER, PrometheusQuery
from adapter.settings import TOKEN_ENV, AdapterSettings, default_profiles_dir
from adapter.solve import SOLVER_NAMES, get_solver
from energyd import logs

logger = logging.getLogger(__name__)

# Subcommands other packages register, and the commands each is expected to add.
SUBCOMMAND_MODULES = {"adapter.sim.cli": ("simulate", "evaluate"), "adapter.profiler.cli": ("profile",)}
# Seconds that requests in flight get after SIGTERM before uvicorn closes them.
GRACEFUL_SHUTDOWN_S = 5
def bounded(
    kind: Callable[[str], float], low: float, high: float, low_open: bool = False
) -> Callable[[str], float]:
    """An argparse type: a number of `kind` in [low, high] ((low, high] when `low_open`), so that
    a bad value is refused at start with the option's name, never a traceback or a busy loop."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {limits.quoted(text)}") from None
        if not (low < value if low_open else low <= value) or not value <= high or math.isnan(value):
            interval = f"{'(' if low_open else '['}{low:g}, {high:g}]"
            raise argparse.ArgumentTypeError(f"must be in {interval}, got {limits.quoted(text)}")
        return value

    parse.__name__ = kind.__name__
    return parse


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    parse = bounded(int, low, high)
    return lambda text: int(parse(text))


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
        # A token file read into the variable keeps its newline; no one means it as part of it.
        api_token=os.environ.get(TOKEN_ENV, "").strip() or None,
    )


def build_actuator(settings: AdapterSettings) -> Actuator:
    """Dry run unless --apply; the kubernetes client is configured in-cluster, else from kubeconfig."""
    from adapter.actuate import DryRunActuator

    if not settings.apply:
        return DryRunActuator()
    from kubernetes import client, config

    from adapter.actuate.seldon import SeldonActuator

    if settings.kubeconfig is not None:
        config.load_kube_config(config_file=str(settings.kubeconfig))
    else:
        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
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
    from adapter.api import create_app

    if args.replicas_min > args.replicas_max:
        print(
            f"adapter run: --replicas-min {args.replicas_min} > --replicas-max {args.replicas_max}",
            file=sys.stderr,
        )
        return 2
    settings = settings_from_args(args)
    try:
        profiles = load_profiles(settings.profiles_dir)
        if not profiles:
            raise AdapterError(f"--profiles {settings.profiles_dir}: no *.yaml, *.yml or *.json profile in it")
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
        sock = serving.listen(settings.host, settings.port)
    except (AdapterError, ValueError, OSError) as exc:
        print(f"adapter run: {exc}", file=sys.stderr)
        return 2
    metrics = AdapterMetrics()
    predictor = make_predictor(settings.predictor, settings.history_window_s, settings.headroom)
    by_pipeline = {loop.settings.pipeline: loop for loop in loops}

    def hold(pipeline: str, decision: Decision, hold_s: float) -> float | None:
        loop = by_pipeline.get(pipeline)
        return loop.hold(decision, time.time(), hold_s) if loop is not None else None

    runner = LoopRunner(loops, metrics, settings.interval_s, query.p99_latency_s if query else None)
    app = create_app(
        profiles, metrics, get_solver, actuator, predictor, query, settings, liveness=runner.liveness, hold=hold
    )
    server = serving.server(app, args.log_level, GRACEFUL_SHUTDOWN_S)
    slas = ", ".join(f"{loop.settings.pipeline} {loop.settings.sla_s:.3g} s" for loop in loops)
    print(
        f"adapter: API on http://{settings.host}:{sock.getsockname()[1]}/docs, {len(loops)} loop(s) every "
        f"{settings.interval_s:g} s, {'applying to Seldon ' + settings.seldon if settings.apply else 'dry run'}"
        f"{', SLA ' + slas if slas else ''}",
        flush=True,
    )
    # uvicorn catches SIGINT/SIGTERM while it serves, shuts down gracefully, then re-raises the
    # signal to the handlers it found: these make that a clean return instead of a kill.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _after_shutdown)
    runner.start()
    try:
        server.run(sockets=[sock])
    finally:
        runner.stop()
        if query is not None:
            query.close()
    _leave_requests_in_flight()
    return 0


def _leave_requests_in_flight() -> None:
    """After the graceful-shutdown timeout uvicorn has answered every request it could; a
    worker thread still blocked (a Prometheus that never answers, up to 3 x --query-timeout)
    is not a daemon and would hold the process open, so exit without waiting for it."""
    stuck = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if not stuck:
        return
    logger.warning("exiting with %d worker thread(s) still waiting", len(stuck))
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


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
        formatter_class=logs.DefaultsHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address the API listens on")
    p.add_argument("--port", type=bounded_int(1, 65535), default=8080, help="API port")
    p.add_argument(
        "--profiles",
        type=Path,
        default=default_profiles_dir(),
        help="directory of *.yaml/*.yml/*.json profiles",
    )
    p.add_argument(
        "--prometheus-url", default="http://127.0.0.1:9090", help="Prometheus base URL ('' = none: no loop)"
    )
    p.add_argument(
        "--interval", type=bounded(float, 0.1, 3600.0), default=10.0, help="seconds between adaptation steps"
    )
    p.add_argument(
        "--pipeline", action="append", help="pipeline to adapt (repeatable; default: every profile)"
    )
    p.add_argument(
        "--sla-s",
        type=bounded(float, 0.0, limits.MAX_SLA_S, low_open=True),
        default=None,
        help="end-to-end SLA in seconds (default: the profile's sla_s, else IPA's rule: 25 x mean batch-1 latency)",
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
        help="load predictor: max of the window, Holt, or the learned model (adapter/data/predictors)",
    )
    p.add_argument(
        "--headroom", type=bounded(float, 1.0, 100.0), default=1.1, help="factor on the predicted load (>= 1)"
    )
    for name, default, what in (
        ("alpha", 1.0, "accuracy"),
        ("beta", 0.01, "cores"),
        ("gamma", 0.0, "watts"),
        ("delta", 1e-6, "batch size"),
    ):
        p.add_argument(
            f"--{name}",
            type=bounded(float, 0.0, limits.MAX_WEIGHT),
            default=default,
            help=f"objective weight of {what}",
        )
    replicas = bounded_int(1, limits.MAX_REPLICAS)
    p.add_argument("--replicas-min", type=replicas, default=1, help="fewest replicas per stage")
    p.add_argument("--replicas-max", type=replicas, default=32, help="most replicas per stage")
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
    p.add_argument(
        "--query-timeout",
        type=bounded(float, 0.0, 60.0, low_open=True),
        default=2.0,
        help="Prometheus query timeout, seconds",
    )
    p.add_argument(
        "--rate-window",
        type=bounded(float, 1.0, 3600.0),
        default=30.0,
        help="seconds of the rate() window (>= 2 scrapes)",
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
    p.add_argument("--log-level", default="INFO", choices=logs.LOG_LEVELS, help="least severity logged")
    logs.add_log_format(p)
    p.set_defaults(func=run)


def decide_command(args: argparse.Namespace) -> int:
    """`adapter decide`: one decision, the JSON POST /decide answers, on stdout."""
    from adapter.decide import DecideRequest, decide

    try:
        profile = load_profile(args.profile)
        given = {
            k: getattr(args, k) for k in ("alpha", "beta", "gamma", "delta") if getattr(args, k) is not None
        }
        request = DecideRequest.model_validate(
            {
                "pipeline": profile.pipeline,
                "sla_s": args.sla_s if args.sla_s is not None else default_sla_s(profile),
                "arrival_rate_rps": args.arrival_rate_rps,
                "weights": given or None,
                "replicas_min": args.replicas_min,
                "replicas_max": args.replicas_max,
                "batch_sizes": args.batch_sizes,
                "solver": args.solver,
            }
        )
        _, body = decide(request, profile, args.arrival_rate_rps, Weights(), get_solver)
    except ValidationError as exc:
        first = exc.errors()[0]
        # Options are named after the request's fields (weights.alpha is --alpha).
        field = next((str(part) for part in reversed(first["loc"]) if isinstance(part, str)), "")
        print(f"adapter decide: --{field.replace('_', '-')}: {first['msg']}", file=sys.stderr)
        return 2
    except AdapterError as exc:
        print(f"adapter decide: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(body, indent=2))
    return 0


def _batch_sizes(text: str) -> list[int]:
    try:
        return [int(size) for size in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"wants sizes like 1,2,4, got {limits.quoted(text)}") from None


def _add_decide(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "decide",
        help="one decision, as POST /decide answers it",
        description=(
            "Solve one instance of the decision problem for a profile file and print the JSON that "
            "POST /decide answers (same code, same limits). Weights left out take the server's "
            "defaults; the SLA, the profile's sla_s, else IPA's rule."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--profile", type=Path, required=True, help="profile file (YAML or JSON)")
    p.add_argument("--arrival-rate-rps", type=float, required=True, help="requests per second")
    p.add_argument("--sla-s", type=float, default=None, help="end-to-end SLA, seconds")
    for name, what in (("alpha", "accuracy"), ("beta", "cores"), ("gamma", "watts"), ("delta", "batch size")):
        p.add_argument(f"--{name}", type=float, default=None, help=f"objective weight of {what}")
    p.add_argument("--replicas-min", type=int, default=1, help="fewest replicas per stage")
    p.add_argument("--replicas-max", type=int, default=32, help="most replicas per stage")
    p.add_argument("--batch-sizes", type=_batch_sizes, default=None, help="allowed sizes, e.g. 1,2,4")
    p.add_argument("--solver", default="auto", choices=SOLVER_NAMES, help="auto: the fastest exact one installed")
    p.set_defaults(func=decide_command)


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
    logs.add_version(top, "adapter", __version__)
    subparsers = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_run(subparsers)
    _add_decide(subparsers)
    for module, commands in SUBCOMMAND_MODULES.items():
        _register_optional(subparsers, module, commands)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logs.configure(getattr(args, "log_level", "INFO"), getattr(args, "log_format", "text"))
    # One line per Prometheus query every interval would drown what matters.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        return int(args.func(args))
    except ModuleNotFoundError as exc:
        message = missing_extra_message(exc, args.command)
        if message is None:
            raise
        print(message, file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`adapter simulate ... | head`): not an error of ours. Point stdout
        # at /dev/null so that the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
