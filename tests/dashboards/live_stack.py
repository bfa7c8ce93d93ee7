"""The real parts the dashboards read, on one machine, for tests: the stand-in cluster
(`python -m adapter.standin`: a simulated pipeline serving a constant request rate, its
Kubernetes endpoints, Seldon's request metric and kube-state-metrics' kube_pod_labels), `energyd
run` on the stand-in's node (its procfs and cgroup trees, pods named through its API) with a
fixture powercap tree whose counters a thread advances at known watts, the real `adapter run`,
and a real Prometheus loading deploy/prometheus/rules.yaml, scraping all three every second.

Started and stopped with adapter/standin/stack.py's Stack (each child in its own process group,
stopped newest first); nothing here is a fake of those services.
"""

from __future__ import annotations

import io
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from adapter.standin.cli import READY_PREFIX
from adapter.standin.stack import Jobs, Stack, http_ok, log_line, prometheus_config, start_prometheus
from tests.energyd.fixture_trees import write_powercap_zone
from tests.prom import free_port

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "rules.yaml"
PIPELINE = "video"
NODE = "standin-node"
REQUESTS_PER_S = 10
# A client-like node: psys meters the platform (the node total); package-0 inside it, core-0
# inside the package, dram-0 beside it: (powercap index, name, watts).
ZONES_W = (("1", "psys", 50.0), ("0", "package-0", 30.0), ("0:0", "core", 20.0), ("0:1", "dram", 8.0))
NODE_W = {"psys": 50.0, "package-0": 30.0, "core-0": 20.0, "dram-0": 8.0}
READY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class LiveStack:
    prometheus: str  # base URL
    energyd: str  # host:port


def _feed_energy(sysfs: Path, stop: threading.Event) -> None:
    """Counters = watts x elapsed, rewritten in place at a fixed width (powercap keeps them open
    and preads from 0, so a reader never sees a half-written value)."""
    files = {
        index: sysfs / "class" / "powercap" / f"intel-rapl:{index}" / "energy_uj" for index, *_ in ZONES_W
    }
    fds = {index: os.open(path, os.O_WRONLY) for index, path in files.items()}
    started = time.monotonic()
    try:
        while not stop.wait(0.05):
            t = time.monotonic() - started
            for index, _, watts in ZONES_W:
                os.pwrite(fds[index], f"{round(watts * t * 1e6):020d}\n".encode(), 0)
    finally:
        for fd in fds.values():
            os.close(fd)


@contextmanager
def live_stack(state_dir: Path) -> Iterator[LiveStack]:
    stack = Stack(state_dir, out=io.StringIO())
    stop = threading.Event()
    feeder: threading.Thread | None = None
    py = sys.executable
    try:
        trace = state_dir / "trace.csv"
        trace.write_text("requests\n" + f"{REQUESTS_PER_S}\n" * 600)
        standin = stack.start(
            "standin",
            [py, "-m", "adapter.standin", "--pipeline", PIPELINE, "--state-dir", str(state_dir / "standin"),
             "--node-name", NODE, "--cpus", "4", "--trace", str(trace), "--tick", "0.25",
             "--switch-delay", "1", "--log-level", "WARNING"],
        )  # fmt: skip
        ready = log_line(standin, READY_PREFIX)
        stack.wait_for(standin, lambda: ready() is not None, READY_TIMEOUT_S)
        info = json.loads((ready() or "").removeprefix(READY_PREFIX))

        sysfs = state_dir / "sys"
        for index, name, _ in ZONES_W:
            write_powercap_zone(sysfs, index, name, 0)
        feeder = threading.Thread(target=_feed_energy, args=(sysfs, stop), daemon=True)
        feeder.start()
        energyd_port, adapter_port, prom_port = free_port(), free_port(), free_port()
        energyd = stack.start(
            "energyd",
            [py, "-m", "energyd", "run", "--source", "powercap", "--interval", "0.5", "--host", "127.0.0.1",
             "--port", str(energyd_port), "--sysfs-root", str(sysfs), "--procfs-root", info["procfs"],
             "--cgroup-root", info["cgroup"]],
            env={"NODE_NAME": NODE, "KUBECONFIG": info["kubeconfig"]},
        )  # fmt: skip
        stack.wait_for(energyd, http_ok(f"http://127.0.0.1:{energyd_port}/metrics"), READY_TIMEOUT_S)

        jobs: Jobs = {
            "energyd": [(f"127.0.0.1:{energyd_port}", {})],
            "standin": [(info["metrics"].split("/")[2], {})],
            "adapter": [(f"127.0.0.1:{adapter_port}", {})],
        }
        config = prometheus_config(1.0, RULES, jobs)
        prom_url = start_prometheus(stack, state_dir / "prometheus", config, prom_port, READY_TIMEOUT_S)

        adapter = stack.start(
            "adapter",
            [py, "-m", "adapter", "run", "--host", "127.0.0.1", "--port", str(adapter_port),
             "--pipeline", PIPELINE, "--prometheus-url", prom_url, "--kubeconfig", info["kubeconfig"],
             "--namespace", info["namespace"], "--interval", "1", "--rate-window", "5"],
        )  # fmt: skip
        stack.wait_for(adapter, http_ok(f"http://127.0.0.1:{adapter_port}/healthz"), READY_TIMEOUT_S)
        yield LiveStack(prom_url, f"127.0.0.1:{energyd_port}")
        dead = stack.dead()
        assert dead is None, f"{dead.name} exited with {dead.proc.returncode}:\n{dead.tail()}"
    finally:
        stack.stop()
        stop.set()
        if feeder is not None:
            feeder.join(timeout=5)
