"""A real Prometheus on loopback holding series written beforehand, for the adapter's tests.

The series are written as OpenMetrics text, turned into TSDB blocks by `promtool tsdb
create-blocks-from openmetrics` and served by a real `prometheus` started on a free port over
that storage directory, so every query runs through Prometheus' own PromQL engine, without
waiting for scrapes. The samples lie in the past (`base_s`), queries are made at those times.
(tests/prom.py starts Prometheus over an empty storage for scraping; this one needs its own.)
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.prom import free_port

REQUESTS = "seldon_api_executor_server_requests_seconds"


def request_counter_lines(
    pipeline: str, base_s: int, duration_s: int, rate_rps: Callable[[float], float], step_s: int = 5
) -> list[str]:
    """Seldon v1 request-count samples of a pipeline whose arrival rate at t seconds after base_s
    is rate_rps(t): the counter integrates it (left Riemann sum per step), with a histogram's
    count, sum and two buckets so latency quantiles can be asked too (90 % under 0.5 s)."""
    lines = [f"# HELP {REQUESTS} requests", f"# TYPE {REQUESTS} histogram"]
    count = 0.0
    for t in range(0, duration_s + 1, step_s):
        labels = f'deployment_name="{pipeline}"'
        ts = base_s + t
        lines += [
            f'{REQUESTS}_bucket{{{labels},le="0.5"}} {count * 0.9} {ts}',
            f'{REQUESTS}_bucket{{{labels},le="+Inf"}} {count} {ts}',
            f"{REQUESTS}_count{{{labels}}} {count} {ts}",
            f"{REQUESTS}_sum{{{labels}}} {count * 0.3} {ts}",
        ]
        count += rate_rps(t) * step_s
    return lines


@contextmanager
def backfilled_prometheus(workdir: Path, lines: Sequence[str]) -> Iterator[str]:
    """Start Prometheus over blocks made from `lines` (OpenMetrics); yields its base URL."""
    source = workdir / "series.om"
    source.write_text("\n".join([*lines, "# EOF", ""]), encoding="utf-8")
    data = workdir / "tsdb"
    subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(source), str(data)],
        check=True,
        capture_output=True,
    )
    config = workdir / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 15s\n", encoding="utf-8")
    port = free_port()
    log = (workdir / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            shutil.which("prometheus") or "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"prometheus did not start: {(workdir / 'prometheus.log').read_text()[-2000:]}"
                )
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
