"""`energyd run` (the node daemon) and `energyd probe`. The one place objects are wired."""

from __future__ import annotations

import argparse
import functools
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from types import FrameType

from energyd import __version__, logs
from energyd.cgroups import CgroupError, PodUsageReader
from energyd.cgroups.names import PodResolver, from_environment
from energyd.config import GPU_CHOICES, POD_ZONE_CHOICES, SOURCE_CHOICES, Config, Roots
from energyd.exporter import Exposition
from energyd.gpu import GpuSource, format_gpu_probe
from energyd.gpu_attribution import GpuSampler, probe_gpu
from energyd.probe import format_probe, probe
from energyd.procstat import read_cpu_times
from energyd.sampler import Sampler, Snapshot, SourceStatus
from energyd.server import MAX_CONNECTIONS_LIMIT, MAX_TIMEOUT_S, MetricsServer, serve
from energyd.sources.base import SourceError
from energyd.sources.ceiling import parse_max_power
from energyd.sources.nvml import Nvml, PynvmlNvml
from energyd.sources.select import open_source

log = logging.getLogger(__name__)


class StartupError(Exception):
    """Something the operator must fix before the daemon can run; the message says what."""


class Daemon:
    """The wired daemon: a sampler stepped on a timer and an HTTP server showing its snapshot,
    rendered once per step."""

    def __init__(
        self,
        config: Config,
        sampler: Sampler,
        closers: Sequence[Callable[[], None]],
        gpu: GpuSampler | None = None,
    ) -> None:
        self.config = config
        self._sampler = sampler
        self._gpu = gpu
        self._closers = closers  # release what build() opened (perf child, descriptors, watch)
        self._latest: Snapshot | None = None
        self.exposition = Exposition(self.latest, all_pod_zones=config.pod_zones == "all")
        self._server: MetricsServer | None = None

    def latest(self) -> Snapshot | None:
        return self._latest

    def step(self) -> Snapshot:
        """One pass: sample, then render /metrics for the scrapes until the next pass."""
        snap = self.sample()
        self.exposition.refresh()
        return snap

    def sample(self) -> Snapshot:
        """The sampling half of a pass (what energyd_sample_duration_seconds times)."""
        now_s = time.time()
        snap = self._sampler.step(now_s)
        self._latest = snap if self._gpu is None else self._gpu.step(now_s, snap)
        return self._latest

    def serve(self) -> int:
        """Starts /metrics; returns the bound port (useful with --port 0)."""
        try:
            self._server = serve(
                self.exposition,
                self.config.host,
                self.config.port,
                self.config.http_timeout_s,
                self.config.http_max_connections,
            )
        except OSError as err:
            raise StartupError(f"cannot listen on {self.config.host}:{self.config.port}: {err}") from err
        self.exposition.register(self._server.collector())
        port: int = self._server.server_port
        return port

    def run(self, stop: threading.Event) -> None:
        """Samples every interval until `stop` is set. Ticks keep to a fixed schedule, not drift."""
        interval_s = self.config.interval_s
        next_s = time.monotonic()
        while not stop.is_set():
            self.step()
            next_s += interval_s
            now = time.monotonic()
            if next_s < now:  # fell behind (suspended, overloaded): skip the missed ticks
                next_s = now
            stop.wait(next_s - now)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for close in self._closers:
            close()


