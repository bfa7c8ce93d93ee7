"""`make run`: how long until a newcomer sees each thing the walkthrough (docs/run.md) promises.

Starts the orchestrator (`python -m adapter.standin.stack`, the shipped video profile, the bursty
workload, default intervals) in a temporary state directory, then polls its Prometheus every
0.5 s for: watts per named pod on the simulated node, the adapter's first decision, and the
simulation running a configuration the adapter patched in. Then SIGINT, timing the clean stop.
Prints seconds from start for each, and os.cpu_count(). Run by `make bench`.

`--ramp` instead replays a ramp (RAMP below: 5 req/s, up to 22 over 30 s, held 3 minutes, back
to 5) and reports, from the same Prometheus, how long after the ramp's end the served p99 is
back under the SLA, the worst p99, and the reconfigurations per hour (configurations the
stand-in put in force, from its log). Takes about 6 minutes; not part of `make bench`.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
TIMEOUT_S = 120.0
MILESTONES = {
    "watts per named pod": 'sum by (pod) (rate(energyd_pod_energy_joules_total{node="standin-node", pod=~"video-.+"}[1m])) > 0',
    "first adapter decision": "adapter_decisions_total > 0",
    "adapter's configuration simulated": 'standin_stage_info{stage="detect", variant!="yolov5n"} == 1',
}


# Trace seconds: 60 at 5 req/s, a 30-s ramp to 22, 180 s held, back to 5 for 150 s.
RAMP = [5] * 60 + [round(5 + 17 * (t + 1) / 30) for t in range(30)] + [22] * 180 + [5] * 150
RAMP_END_S = 90.0
BURSTY_RAMP_END_S = 420.0  # the bursty window: 5 req/s until 387 s, ~27 from 420 s
# The pipeline SLA the simulator's rule gives the shipped video profile (5 x the stages' mean
# batch-1 latency): the SLA make run's latency is held to.
P99_QUERY = (
    "histogram_quantile(0.99, sum by (le) (rate(seldon_api_executor_server_requests_seconds_bucket[20s])))"
)


def ramp(workload_name: str | None) -> int:
    """RAMP, or one of IPA's windows (its ramp ends when the bursty window reaches ~27 req/s)."""
    from adapter.profiles import default_sla_s, load_profile
    from adapter.settings import default_profiles_dir
    from adapter.sim.trace import workload, write_trace

    counts, ramp_end_s = (
        (RAMP, RAMP_END_S) if workload_name is None else (workload(workload_name), BURSTY_RAMP_END_S)
    )
    sla_s = default_sla_s(load_profile(default_profiles_dir() / "video.yaml"))
    with tempfile.TemporaryDirectory(prefix="bench-ramp-") as tmp:
        trace = Path(tmp) / "ramp.csv"
        write_trace(trace, counts)
        state = Path(tmp) / "state"
        proc = subprocess.Popen(
            [sys.executable, "-m", "adapter.standin.stack", "--state-dir", str(state), "--trace", str(trace)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        assert proc.stdout is not None
        prometheus = None
        for line in proc.stdout:
            if line.strip().startswith("Prometheus "):
                prometheus = line.split()[-1]
            if "Ctrl-C stops everything." in line:
                break
        # The stand-in starts replaying when it is ready, a few seconds before the rest.
        ready_at = time.monotonic()
        p99: list[tuple[float, float]] = []
        try:
            if prometheus is None:
                print(f"the stack did not start (exit {proc.wait()})")
                return 1
            with httpx.Client(base_url=prometheus, timeout=5) as client:
                while time.monotonic() - ready_at < len(counts) - 10:
                    result = client.get("/api/v1/query", params={"query": P99_QUERY}).json()["data"]["result"]
                    if result and result[0]["value"][1] not in ("NaN", "+Inf"):
                        p99.append((time.monotonic() - ready_at, float(result[0]["value"][1])))
                    time.sleep(1.0)
        finally:
            proc.send_signal(signal.SIGINT)
            code = proc.wait(60)
            proc.stdout.close()
        log = (state / "standin.log").read_text(encoding="utf-8", errors="replace")
    # "<date> <time>,<ms> INFO ...: in force: ..." per configuration; the first is the deployment.
    stamps = [line.split()[1] for line in log.splitlines() if "in force:" in line]
    clock_s = [
        int(h) * 3600 + int(m) * 60 + float(sec.replace(",", "."))
        for h, m, sec in (x.split(":") for x in stamps)
    ]
    in_force = len(clock_s) - 1
    settled = sum(1 for c in clock_s[1:] if c - clock_s[0] > 60)  # after the rate windows filled
    elapsed_s = max(t for t, _ in p99) if p99 else 1.0
    over = [t for t, v in p99 if t >= ramp_end_s - 30 and v > sla_s]
    back_s = max(over) - ramp_end_s if over else 0.0
    print(f"os.cpu_count() = {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}, exit code {code}")
    print(
        f"  {workload_name or 'ramp 5 -> 22 req/s'}; SLA {sla_s:.2f} s; ramp ends {ramp_end_s:g} s after ready (+- 3 s)"
    )
    print(f"  worst p99 (20-s window) {max((v for _, v in p99), default=float('nan')):.2f} s")
    print(
        f"  p99 back under the SLA {max(back_s, 0.0):.0f} s after the ramp's end ({len(over)} samples over it)"
    )
    print(f"  reconfigurations {in_force} in {elapsed_s:.0f} s = {3600 * in_force / elapsed_s:.0f} per hour")
    print(
        f"  of which after the first minute {settled} in {elapsed_s - 60:.0f} s = {3600 * settled / (elapsed_s - 60):.0f} per hour"
    )
    print(
        "  worst p99 per 30 s from ready: "
        + ", ".join(
            f"{start}: {max((v for t, v in p99 if start <= t < start + 30), default=float('nan')):.1f}"
            for start in range(0, int(elapsed_s), 30)
        )
    )
    return 0 if code == 0 else 1


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp:
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "adapter.standin.stack", "--state-dir", str(Path(tmp) / "state")],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        assert proc.stdout is not None
        seen: dict[str, float] = {}
        prometheus = None
        try:
            for line in proc.stdout:
                if line.strip().startswith("Prometheus "):
                    prometheus = line.split()[-1]
                if "Ctrl-C stops everything." in line:
                    seen["every part ready"] = time.monotonic() - started
                    break
            if prometheus is None:
                print(f"the stack did not start (exit {proc.wait()})")
                return 1
            with httpx.Client(base_url=prometheus, timeout=5) as client:
                while len(seen) <= len(MILESTONES) and time.monotonic() - started < TIMEOUT_S:
                    for name, promql in MILESTONES.items():
                        if name not in seen:
                            result = client.get("/api/v1/query", params={"query": promql}).json()
                            if result["data"]["result"]:
                                seen[name] = time.monotonic() - started
                    time.sleep(0.5)
        finally:
            stop_started = time.monotonic()
            proc.send_signal(signal.SIGINT)
            code = proc.wait(60)
            proc.stdout.close()
        stop_s = time.monotonic() - stop_started
    print(f"os.cpu_count() = {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}")
    for name in ("every part ready", *MILESTONES):
        print(
            f"  {name:<36} {seen[name]:6.1f} s"
            if name in seen
            else f"  {name:<36} not within {TIMEOUT_S:g} s"
        )
    print(f"  {'SIGINT to exit (code ' + str(code) + ')':<36} {stop_s:6.1f} s")
    return 0 if code == 0 and len(seen) == len(MILESTONES) + 1 else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ramp", action="store_true", help="the ramp measurement instead (about 6 minutes)")
    parser.add_argument(
        "--workload", help="with --ramp: one of IPA's windows instead of the ramp (20 minutes)"
    )
    args = parser.parse_args()
    sys.exit(ramp(args.workload) if args.ramp else main())
