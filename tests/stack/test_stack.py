"""`make run`'s orchestrator end to end: every real part (stand-in cluster, two energyd, the Debian
Prometheus, the adapter) started as `make run` starts them, checked through Prometheus' HTTP API
and the stand-in API, then stopped with SIGINT."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from adapter.sim.trace import write_trace
from adapter.standin.stack import prometheus_config
from tests.prom import query
from tests.sim.profiles import video_profile

TIMEOUT_S = 45.0


class Output:
    """The orchestrator's stdout, read by a thread so the test can wait for a line."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert proc.stdout is not None
        self._stream = proc.stdout
        self._thread = threading.Thread(target=self._read, args=(proc.stdout,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))

    def close(self) -> None:
        self._thread.join(5)
        self._stream.close()

    def wait_for(self, text: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not any(text in line for line in self.lines):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {text!r} in:\n" + "\n".join(self.lines))
            time.sleep(0.1)

    def url(self, service: str) -> str:
        for line in self.lines:
            match = re.match(rf"\s+{re.escape(service)}\s+(http://\S+)", line)
            if match:
                return match.group(1)
        raise KeyError(service)


def _poll(promql: str, prom_url: str, timeout_s: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while not (result := query(prom_url, promql)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no series for {promql!r} after {timeout_s}s")
        time.sleep(0.5)
    return result


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Output, Path]]:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "video.yaml").write_text(
        yaml.safe_dump(video_profile(3, (1, 2, 4)).model_dump(exclude_none=True))
    )
    write_trace(tmp_path / "trace.csv", [8] * 60)
    state = tmp_path / "state"
    proc = subprocess.Popen(
        [sys.executable, "-m", "adapter.standin.stack", "--state-dir", str(state), "--profiles", str(profiles),
         "--trace", str(tmp_path / "trace.csv"), "--scrape-interval", "1", "--adapt-interval", "2",
         "--rate-window", "5", "--ready-timeout", "30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    out = Output(proc)
    try:
        yield proc, out, state
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        out.close()


def test_make_run_shows_pod_energy_and_adapter_decisions_then_stops_cleanly(
    stack: tuple[subprocess.Popen[str], Output, Path],
) -> None:
    proc, out, state = stack
    out.wait_for("Ctrl-C stops everything.", TIMEOUT_S)
    prom = out.url("Prometheus")
    for service in ("energyd (this machine)", "energyd (simulated node)", "adapter API docs", "stand-in API"):
        assert out.url(service).startswith("http://127.0.0.1:")
    children = psutil.Process(proc.pid).children(recursive=True)
    assert len(children) >= 5

    watts = _poll('rate(energyd_pod_energy_joules_total{node="standin-node"}[5s]) > 0', prom, TIMEOUT_S)
    assert any(
        re.fullmatch(r"video-default-\d-(detect|classify)-[0-9a-f]{5}", s["metric"].get("pod", ""))
        for s in watts
    )
    assert _poll(
        'energyd_source_info{node="standin-node", source="estimate", reason="selected"} == 1', prom, 5
    )
    assert _poll("adapter_decisions_total > 0", prom, TIMEOUT_S)

    # The adapter's patch reached the stand-in: the deployment differs from the one it started
    # with (one replica of each stage's least accurate variant at batch 1), and so does the
    # simulation (what the stand-in reports in force).
    in_force = _poll('standin_stage_info{stage="detect", variant!="yolov5n"} == 1', prom, TIMEOUT_S)
    assert in_force[0]["metric"]["variant"] in {"yolov5s", "yolov5m"}
    api = out.url("stand-in API")
    path = "/apis/machinelearning.seldon.io/v1/namespaces/default/seldondeployments/video"
    with urllib.request.urlopen(api + path, timeout=5) as resp:
        deployment = json.load(resp)
    assert int(deployment["metadata"]["resourceVersion"]) > 1
    env = {
        e["name"]: e["value"]
        for e in deployment["spec"]["predictors"][0]["componentSpecs"][0]["spec"]["containers"][0]["env"]
    }
    assert env["MODEL_VARIANT"] != "yolov5n"
    # Each patch is announced by an Event on the SeldonDeployment that says what changed.
    with urllib.request.urlopen(api + "/api/v1/namespaces/default/events", timeout=5) as resp:
        events = json.load(resp)["items"]
    assert events and all(e["reason"] == "Reconfigured" for e in events)
    assert {e["involvedObject"]["name"] for e in events} == {"video"}
    assert "detect: yolov5n x1 b1 -> " in events[0]["message"]

    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0
    out.wait_for("Stopped.", 5)
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert "video: reconfigured for " in (state / "adapter.log").read_text(encoding="utf-8")
    assert not (state / "standin" / "node").exists() and not (state / "prometheus" / "data").exists()


def test_a_child_that_dies_is_named_with_its_log_and_the_rest_are_stopped(
    stack: tuple[subprocess.Popen[str], Output, Path],
) -> None:
    proc, out, _ = stack
    out.wait_for("Ctrl-C stops everything.", TIMEOUT_S)
    children = psutil.Process(proc.pid).children(recursive=False)
    victim = next(c for c in children if "estimate" in c.cmdline())  # energyd --source estimate
    victim.kill()
    assert proc.wait(30) == 1
    out.wait_for("Stopped.", 5)
    text = "\n".join(out.lines)
    assert "energyd-simulated exited with -9" in text
    assert "energy source: estimate" in text  # its last log lines (logged before it serves)
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]


def test_a_part_that_cannot_start_says_why(tmp_path: Path) -> None:
    (tmp_path / "profiles").mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "adapter.standin.stack", "--state-dir", str(tmp_path / "state"),
         "--profiles", str(tmp_path / "profiles"), "--ready-timeout", "20"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert "standin exited with 2" in done.stderr
    assert "no profile for pipeline 'video'" in done.stderr


def test_stops_every_child_even_when_its_output_is_gone(tmp_path: Path) -> None:
    """A closed terminal or pipe (EPIPE on every print) must not cut the clean-up short."""
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "video.yaml").write_text(
        yaml.safe_dump(video_profile(3, (1, 2, 4)).model_dump(exclude_none=True))
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "adapter.standin.stack", "--state-dir", str(tmp_path / "state"),
         "--profiles", str(profiles), "--ready-timeout", "30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        if "Ctrl-C stops everything." in line:
            break
    children = psutil.Process(proc.pid).children(recursive=True)
    assert len(children) >= 5
    proc.stdout.close()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]


def test_the_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    config = tmp_path / "prometheus.yml"
    config.write_text(
        prometheus_config(
            2.0,
            Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "rules.yaml",
            {"energyd": [("127.0.0.1:9102", {"node": "this-machine"}), ("127.0.0.1:9103", {})]},
        )
    )
    done = subprocess.run(
        ["promtool", "check", "config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr
    assert yaml.safe_load(config.read_text())["scrape_configs"][0]["static_configs"][0]["labels"] == {
        "node": "this-machine"
    }


def test_no_part_outlives_an_orchestrator_killed_outright(
    stack: tuple[subprocess.Popen[str], Output, Path],
) -> None:
    proc, out, _ = stack
    out.wait_for("Ctrl-C stops everything.", TIMEOUT_S)
    children = psutil.Process(proc.pid).children(recursive=False)
    assert len(children) == 5
    proc.kill()  # SIGKILL: no clean-up of its own runs
    proc.wait(10)
    _, alive = psutil.wait_procs(children, timeout=15)
    assert not [c for c in alive if c.status() != psutil.STATUS_ZOMBIE]
