"""Record what a real NVML answers to energyd's GPU path, in the replay format (tests' fixtures).

    python -m energyd.gpu_record --out nvml-recording.json --summary summary.json [--seconds 20]
        [--interval 1] [--load-s 8]

Runs the daemon's GPU code (GpuSource, GpuSampler) against NVIDIA's binding wrapped in the
recorder for `--seconds`, while a child process keeps GPU 0 busy for `--load-s` (a torch matrix
loop, so that process samples have something to show; 0: no load). The summary holds each
pass's figures (joules per zone, to pods, system, idle), the cost of one real NVML read, and how
often the energy counter actually changes (polled every millisecond for a second).
scripts/gpu-measure.sh runs it; tests/energyd/fixtures/nvml/ is where a recording is committed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from energyd.cgroups.names import NoNames
from energyd.gpu import GpuSource
from energyd.gpu_attribution import GpuSampler
from energyd.sampler import Snapshot
from energyd.sources.base import SourceError
from energyd.sources.nvml import Nvml, NvmlError, PynvmlNvml
from energyd.sources.nvml_replay import RecordingNvml

LOAD = """
import sys, time, torch
x = torch.randn(8192, 8192, device="cuda:0")
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    x = (x @ x).clamp_(-1, 1)
    torch.cuda.synchronize()
"""


def call_cost_us(fn: Callable[[], object], rounds: int = 200) -> float | str:
    """Mean µs per call, or the error kind of a call this GPU does not answer."""
    try:
        fn()
    except NvmlError as err:
        return err.kind
    start = time.perf_counter()
    for _ in range(rounds):
        fn()
    return (time.perf_counter() - start) / rounds * 1e6


def counter_cadence(nvml: Nvml, index: int, seconds: float = 1.0) -> dict[str, float]:
    """How often the counter moves: polled every ~1 ms, the median time between changes."""
    changes: list[float] = []
    last = nvml.total_energy_mj(index)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        value = nvml.total_energy_mj(index)
        if value != last:
            changes.append(time.monotonic())
            last = value
        time.sleep(0.001)
    gaps = [b - a for a, b in itertools.pairwise(changes)]
    return {"changes": len(changes), "median_gap_s": statistics.median(gaps) if gaps else float("nan")}


def record(args: argparse.Namespace, nvml: Nvml | None = None) -> int:
    """`nvml` stands in for NVIDIA's binding (tests replay a recording through it)."""
    real = PynvmlNvml() if nvml is None else nvml
    recorder = RecordingNvml(real, f"{platform.node()}, {time.strftime('%Y-%m-%d %H:%M:%SZ', time.gmtime())}")
    summary: dict[str, object] = {"recorded_on": recorder.recorded_on}
    try:
        source = GpuSource(recorder)
    except SourceError as err:
        summary["error"] = f"{err.reason} (fix: {err.fix})"
        recorder.write(args.out)
        args.summary.write_text(json.dumps(summary, indent=1) + "\n")
        print(f"no GPU zones: {err.reason}", file=sys.stderr)
        return 2
    load = None
    if args.load_s > 0:
        load = subprocess.Popen([sys.executable, "-c", LOAD, str(args.load_s)])
    sampler = GpuSampler(source, args.procfs_root, NoNames())
    summary["methods"] = sampler.methods()
    passes = []
    empty = Snapshot(0.0, "none", False, (), {}, {}, {}, {}, {}, {}, {}, {}, 0.0, 0)
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        snap = sampler.step(time.time(), empty)
        passes.append(
            {
                zone: {
                    "node_j": j,
                    "power_w": snap.node_power_w.get(zone, 0.0),
                    "pods_j": sum(snap.pod_energy_j[zone].values()),
                    "system_j": snap.unattributed_j.get((zone, "system"), 0.0),
                    "idle_j": snap.unattributed_j.get((zone, "idle"), 0.0),
                }
                for zone, j in snap.node_energy_j.items()
            }
        )
        time.sleep(args.interval)
    if load is not None:
        load.wait(timeout=args.load_s + 60)
    summary["passes"] = passes
    summary["read_errors"] = dict(sampler.errors)
    index = source.devices[0].index
    summary["real_call_us"] = {
        "total_energy_mj": call_cost_us(lambda: real.total_energy_mj(index)),
        "process_samples": call_cost_us(lambda: real.process_samples(index, 0), rounds=20),
        "compute_processes": call_cost_us(lambda: real.compute_processes(index), rounds=20),
    }
    summary["counter_cadence"] = counter_cadence(real, index, args.cadence_s)
    recorder.clocks(index)  # for the recording: what the profiler reads
    sampler.close()
    recorder.write(args.out)
    args.summary.write_text(json.dumps(summary, indent=1) + "\n")
    print(f"wrote {args.out} and {args.summary}: {len(passes)} passes, methods {summary['methods']}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m energyd.gpu_record", description="Record what NVML answers to energyd's GPU path."
    )
    p.add_argument("--out", type=Path, required=True, help="the recording (replay format)")
    p.add_argument("--summary", type=Path, required=True, help="per-pass figures, call costs, cadence")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--interval", type=float, default=1.0)
    p.add_argument("--load-s", type=float, default=8.0, help="seconds of GPU load from a child process")
    p.add_argument("--cadence-s", type=float, default=1.0, help="how long to poll the counter's updates")
    p.add_argument("--procfs-root", type=Path, default=Path("/proc"))
    return p


def main(argv: list[str] | None = None) -> int:
    return record(parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
