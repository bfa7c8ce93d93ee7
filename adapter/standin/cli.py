"""`python -m adapter.standin`: the stand-in cluster as one process (what `make run` starts).

Serves the stand-in Kubernetes endpoints and the serving metrics, writes the simulated node tree
and a kubeconfig under --state-dir, prints one `standin: ready ...` line once all of it is up,
and replays the trace until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server

from adapter.errors import AdapterError
from adapter.profiles import default_sla_s, load_profiles
from adapter.settings import default_profiles_dir
from adapter.sim.cluster import ClusterSettings
from adapter.sim.trace import WORKLOADS, TraceError, read_trace, workload
from adapter.standin.cluster import StandinCluster, StandinMetrics
from adapter.standin.kube import KubeServer, KubeStore, kubeconfig
from adapter.standin.node import NodeTree
from adapter.standin.pipeline import PacedPipeline

log = logging.getLogger(__name__)

READY_PREFIX = "standin: ready "


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m adapter.standin",
        description="A simulated pipeline standing in for a Kubernetes cluster with Seldon, in real time.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--profiles", type=Path, default=default_profiles_dir(), help="directory of profiles")
    p.add_argument("--pipeline", default="video", help="the profile's pipeline to simulate")
    trace = p.add_mutually_exclusive_group()
    trace.add_argument("--workload", default="bursty", choices=sorted(WORKLOADS), help="built-in trace")
    trace.add_argument("--trace", type=Path, help="trace CSV (requests per second), looped")
    p.add_argument("--state-dir", type=Path, required=True, help="node tree and kubeconfig go here")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--api-port", type=int, default=0, help="stand-in Kubernetes API port (0: free)")
    p.add_argument("--metrics-port", type=int, default=0, help="serving metrics port (0: free)")
    p.add_argument("--namespace", default="default")
    p.add_argument("--node-name", default="standin-node")
    p.add_argument("--cpus", type=int, default=16, help="CPUs of the simulated node")
    p.add_argument("--tick", type=float, default=0.5, help="seconds between node tree updates")
    p.add_argument("--switch-delay", type=float, default=5.0, help="seconds a new configuration takes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    return p


def _counts(args: argparse.Namespace) -> list[int]:
    return read_trace(args.trace) if args.trace is not None else workload(args.workload)


def run(args: argparse.Namespace) -> int:
    try:
        profiles = load_profiles(args.profiles)
        if args.pipeline not in profiles:
            raise AdapterError(f"no profile for pipeline {args.pipeline!r} in {args.profiles}")
        counts = _counts(args)
    except (AdapterError, TraceError) as err:
        print(f"standin: {err}", file=sys.stderr)
        return 2
    profile = profiles[args.pipeline]
    args.state_dir.mkdir(parents=True, exist_ok=True)
    pipeline: PacedPipeline | None = None

    def on_patch(path: str, obj: dict[str, Any]) -> None:
        config = cluster.requested(obj) if path == cluster.deployment_path else None
        if config is not None and pipeline is not None:
            pipeline.request(config)

    store = KubeStore(on_patch)
    node = NodeTree(args.state_dir / "node", cpus=args.cpus)
    registry = CollectorRegistry()
    cluster = StandinCluster(profile, store, node, StandinMetrics(registry), args.namespace, args.node_name)
    settings = ClusterSettings(sla_s=default_sla_s(profile), switch_delay_s=args.switch_delay)
    pipeline = PacedPipeline(profile, counts, cluster.on_tick, settings, interval_s=args.tick, seed=args.seed)
    api = KubeServer(store, args.host, args.api_port)
    metrics_server, _ = start_http_server(args.metrics_port, args.host, registry)
    config_path = args.state_dir / "kubeconfig"
    config_path.write_text(kubeconfig(api.url, args.namespace), encoding="utf-8")

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("%s: stopping", signal.Signals(signum).name)
        assert pipeline is not None
        pipeline.stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    api.start()
    replay = threading.Thread(target=pipeline.run, name="replay")
    replay.start()
    ready = {
        "api": api.url,
        "metrics": f"http://{args.host}:{metrics_server.server_port}/metrics",
        "kubeconfig": str(config_path),
        "cgroup": str(node.cgroup_root),
        "procfs": str(node.procfs_root),
        "node": args.node_name,
        "namespace": args.namespace,
    }
    # One line the orchestrator parses: JSON, so paths with spaces survive.
    print(f"{READY_PREFIX}{json.dumps(ready)}", flush=True)
    try:
        while replay.is_alive():
            replay.join(0.5)
    finally:
        pipeline.stop()
        api.close()
        metrics_server.shutdown()
        metrics_server.server_close()
        node.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run(args)