def build(config: Config, names: PodResolver | None = None, nvml: Nvml | None = None) -> Daemon:
    """Opens the source, the cgroup and /proc readers, (unless given) the name resolver from
    the environment and, with --gpu auto, the GPUs through `nvml` (default: NVIDIA's binding);
    raises StartupError."""
    roots = config.roots
    try:
        read_cpu_times(roots.procfs)
    except (OSError, ValueError) as err:
        raise StartupError(f"--procfs-root {roots.procfs}: cannot read node CPU times: {err}") from err
    if names is None:
        # Twice the sampler's grace period: it counts from when the pod's cgroup goes, which the
        # kubelet may remove a while after the API deleted the pod.
        names = from_environment(config.node_name, keep_deleted_s=2 * config.grace_period_s)
    try:
        usage = PodUsageReader(roots.cgroup, config.containers, known_containers=_app_containers(names))
        source, passed_over = open_source(config.source, roots, interval_s=config.interval_s)
    except CgroupError as err:
        names.close()
        raise StartupError(f"--cgroup-root: {err}") from err
    except SourceError as err:
        names.close()
        usage.close()
        raise StartupError(f"--source {config.source}: {err}") from err
    statuses = [SourceStatus(p.source, p.reason, p.source != "estimate", False) for p in passed_over]
    statuses.append(SourceStatus(source.name, "", source.measured, True))
    log.info("energy source: %s%s", source.name, "" if source.measured else " (an estimate, not measured)")
    gpu = _open_gpu(config, names, nvml, statuses)
    sampler = Sampler(
        source,
        functools.partial(read_cpu_times, roots.procfs),
        usage,
        names,
        sources=statuses,
        grace_period_s=config.grace_period_s,
        max_power_w=dict(config.max_power_w),
        all_pod_zones=config.pod_zones == "all",
    )
    closers = [names.close, usage.close, source.close] + ([gpu.close] if gpu is not None else [])
    return Daemon(config, sampler, closers, gpu)


def _open_gpu(
    config: Config, names: PodResolver, nvml: Nvml | None, statuses: list[SourceStatus]
) -> GpuSampler | None:
    """The GPU zones beside the CPU source; a node without GPUs (or NVML) goes on without them."""
    if config.gpu == "off":
        return None
    try:
        gpu_source = GpuSource(PynvmlNvml() if nvml is None else nvml)
    except SourceError as err:
        log.info("no GPU zones: %s", err.reason)
        statuses.append(SourceStatus("nvml", err.reason, True, False))
        return None
    statuses.append(SourceStatus("nvml", "", True, True))
    return GpuSampler(gpu_source, config.roots.procfs, names, config.containers, config.grace_period_s)


def _app_containers(names: PodResolver) -> Callable[[str], Collection[str] | None]:
    """The container ids the API lists for a pod: its sandbox scope is left unread."""

    def app_containers(uid: str) -> Collection[str] | None:
        meta = names.lookup(uid)
        return None if meta is None else meta.containers.keys()

    return app_containers


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _http_timeout(text: str) -> float:
    value = _positive_float(text)
    if value > MAX_TIMEOUT_S:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_TIMEOUT_S:g} s, got {text}")
    return value


