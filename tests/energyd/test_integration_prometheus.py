"""energyd as a process on a fixture node, scraped by a real Prometheus every second.

A feeder thread advances the fixture's counters from wall-clock time at known rates: the
package draws 40 W on a 4-CPU node that is half busy; pod A uses 1 CPU, pod B half a CPU. The
model then gives A 40 * 1/4 = 10 W, B 5 W, system 5 W and idle 20 W.

Tolerances: Prometheus sees energyd's counters as of energyd's last pass (up to one 0.25 s
interval old, on both ends of the rate window) and the feeder writes every 0.05 s, so over the
~9 s a [10s] window spans, rate() can be off by (2 * 0.25 + 0.05) / 9 ≈ 6 %: we allow 10 %.
Ratios between series of the same pass cancel that staleness: A / node must be 0.25 within 2 %
(left for the few ms between energyd's reads of cgroups, energy and /proc/stat).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.energyd.cgroup_trees import NodeTree, container_id, pod_uid
from tests.prom import free_port, query, start_prometheus, wait_for_series

PACKAGE_W = 40.0
BUSY_CPUS, IDLE_CPUS = 2.0, 2.0
POD_CPUS = {pod_uid(1): 1.0, pod_uid(2): 0.5}


def feed(node: NodeTree, stop: threading.Event) -> None:
    started = time.monotonic()
    while not stop.wait(0.05):
        t = time.monotonic() - started
        for uid, cpus in POD_CPUS.items():
            node.cgroups.set_pod(uid, round(cpus * t * 1e6))
            node.cgroups.set_container(uid, container_id(int(uid[:8], 16)), round(cpus * t * 0.9e6))
        node.set_cpu(busy_s=BUSY_CPUS * t, idle_s=IDLE_CPUS * t)
        node.set_energy_uj(round(PACKAGE_W * t * 1e6))


@contextmanager
def energyd_process(tmp_path: Path, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """`energyd run` as a process over a fed fixture node; yields its host:port. `env` is added
    to this process's environment, less NODE_NAME (pods are named only when `env` sets it)."""
    node = NodeTree(tmp_path)
    for uid in POD_CPUS:
        node.cgroups.set_pod(uid, 0)
        node.cgroups.set_container(uid, container_id(int(uid[:8], 16)), 0)
    stop = threading.Event()
    feeder = threading.Thread(target=feed, args=(node, stop), daemon=True)
    feeder.start()
    port = free_port()
    roots = node.roots
    argv = [sys.executable, "-m", "energyd", "run", "--source", "powercap", "--interval", "0.25"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--sysfs-root", str(roots.sysfs)]
    argv += ["--procfs-root", str(roots.procfs), "--cgroup-root", str(roots.cgroup)]
    environ = {k: v for k, v in os.environ.items() if k != "NODE_NAME"} | dict(env or {})
    log = tmp_path / "energyd.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, env=environ, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        stop.set()
        proc.terminate()
        proc.wait(timeout=10)
        feeder.join(timeout=5)
    assert proc.returncode == 0, log.read_text()


@pytest.fixture
def energyd(tmp_path: Path) -> Iterator[str]:
    with energyd_process(tmp_path) as address:
        yield address


def value(url: str, promql: str) -> float:
    [series] = query(url, promql)
    return float(series["value"][1])


def test_prometheus_rates_match_the_energy_fed_in(energyd: str) -> None:
    with start_prometheus([energyd], scrape_interval_s=1) as url:
        wait_for_series(url, 'up{job="test"} == 1', timeout_s=15)
        time.sleep(11)  # a full [10s] window of scrapes
        zone = 'zone="package-0"'
        node_w = value(url, f"rate(energyd_node_energy_joules_total{{{zone}}}[10s])")
        pod_w = {
            uid: value(url, f'rate(energyd_pod_energy_joules_total{{pod_uid="{uid}",{zone}}}[10s])')
            for uid in POD_CPUS
        }
        idle_w = value(url, f'rate(energyd_unattributed_energy_joules_total{{kind="idle",{zone}}}[10s])')
        system_w = value(url, f'rate(energyd_unattributed_energy_joules_total{{kind="system",{zone}}}[10s])')
        errors = value(url, "sum(energyd_read_errors_total)")
        # The idle-share example of docs/energyd.md, as written there (with this test's window).
        idle_share = value(
            url,
            'rate(energyd_unattributed_energy_joules_total{kind="idle"}[10s])'
            " / on(instance, zone) rate(energyd_node_energy_joules_total[10s])",
        )
    assert node_w == pytest.approx(PACKAGE_W, rel=0.10)
    total_cpus = BUSY_CPUS + IDLE_CPUS
    for uid, cpus in POD_CPUS.items():
        assert pod_w[uid] == pytest.approx(PACKAGE_W * cpus / total_cpus, rel=0.10)
        assert pod_w[uid] / node_w == pytest.approx(cpus / total_cpus, rel=0.02)
    assert idle_w / node_w == pytest.approx(IDLE_CPUS / total_cpus, rel=0.02)
    assert (sum(pod_w.values()) + system_w + idle_w) / node_w == pytest.approx(1.0, rel=1e-6)
    assert idle_share == pytest.approx(IDLE_CPUS / total_cpus, rel=0.02)
    assert errors == 0
