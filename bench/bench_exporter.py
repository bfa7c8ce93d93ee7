"""energyd's /metrics at 1,000 pods x 12 zones: series per pod, exposition size, and CPU time per
sample (the render) and per scrape (serving the cached bytes).

The node: 2 sockets with 12 RAPL zones, of which 4 make up the node total (package-0/1,
dram-0/1); the other 8 are sub-zones and repeats (core, uncore, MMIO). Pods have realistic
names (namespace, a Deployment pod name, a uid) and one named container each. Three settings:
the default (per-pod series for node-total zones only, no containers), `--containers`, and
`--containers --pod-zones all` (every zone, as every scrape used to get).

- render ms: CPU time of Exposition.refresh(), paid once per sampling pass (1 Hz by default);
- gzip ms: compressing it, paid once per pass on the first scrape that accepts gzip (Prometheus
  always does);
- scrape ms: CPU time of the serving process per scrape of the cached bytes, measured from
  /proc over SCRAPES scrapes made by this (parent) process against a child that only serves,
  with Accept-Encoding gzip as Prometheus sends it (after the first, the gzip is cached);
- worst scrape ms = scrape + gzip: a scrape that is the first after a pass, the usual case at a
  15 s scrape interval and 1 s sampling.

Targets (issue 9): a default scrape under 5 ms of CPU and at most 4 energy series per pod.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from energyd.cgroups.names import PodMeta  # noqa: E402
from energyd.exporter import Exposition  # noqa: E402
from energyd.sampler import Snapshot, SourceStatus  # noqa: E402
from energyd.server import serve  # noqa: E402

PODS = 1000
NODE_TOTAL = ("package-0", "package-1", "dram-0", "dram-1")
OTHER = (
    "core-0",
    "core-1",
    "uncore-0",
    "uncore-1",
    "package-0-mmio",
    "package-1-mmio",
    "dram-0-mmio",
    "dram-1-mmio",
)
SCRAPES = 500
RENDERS = 30
TARGET_SCRAPE_MS, TARGET_SERIES_PER_POD = 5.0, 4
SETTINGS = {
    "default": (False, False),
    "--containers": (True, False),
    "--containers --pod-zones all": (True, True),
}


def snapshot(pods: int, containers: bool) -> Snapshot:
    zones = (*NODE_TOTAL, *OTHER)
    uids = [str(uuid.UUID(int=i + 1)) for i in range(pods)]
    cids = {uid: f"{i:064x}" for i, uid in enumerate(uids)}
    meta = {
        uid: PodMeta(
            f"team-{i % 20}", f"inference-{i // 10:03d}-7f9c8d6b5-{i:05d}", {cids[uid]: "model-server"}
        )
        for i, uid in enumerate(uids)
    }
    return Snapshot(
        timestamp_s=time.time(),
        source="powercap",
        measured=True,
        sources=(SourceStatus("powercap", "", True, True),),
        node_energy_j={z: 1e6 for z in zones},
        in_node_total={z: z in NODE_TOTAL for z in zones},
        node_power_w={z: 80.0 for z in zones},
        pod_energy_j={z: {uid: 1234.5678 + i for i, uid in enumerate(uids)} for z in zones},
        container_energy_j={z: {(uid, cids[uid]): 1000.25 + i for i, uid in enumerate(uids)} for z in zones}
        if containers
        else {z: {} for z in zones},
        pod_meta=meta,
        unattributed_j={(z, kind): 5e5 for z in zones for kind in ("system", "idle")},
        read_errors={},
        sample_duration_s=0.02,
        pods_present=pods,
    )


def serve_forever(setting: str) -> None:
    """The child: serves the setting's exposition, prints its port, exits when stdin closes."""
    containers, all_zones = SETTINGS[setting]
    snap = snapshot(PODS, containers)
    server = serve(Exposition(lambda: snap, all_zones), "127.0.0.1", 0, timeout_s=10, max_connections=16)
    print(server.server_port, flush=True)
    sys.stdin.read()
    server.close()


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def scrape_ms(setting: str) -> float:
    child = subprocess.Popen(
        [sys.executable, __file__, f"--serve={setting}"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdin is not None
    try:
        url = f"http://127.0.0.1:{int(child.stdout.readline())}/metrics"
        request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
        urllib.request.urlopen(request, timeout=10).read()  # the one compression, not timed
        before = cpu_s(child.pid)
        for _ in range(SCRAPES):
            with urllib.request.urlopen(request, timeout=10) as resp:
                resp.read()
        return (cpu_s(child.pid) - before) / SCRAPES * 1e3
    finally:
        child.stdin.close()
        child.wait(timeout=10)


def measure(setting: str) -> dict[str, float]:
    containers, all_zones = SETTINGS[setting]
    snap = snapshot(PODS, containers)
    exposition = Exposition(lambda: snap, all_zones)
    started = time.process_time()
    for _ in range(RENDERS):
        exposition.refresh()
    render_ms = (time.process_time() - started) / RENDERS * 1e3
    plain = exposition.body(gzipped=False)
    started = time.process_time()
    for _ in range(RENDERS):
        zipped = gzip.compress(plain, 1, mtime=0)
    gzip_ms = (time.process_time() - started) / RENDERS * 1e3
    lines = plain.decode().splitlines()
    energy = [line for line in lines if line.startswith(("energyd_pod_energy", "energyd_container_energy"))]
    series = [line for line in lines if not line.startswith("#")]
    return {
        "series_per_pod": len(energy) / PODS,
        "series": len(series),
        "kib": len(plain) / 1024,
        "gzip_kib": len(zipped) / 1024,
        "render_ms": render_ms,
        "gzip_ms": gzip_ms,
        "scrape_ms": scrape_ms(setting),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--serve", choices=SETTINGS, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if args.serve:
        serve_forever(args.serve)
        return 0
    cores = len(os.sched_getaffinity(0))
    print(
        f"energyd /metrics at {PODS} pods x {len(NODE_TOTAL) + len(OTHER)} zones ({len(NODE_TOTAL)} in the node total)"
    )
    print(
        f"os.cpu_count()={os.cpu_count()}, usable cores={cores}, Python {sys.version.split()[0]}, load {os.getloadavg()[0]:.1f}"
    )
    print(f"{'setting':>28} {'series/pod':>10} {'series':>7} {'KiB':>6} {'gzip KiB':>8} {'render ms':>9} {'gzip ms':>7} {'scrape ms':>9} {'worst scrape ms':>15}")  # fmt: skip
    results = {}
    for setting in SETTINGS:
        r = results[setting] = measure(setting)
        print(
            f"{setting:>28} {r['series_per_pod']:>10.0f} {r['series']:>7} {r['kib']:>6.0f} {r['gzip_kib']:>8.0f}"
            f" {r['render_ms']:>9.2f} {r['gzip_ms']:>7.2f} {r['scrape_ms']:>9.3f} {r['scrape_ms'] + r['gzip_ms']:>15.2f}"
        )
    d = results["default"]
    ok = d["series_per_pod"] <= TARGET_SERIES_PER_POD and d["scrape_ms"] + d["gzip_ms"] < TARGET_SCRAPE_MS
    print(
        f"targets, default: <= {TARGET_SERIES_PER_POD} energy series per pod, a scrape < {TARGET_SCRAPE_MS:.0f} ms "
        f"of CPU (even the first after a pass): {'met' if ok else 'MISSED'}"
    )
    if args.json:
        args.json.write_text(json.dumps({"cores": cores, "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