def _max_connections(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= MAX_CONNECTIONS_LIMIT:
        raise argparse.ArgumentTypeError(f"must be 1..{MAX_CONNECTIONS_LIMIT}, got {value}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0..65535, got {value}")
    return value


def _add_roots(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sysfs-root", type=Path, default=Path("/sys"), help="holds class/powercap and bus/event_source"
    )
    parser.add_argument("--procfs-root", type=Path, default=Path("/proc"), help="holds stat")
    parser.add_argument("--cgroup-root", type=Path, default=Path("/sys/fs/cgroup"), help="the cgroup mount")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="energyd",
        description="Node energy telemetry: RAPL energy per zone, attributed to pods by CPU time, "
        "exported for Prometheus.",
    )
    top.add_argument("--log-level", default="INFO", choices=logs.LOG_LEVELS, help="least severity logged (INFO)")
    logs.add_log_format(top)
    logs.add_version(top, "energyd", __version__)
    sub = top.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "run",
        help="sample energy and serve /metrics",
        description="Sample energy every interval, attribute it to pods and serve it on /metrics. "
        "Pods are named through the Kubernetes API when NODE_NAME is set and API access exists.",
    )
    run.add_argument(
        "--source",
        choices=SOURCE_CHOICES,
        default="auto",
        help="energy source; auto tries powercap, then perf, then the estimate (default auto)",
    )
    run.add_argument("--interval", type=_positive_float, default=1.0, help="seconds between samples (1)")
    run.add_argument("--port", type=_port, default=9102, help="HTTP port of /metrics (9102)")
    run.add_argument("--host", default="0.0.0.0", help="address to listen on (0.0.0.0)")
    run.add_argument(
        "--grace-period",
        type=_positive_float,
        default=300.0,
        help="seconds a vanished pod's series are kept before they are dropped (300)",
    )
    run.add_argument(
        "--containers",
        action="store_true",
        help="also export per-container series (off: pods only, about a third of the sampling cost)",
    )
    run.add_argument(
        "--no-containers",
        action="store_true",
        help="deprecated, does nothing: pods only is the default now (--containers turns containers on)",
    )
    run.add_argument(
        "--pod-zones",
        choices=POD_ZONE_CHOICES,
        default="node-total",
        help="zones that get per-pod series: those in the node total (default), or all, sub-zones "
        "included (up to 3x the series)",
    )
    run.add_argument(
        "--http-timeout",
        type=_http_timeout,
        default=10.0,
        help="seconds a /metrics request, and its response, may take before the connection is "
        f"closed (10, at most {MAX_TIMEOUT_S:g})",
    )
    run.add_argument(
        "--http-max-connections",
        type=_max_connections,
        default=16,
        help=f"connections served at once; more are answered 503 (16, 1..{MAX_CONNECTIONS_LIMIT})",
    )
    _add_gpu(run)
    run.add_argument(
        "--max-power-w",
        type=parse_max_power,
        action="append",
        default=[],
        metavar="ZONE=W",
        help="power ceiling of a zone or zone kind (e.g. package=800); energy above it is discarded and "
        "counted; repeatable; defaults in docs/energyd-sources.md",
    )
    _add_roots(run)
    check = sub.add_parser(
        "probe",
        help="which energy sources work here, and why not",
        description="Try every energy "
        "source on this machine and print which work, why the others do not, and the fix.",
    )
    _add_gpu(check)
    _add_roots(check)
    return top


def _add_gpu(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--gpu",
        choices=GPU_CHOICES,
        default="auto",
        help="NVIDIA GPU zones through NVML beside the CPU source: auto uses them where NVML works (auto)",
    )


def _roots(args: argparse.Namespace) -> Roots:
    return Roots(sysfs=args.sysfs_root, procfs=args.procfs_root, cgroup=args.cgroup_root)


def config_from_args(args: argparse.Namespace) -> Config:
    return Config(
        roots=_roots(args),
        source=args.source,
        interval_s=args.interval,
        port=args.port,
        host=args.host,
        grace_period_s=args.grace_period,
        containers=args.containers,
        gpu=args.gpu,
        max_power_w=tuple(args.max_power_w),
        pod_zones=args.pod_zones,
        http_timeout_s=args.http_timeout,
        http_max_connections=args.http_max_connections,
        node_name=os.environ.get("NODE_NAME") or None,
    )


def _run(config: Config) -> int:
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("%s: shutting down", signal.Signals(signum).name)
        stop.set()

    previous = {signum: signal.signal(signum, on_signal) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        daemon = build(config)
        try:
            port = daemon.serve()
            log.info("serving http://%s:%d/metrics every %.3g s", config.host, port, config.interval_s)
            daemon.run(stop)
        finally:
            daemon.close()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logs.configure(args.log_level, args.log_format)
    if getattr(args, "no_containers", False):  # kept so that old manifests still start
        log.warning("--no-containers is deprecated and does nothing: pods only is the default now")
    try:
        if args.command == "probe":
            print(format_probe(probe(_roots(args))))
            if args.gpu != "off":
                print("\n" + format_gpu_probe(probe_gpu(PynvmlNvml())))
            return 0
        return _run(config_from_args(args))
    except StartupError as err:
        print(f"energyd: error: {err}", file=sys.stderr)
        return 2
