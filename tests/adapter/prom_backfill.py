"""A real Prometheus on loopback holding series written beforehand, for the adapter's tests.

The series are written as OpenMetrics text, turned into TSDB blocks by `promtool tsdb
create-blocks-from openmetrics` and served by a real `prometheus` started on a free port over
that storage directory, so every query runs through Prometheus' own PromQL engine, without
waiting for scrapes. The samples lie in the past (`base_s`), queries are made at those times.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests.prom import start_prometheus

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
    with start_prometheus([], scrape_interval_s=15, data_dir=data) as url:
        yield url
