"""`make run`: how long until a newcomer sees each thing the walkthrough (docs/run.md) promises.

Starts the orchestrator (`python -m adapter.standin.stack`, the shipped video profile, the bursty
workload, default intervals) in a temporary state directory, then polls its Prometheus every
0.5 s for: watts per named pod on the simulated node, the adapter's first decision, and the
simulation running a configuration the adapter patched in. Then SIGINT, timing the clean stop.
Prints seconds from start for each, and os.cpu_count(). Run by `make bench`.
"""

from __future__ import annotations

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
    sys.exit(main())
