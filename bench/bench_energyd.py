"""energyd's own cost: time per sampling pass and RSS with 10, 100 and 1000 pod cgroups.

Each size runs in a fresh process (so RSS is that of a daemon with that many pods) over a
generated node tree: one RAPL package zone, /proc/stat, cgroup v2 (systemd driver, containerd),
each pod with two containers. Between timed passes every counter advances, as on a busy node;
the tree is left to settle for a second first, as a node's cgroup directories are older than
that (newer listings are not trusted, see energyd/cgroups/pods.py). The daemon is wired by
cli.build, exactly as `energyd run` wires it. Targets: 1000 pods < 20 ms per pass (< 2 % of one
core at 1 Hz) and < 60 MB RSS. Run by `make bench`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # tests.energyd.cgroup_trees writes the fixture trees

SIZES = (10, 100, 1000)
PASSES = 50
TARGET_MS, TARGET_MB = 20.0, 60.0


def child(pods: int) -> dict[str, float]:
    import psutil
    from prometheus_client import CollectorRegistry, generate_latest

    from energyd.cli import build
    from energyd.config import Config
    from energyd.exporter import SnapshotCollector
    from tests.energyd.cgroup_trees import NodeTree, container_id, pod_uid

    with tempfile.TemporaryDirectory(prefix="bench-energyd-") as tmp:
        node = NodeTree(Path(tmp))
        qos = ("guaranteed", "burstable", "besteffort")
        containers = [(pod_uid(i), qos[i % 3], [container_id(i, j) for j in range(2)]) for i in range(pods)]

        def advance(k: int) -> None:
            for uid, pod_qos, cids in containers:
                node.cgroups.set_pod(uid, k * 2000, qos=pod_qos)
                for cid in cids:
                    node.cgroups.set_container(uid, cid, k * 900)
            node.set_cpu(busy_s=k * 0.004 * pods, idle_s=k * 1.0)
            node.set_energy_uj(k * 30_000_000)

        advance(0)
        time.sleep(1.1)
        daemon = build(Config(roots=node.roots, source="powercap", host="127.0.0.1", port=0))
        registry = CollectorRegistry(auto_describe=False)
        registry.register(SnapshotCollector(daemon.latest))
        step_ms, scrape_ms = [], []
        for k in range(1, PASSES + 3):
            advance(k)
            started = time.perf_counter()
            snap = daemon.step()
            step_ms.append((time.perf_counter() - started) * 1e3)
            started = time.perf_counter()
            exposition = generate_latest(registry)
            scrape_ms.append((time.perf_counter() - started) * 1e3)
        assert snap.pods_present == pods and len(snap.container_energy_j["package-0"]) == 2 * pods
        daemon.close()
        rss_mb = psutil.Process().memory_info().rss / 2**20
    timed = step_ms[2:]  # the first passes list every directory and set the baselines
    return {
        "pods": pods,
        "median_ms": statistics.median(timed),
        "p95_ms": sorted(timed)[int(0.95 * len(timed)) - 1],
        "scrape_ms": statistics.median(scrape_ms[2:]),
        "exposition_kb": len(exposition) / 1024,
        "rss_mb": rss_mb,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return 0
    print(
        f"energyd sampling cost, os.cpu_count()={os.cpu_count()}, {PASSES} passes per size, 2 containers/pod"
    )
    print(
        f"{'pods':>6} {'median ms':>10} {'p95 ms':>8} {'% core@1Hz':>11} {'scrape ms':>10} {'KiB':>7} {'RSS MB':>7}"
    )
    ok = True
    for pods in SIZES:
        proc = subprocess.run([sys.executable, __file__, "--child", str(pods)], capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return 1
        out = proc.stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(
            f"{r['pods']:>6} {r['median_ms']:>10.2f} {r['p95_ms']:>8.2f} {r['median_ms'] / 10:>10.2f}%"
            f" {r['scrape_ms']:>10.2f} {r['exposition_kb']:>7.0f} {r['rss_mb']:>7.1f}"
        )
        if pods == 1000:
            ok = r["median_ms"] < TARGET_MS and r["rss_mb"] < TARGET_MB
    print(
        f"targets at 1000 pods: < {TARGET_MS:.0f} ms per pass, < {TARGET_MB:.0f} MB RSS: {'met' if ok else 'MISSED'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
