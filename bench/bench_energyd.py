"""energyd's own cost: time per sampling pass and RSS with 10, 100 and 1000 pod cgroups.

Each size runs in a fresh process (so RSS is that of a daemon with that many pods) over a
generated node tree: one RAPL package zone, /proc/stat, cgroup v2 (systemd driver, containerd),
each pod with two containers. Between timed passes every counter advances, as on a busy node;
the tree is left to settle for a second first, as a node's cgroup directories are older than
that (newer listings are not trusted, see energyd/cgroups/pods.py). The daemon is wired by
cli.build, exactly as `energyd run` wires it. Targets: 1000 pods < 20 ms per pass (< 2 % of one
core at 1 Hz) and < 60 MB RSS. Two more rows time 1000 pods with names from the API (so the
sandbox scopes are not read) and with --no-containers. Run by
`make bench`; `--real-cgroups /sys/fs/cgroup` (root, cgroup v2) reads real, empty cgroups.
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
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # tests.energyd.cgroup_trees writes the fixture trees

from energyd.cgroups.names import PodMeta  # noqa: E402

SIZES = (10, 100, 1000)
PASSES = 50
TARGET_MS, TARGET_MB = 20.0, 60.0


def real_cgroups(parent: Path, pods: int) -> list[Path]:
    """Real (empty) pod and container cgroups made with mkdir under a cgroup v2 `parent`, laid
    out as the systemd driver does: the kernel formats their cpu.stat on each read, as on a node.
    Returns them parents first."""
    from tests.energyd.cgroup_trees import container_id, pod_uid

    root = parent / f"energyd-bench-{os.getpid()}"
    made = [root, root / "kubepods.slice", root / "kubepods.slice/kubepods-burstable.slice"]
    for i in range(pods):
        pod = made[2] / f"kubepods-burstable-pod{pod_uid(i).replace('-', '_')}.slice"
        made += [pod, *(pod / f"cri-containerd-{container_id(i, j)}.scope" for j in range(2))]
    for d in made:
        d.mkdir()
    return made


class KnownPods:
    """Names as the Kubernetes API would give them once synced: each pod's app container (the
    second scope; the first plays the sandbox, which the API does not list)."""

    def __init__(self, pods: int) -> None:
        from tests.energyd.cgroup_trees import container_id, pod_uid

        self._meta = {
            pod_uid(i): PodMeta("bench", f"pod-{i}", {container_id(i, 1): "app"}) for i in range(pods)
        }

    def lookup(self, uid: str) -> PodMeta | None:
        return self._meta.get(uid)

    def close(self) -> None:
        pass


def child(pods: int, cgroup_parent: Path | None, with_containers: bool, names: bool) -> dict[str, float]:
    import psutil

    from energyd.cli import build
    from energyd.config import Config
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
        made = real_cgroups(cgroup_parent, pods) if cgroup_parent else []
        roots = replace(node.roots, cgroup=made[0]) if made else node.roots
        time.sleep(1.1)
        config = Config(roots=roots, source="powercap", host="127.0.0.1", port=0, containers=with_containers)
        daemon = build(config, KnownPods(pods) if names else None)
        step_ms, scrape_ms = [], []
        for k in range(1, PASSES + 3):
            advance(k)
            started = time.perf_counter()
            snap = daemon.sample()
            step_ms.append((time.perf_counter() - started) * 1e3)
            # A pass renders /metrics once (scrapes are served that cache): time one more render.
            started = time.perf_counter()
            daemon.exposition.refresh()
            scrape_ms.append((time.perf_counter() - started) * 1e3)
            exposition = daemon.exposition.body(gzipped=False)
        assert snap.pods_present == pods
        expected = (pods if names else 2 * pods) if with_containers else 0
        assert len(snap.container_energy_j["package-0"]) == expected
        daemon.close()
        for d in reversed(made):
            d.rmdir()
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
    parser.add_argument("--pods-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--names", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--real-cgroups",
        type=Path,
        metavar="PARENT",
        help="read real, empty cgroups made (and removed) under this cgroup v2 directory (needs root) "
        "instead of fixture files; their counters do not advance",
    )
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.real_cgroups, not args.pods_only, args.names)))
        return 0
    kind = f"real cgroups under {args.real_cgroups}" if args.real_cgroups else "fixture cgroup files"
    print(f"energyd sampling cost, os.cpu_count()={os.cpu_count()}, Python {sys.version.split()[0]}")
    print(f"{PASSES} passes per size, 2 containers per pod, {kind}")
    print(
        f"{'pods':>14} {'median ms':>10} {'p95 ms':>8} {'% core@1Hz':>11} {'render ms':>10} {'KiB':>7} {'RSS MB':>7}"
    )
    ok = True
    rows = [*((n, "") for n in SIZES), (SIZES[-1], "--names"), (SIZES[-1], "--pods-only")]
    for pods, variant in rows:
        extra = ["--real-cgroups", str(args.real_cgroups)] if args.real_cgroups else []
        extra += [variant] if variant else []
        proc = subprocess.run(
            [sys.executable, __file__, "--child", str(pods), *extra], capture_output=True, text=True
        )
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return 1
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        print(
            f"{str(pods) + variant.replace('--', ' '):>14} {r['median_ms']:>10.2f} {r['p95_ms']:>8.2f} {r['median_ms'] / 10:>10.2f}%"
            f" {r['scrape_ms']:>10.2f} {r['exposition_kb']:>7.0f} {r['rss_mb']:>7.1f}"
        )
        if pods == 1000 and not variant:
            ok = r["median_ms"] < TARGET_MS and r["rss_mb"] < TARGET_MB
    verdict = "met" if ok else "MISSED"
    print(f"targets at 1000 pods: < {TARGET_MS:.0f} ms per pass, < {TARGET_MB:.0f} MB RSS: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
