"""A real Prometheus server for tests: started on a free loopback port in a temp dir, killed after.

with start_prometheus(["127.0.0.1:9102"], scrape_interval_s=1) as url:
    series = wait_for_series(url, "up == 1", timeout_s=10)
    result = query(url, "rate(energyd_pod_energy_joules_total[5s])")
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

READY_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def duration(seconds: float) -> str:
    """A Prometheus duration: whole milliseconds, as its format takes no fractions ("1.5s" is refused)."""
    return f"{round(seconds * 1000)}ms"


def prometheus_config(
    targets: Sequence[str],
    interval_s: float,
    rule_files: Sequence[Path],
    scrape_configs: Sequence[Mapping[str, Any]] = (),
) -> str:
    """`targets` make the job "test"; `scrape_configs` are further jobs, as Prometheus takes them."""
    lines = [
        "global:",
        f"  scrape_interval: {duration(interval_s)}",
        f"  evaluation_interval: {duration(interval_s)}",
    ]
    if rule_files:
        lines.append("rule_files:")
        lines += [f"  - {json.dumps(str(p))}" for p in rule_files]
    if targets or scrape_configs:
        lines.append("scrape_configs:")
    if targets:
        lines += [
            "  - job_name: test",
            f"    scrape_timeout: {duration(interval_s)}",
            "    static_configs:",
            f"      - targets: {json.dumps(list(targets))}",
        ]
    lines += [f"  - {json.dumps(job)}" for job in scrape_configs]  # JSON is YAML
    return "\n".join(lines) + "\n"


def _get_json(url: str, timeout_s: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout_s) as resp:
        return json.load(resp)


@contextmanager
def start_prometheus(
    scrape_targets: Sequence[str],
    scrape_interval_s: float = 1.0,
    rule_files: Sequence[Path] | None = None,
    data_dir: Path | None = None,
    scrape_configs: Sequence[Mapping[str, Any]] = (),
) -> Iterator[str]:
    """Yields the server's base URL (http://127.0.0.1:PORT) once it answers /-/ready.

    Its TSDB is `data_dir` when given (e.g. blocks written beforehand by promtool), else empty."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise RuntimeError("prometheus is not installed: run scripts/ensure-prometheus.sh (make test does)")
    with tempfile.TemporaryDirectory(prefix="prom-") as tmp:
        config = Path(tmp) / "prometheus.yml"
        config.write_text(
            prometheus_config(scrape_targets, scrape_interval_s, rule_files or [], scrape_configs)
        )
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log_path = Path(tmp) / "prometheus.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={data_dir or Path(tmp) / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            _wait_ready(proc, url, log_path)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prometheus exited ({proc.returncode}): {log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"prometheus not ready after {READY_TIMEOUT_S}s: {log_path.read_text()[-2000:]}")


def query(url: str, promql: str) -> list[dict[str, Any]]:
    """The instant query's result list (each with "metric" and "value": [ts, "string"])."""
    body = _get_json(f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
    if body.get("status") != "success":
        raise RuntimeError(f"query {promql!r} failed: {body}")
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def wait_for_series(url: str, promql: str, timeout_s: float) -> list[dict[str, Any]]:
    """Polls the query until it returns at least one series; raises TimeoutError otherwise."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = query(url, promql)
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"no series for {promql!r} after {timeout_s}s")
        time.sleep(0.2)
