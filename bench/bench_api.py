"""POST /decide requests per second on one uvicorn worker.

Starts the real `adapter run` (one worker, no Prometheus, so no loop competes for the CPU) on
loopback with a generated 2-stage video profile (4 variants per stage, batch sizes 1-8), then
sends a bounded number of /decide requests with explicit arrival rates from httpx clients:
one client in sequence (latency), then 4 threads at once (throughput; solving runs in the
worker's threadpool, so the GIL bounds it). Prints per-request cost, the solver's share of it,
the server's own CPU time per request (user + system of its process: what one worker's core
pays, whatever else loads the machine; 1 / that is the ceiling of one worker) and
os.cpu_count(). Run by `make bench`.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # tests.sim.profiles generates the profile

SEQUENTIAL = 400
THREADS, PER_THREAD = 4, 100


def start(profiles: Path, port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "adapter", "run", "--port", str(port), "--profiles", str(profiles)]
    process = subprocess.Popen(
        [*command, "--prometheus-url", "", "--log-level", "WARNING"], stdout=subprocess.DEVNULL, cwd=REPO
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("adapter run did not start")


def request(i: int) -> dict[str, object]:
    return {"pipeline": "video", "sla_s": 2.0, "arrival_rate_rps": 1.0 + (i % 40)}


def sequential(url: str) -> tuple[list[float], list[float]]:
    latencies, solves = [], []
    with httpx.Client(base_url=url) as client:
        for i in range(20):  # warm-up: imports, first solver build
            client.post("/decide", json=request(i)).raise_for_status()
        for i in range(SEQUENTIAL):
            started = time.perf_counter()
            response = client.post("/decide", json=request(i))
            latencies.append(time.perf_counter() - started)
            response.raise_for_status()
            solves.append(float(response.json()["solve_time_s"]))
    return latencies, solves


def concurrent(url: str) -> float:
    def work(offset: int) -> None:
        with httpx.Client(base_url=url) as client:
            for i in range(PER_THREAD):
                client.post("/decide", json=request(offset + i)).raise_for_status()

    threads = [threading.Thread(target=work, args=(k * PER_THREAD,)) for k in range(THREADS)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return THREADS * PER_THREAD / (time.perf_counter() - started)


def main() -> None:
    from tests.prom import free_port
    from tests.sim.profiles import video_profile

    profile = video_profile(variants_per_stage=4, sizes=(1, 2, 4, 8))
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "video.json").write_text(json.dumps(profile.model_dump(mode="json", exclude_none=True)))
        port = free_port()
        process = start(Path(tmp), port)
        server = psutil.Process(process.pid)
        try:
            url = f"http://127.0.0.1:{port}"
            latencies, solves = sequential(url)
            before = server.cpu_times()
            rps = concurrent(url)
            after = server.cpu_times()
        finally:
            process.terminate()
            process.wait(timeout=20)
    latencies.sort()
    mean_ms = statistics.fmean(latencies) * 1000
    print(
        f"os.cpu_count() = {os.cpu_count()}; one uvicorn worker; profile 2 stages x 4 variants x 4 batch sizes"
    )
    print(
        f"sequential, {SEQUENTIAL} requests: {1000 / mean_ms:.0f} req/s, per request mean {mean_ms:.2f} ms, "
        f"p50 {latencies[len(latencies) // 2] * 1000:.2f} ms, p99 {latencies[int(len(latencies) * 0.99)] * 1000:.2f} ms, "
        f"of which solving {statistics.fmean(solves) * 1000:.3f} ms"
    )
    cpu_ms = (after.user + after.system - before.user - before.system) * 1000 / (THREADS * PER_THREAD)
    print(f"{THREADS} clients at once, {THREADS * PER_THREAD} requests: {rps:.0f} req/s")
    print(f"server CPU per request: {cpu_ms:.2f} ms, so one worker's ceiling is {1000 / cpu_ms:.0f} req/s")


if __name__ == "__main__":
    main()
