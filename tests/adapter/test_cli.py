"""The `adapter` command: arguments, wiring, the loop runner and a clean stop on SIGINT."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import httpx
import kubernetes
import pytest
from prometheus_client.parser import text_string_to_metric_families

from adapter.actuate import DryRunActuator
from adapter.actuate.seldon import SeldonActuator
from adapter.cli import (
    _register_optional,
    build_actuator,
    build_loops,
    main,
    parser,
    settings_from_args,
)
from adapter.errors import AdapterError
from adapter.loop_runner import LoopRunner
from adapter.metrics import AdapterMetrics
from adapter.problem import Decision, StageChoice
from adapter.profiles import default_sla_s
from adapter.query import PrometheusQuery
from adapter.settings import AdapterSettings
from adapter.standin.kube import KubeStore
from tests.adapter.prom_backfill import backfilled_prometheus, request_counter_lines
from tests.kube import serve_fake_kube
from tests.prom import free_port
from tests.sim.profiles import video_profile

BASE_S = int(time.time()) - 3 * 3600


def test_help_explains_run(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for option in (
        "--profiles",
        "--prometheus-url",
        "--interval",
        "--apply",
        "--namespace",
        "--sla-s",
        "ADAPTER_API_TOKEN",
    ):
        assert option in text
    top = parser().format_help()
    assert "run" in top and "simulate" in top


def test_settings_from_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADAPTER_API_TOKEN", "t0k")
    args = parser().parse_args(
        [
            "run",
            "--port",
            "9000",
            "--gamma",
            "0.2",
            "--pipeline",
            "video",
            "--variant-uri",
            "yolov5s=gs://m/y",
            "--apply",
        ]
    )
    settings = settings_from_args(args)
    assert settings.port == 9000 and settings.weights.gamma == 0.2 and settings.pipelines == ("video",)
    assert settings.variant_uris == {"yolov5s": "gs://m/y"} and settings.apply and settings.api_token == "t0k"
    monkeypatch.delenv("ADAPTER_API_TOKEN")
    assert settings_from_args(parser().parse_args(["run"])).api_token is None
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        settings_from_args(parser().parse_args(["run", "--variant-uri", "yolov5s"]))


def test_build_loops_checks_the_pipeline_names() -> None:
    profiles = {"video": video_profile()}
    with PrometheusQuery("http://127.0.0.1:9") as query:
        loops = build_loops(AdapterSettings(), profiles, query, DryRunActuator())
        assert [loop.settings.pipeline for loop in loops] == ["video"]
        assert loops[0].settings.sla_s == pytest.approx(default_sla_s(video_profile()))
        with pytest.raises(AdapterError, match="--pipeline nlp"):
            build_loops(AdapterSettings(pipelines=("nlp",)), profiles, query, DryRunActuator())
    assert build_loops(AdapterSettings(), profiles, None, DryRunActuator()) == []


def test_default_sla_is_ipas_rule() -> None:
    profile = video_profile()
    means = [sum(v.batches[0].latency_s for v in s.variants) / len(s.variants) for s in profile.stages]
    assert default_sla_s(profile) == pytest.approx(25 * sum(means))


@pytest.fixture
def prometheus_url(tmp_path: Path) -> Iterator[str]:
    with backfilled_prometheus(tmp_path, request_counter_lines("video", BASE_S, 300, lambda t: 6.0)) as url:
        yield url


def test_loop_runner_keeps_the_metrics_current(prometheus_url: str) -> None:
    metrics = AdapterMetrics()
    with PrometheusQuery(prometheus_url) as query:
        loops = build_loops(
            AdapterSettings(sla_s=2.0, headroom=1.0), {"video": video_profile()}, query, DryRunActuator()
        )
        [result] = LoopRunner(loops, metrics, 10, query.p99_latency_s).step_all(BASE_S + 200.0)
    assert result.decision is not None and not result.degraded
    values = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(metrics.exposition().decode())
        for s in f.samples
    }
    assert values[("adapter_observed_requests_per_second", (("pipeline", "video"),))] == pytest.approx(6.0)
    assert values[("adapter_predicted_requests_per_second", (("pipeline", "video"),))] == pytest.approx(6.0)
    assert values[("adapter_sla_seconds", (("pipeline", "video"),))] == 2.0
    assert values[("adapter_observed_p99_latency_seconds", (("pipeline", "video"),))] == pytest.approx(0.5)
    for stage in result.decision.stages:
        key = (("pipeline", "video"), ("stage", stage.stage))
        assert values[("adapter_stage_replicas", key)] == stage.replicas
    assert values[("adapter_degraded", ())] == 0


def test_loop_runner_reports_an_unreachable_prometheus() -> None:
    metrics = AdapterMetrics()
    with PrometheusQuery(f"http://127.0.0.1:{free_port()}", timeout_s=0.2, retries=0) as query:
        loops = build_loops(AdapterSettings(sla_s=2.0), {"video": video_profile()}, query, DryRunActuator())
        [result] = LoopRunner(loops, metrics, 10).step_all(time.time())
    assert result.degraded
    assert "unreachable" in metrics.degraded_reasons()["loop:video"]


def test_a_missing_subcommand_module_says_why(capsys: pytest.CaptureFixture[str]) -> None:
    top = argparse.ArgumentParser()
    subparsers = top.add_subparsers(dest="command", required=True)
    _register_optional(subparsers, "adapter.not_written_yet", ("ghost",))
    args = top.parse_args(["ghost", "--any", "thing"])
    assert args.func(args) == 2
    assert "adapter.not_written_yet is not available" in capsys.readouterr().err


def test_a_bad_profiles_directory_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--profiles", str(tmp_path / "missing"), "--port", str(free_port())]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_sigint_stops_the_server_cleanly(tmp_path: Path) -> None:
    (tmp_path / "video.json").write_text(
        json.dumps(video_profile().model_dump(mode="json", exclude_none=True))
    )
    port = free_port()
    command = [sys.executable, "-m", "adapter", "run", "--port", str(port), "--profiles", str(tmp_path)]
    process = subprocess.Popen(
        [*command, "--prometheus-url", ""], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert "0 loop(s)" in (process.stdout.readline() if process.stdout else "")
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=20)
    assert process.returncode == 0, output
    assert "Traceback" not in output


def test_loop_runner_survives_a_failing_step(prometheus_url: str) -> None:
    metrics = AdapterMetrics()
    with PrometheusQuery(prometheus_url) as query:
        # An SLA the problem refuses: the step raises ValueError after querying the load.
        loops = build_loops(AdapterSettings(sla_s=-1.0), {"video": video_profile()}, query, DryRunActuator())
        assert LoopRunner(loops, metrics, 10).step_all(BASE_S + 200.0) == []
    assert metrics.degraded_reasons()["loop:video"].startswith("step failed: InvalidProblem: sla_s")


def test_apply_wires_the_seldon_actuator_from_kubeconfig(tmp_path: Path) -> None:
    with serve_fake_kube() as (fake, api):
        host = api.api_client.configuration.host
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "fake", "cluster": {"server": host}}],
                    "users": [{"name": "me", "user": {"token": "t"}}],
                    "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "me"}}],
                    "current-context": "fake",
                }
            )
        )
        path = KubeStore.object_path("mlops.seldon.io", "v1alpha1", "prod", "models", "detect")
        fake.put_object(path, {"spec": {"replicas": 1, "storageUri": "gs://m/a"}})
        settings = AdapterSettings(
            apply=True, seldon="v2", namespace="prod", variant_uris={"b": "gs://m/b"}, kubeconfig=kubeconfig
        )
        default = kubernetes.client.Configuration.get_default_copy()
        try:
            actuator = build_actuator(settings)
        finally:
            # load_kube_config sets the process-wide default client configuration: put it back.
            kubernetes.client.Configuration.set_default(default)
        assert isinstance(actuator, SeldonActuator) and not actuator.dry_run
        assert isinstance(build_actuator(AdapterSettings()), DryRunActuator)
        decision = Decision(
            True, 1.0, (StageChoice("detect", "b", 2, 1, 0.1, 0, 1, 2),), 50, 2, 1, 0.1, 1, "x", 0, None
        )
        assert actuator.apply("video", decision) is True
        [patch] = fake.patches()
        assert patch.body == {"spec": {"replicas": 2, "storageUri": "gs://m/b"}}


# --- issue 10: refused at start, stripped token, liveness, graceful shutdown; issue 11: decide, SLA


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["--interval", "0"], "--interval"),  # ran the loop back to back
        (["--interval", "-1"], "--interval"),
        (["--replicas-max", "0"], "--replicas-max"),  # started, then failed every step
        (["--sla-s", "-1"], "--sla-s"),
        (["--alpha", "nan"], "--alpha"),  # a traceback
        (["--port", "70000"], "--port"),  # a traceback
        (["--replicas-min", "5", "--replicas-max", "3"], "--replicas-min"),
    ],
)
def test_bad_options_are_refused_at_start(
    argv: list[str], option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = main(["run", "--prometheus-url", "", *argv])
    except SystemExit as exit_:
        code = exit_.code  # type: ignore[assignment]
    assert code == 2
    err = capsys.readouterr().err
    assert option in err and "Traceback" not in err


def test_the_api_token_is_stripped(monkeypatch: pytest.MonkeyPatch) -> None:
    # A token file read into the variable keeps its newline: every apply was 401.
    monkeypatch.setenv("ADAPTER_API_TOKEN", "s3cret\n")
    assert settings_from_args(parser().parse_args(["run"])).api_token == "s3cret"
    monkeypatch.setenv("ADAPTER_API_TOKEN", " \n")
    assert settings_from_args(parser().parse_args(["run"])).api_token is None


class StuckPrometheus:
    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()

    def request_rate_history(
        self, pipeline: str, now_s: float, window_s: float
    ) -> Sequence[tuple[float, float]]:
        self.entered.set()
        self.release.wait(60)
        return [(now_s, 1.0)]


def test_a_wedged_loop_makes_the_adapter_unhealthy() -> None:
    from fastapi.testclient import TestClient

    from adapter.api import create_app
    from adapter.loop import AdaptLoop, LoopSettings
    from adapter.predict import MaxWindowPredictor
    from adapter.solve import get_solver

    stuck = StuckPrometheus()
    loop = AdaptLoop(
        video_profile(),
        LoopSettings(pipeline="video", sla_s=2.0),
        stuck,
        MaxWindowPredictor(),
        get_solver("auto"),
        DryRunActuator(),
    )
    now = [0.0]
    metrics = AdapterMetrics()
    runner = LoopRunner([loop], metrics, 10, stall_after_s=30, clock=lambda: now[0])
    app = create_app(
        {"video": video_profile()},
        metrics,
        get_solver,
        DryRunActuator(),
        MaxWindowPredictor(),
        None,
        AdapterSettings(),
        liveness=runner.liveness,
    )
    client = TestClient(app)
    try:
        assert runner.liveness() == {}  # not started: nothing to say
        runner.start()
        assert stuck.entered.wait(10)
        now[0] = 25.0
        assert client.get("/healthz").json()["status"] == "ok"
        now[0] = 31.0  # the step has been stuck past 3 intervals
        health = client.get("/healthz")
        assert health.status_code == 503 and health.json()["status"] == "unhealthy"
        assert "no step completed for 31 s" in health.json()["reasons"]["loop"]
    finally:
        stuck.release.set()
        runner.stop()
        client.close()


def test_the_sla_is_exported_before_any_decision() -> None:
    from adapter.loop import AdaptLoop, LoopSettings
    from adapter.predict import MaxWindowPredictor
    from adapter.solve import get_solver

    metrics = AdapterMetrics()
    loop = AdaptLoop(
        video_profile(),
        LoopSettings(pipeline="video", sla_s=4.5),
        StuckPrometheus(),
        MaxWindowPredictor(),
        get_solver("auto"),
        DryRunActuator(),
    )
    LoopRunner([loop], metrics, 10)
    assert 'adapter_sla_seconds{pipeline="video"} 4.5' in metrics.exposition().decode()


def test_one_sla_rule_everywhere(tmp_path: Path) -> None:
    from adapter.sim import runner

    profile = video_profile()
    # One rule: the simulator's default is the adapter's (it used 5x, the adapter 25x).
    simulated = runner.run(profile, [2] * 30, runner.RunSpec(policy="ipa"))
    assert simulated["sla_s"] == default_sla_s(profile) == AdapterSettings().sla_for(profile)
    stated = profile.model_copy(update={"sla_s": 3.25})
    assert default_sla_s(stated) == 3.25
    assert AdapterSettings().sla_for(stated) == 3.25
    assert AdapterSettings(sla_s=7.0).sla_for(stated) == 7.0


def test_decide_prints_what_post_decide_answers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fastapi.testclient import TestClient

    from adapter.api import create_app
    from adapter.predict import MaxWindowPredictor
    from adapter.solve import get_solver

    path = tmp_path / "video.json"
    path.write_text(json.dumps(video_profile().model_dump(mode="json", exclude_none=True)))
    argv = [
        "decide",
        "--profile",
        str(path),
        "--arrival-rate-rps",
        "12.5",
        "--beta",
        "0.05",
        "--solver",
        "highs",
    ]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    app = create_app(
        {"video": video_profile()},
        AdapterMetrics(),
        get_solver,
        DryRunActuator(),
        MaxWindowPredictor(),
        None,
        AdapterSettings(),
    )
    with TestClient(app) as client:
        request = {
            "pipeline": "video",
            "sla_s": default_sla_s(video_profile()),
            "arrival_rate_rps": 12.5,
            "weights": {"beta": 0.05},
            "solver": "highs",
        }
        answered = client.post("/decide", json=request).json()
    printed.pop("solve_time_s"), answered.pop("solve_time_s")
    assert printed == answered
    assert printed["sla_s"] == pytest.approx(default_sla_s(video_profile()))

    assert main(["decide", "--profile", str(path), "--arrival-rate-rps", "1e30"]) == 2
    assert "--arrival-rate-rps" in capsys.readouterr().err
    assert main(["decide", "--profile", str(path), "--arrival-rate-rps", "1", "--gamma", "nan"]) == 2
    assert "--gamma" in capsys.readouterr().err


def test_sigterm_stops_the_server_with_a_request_in_flight(tmp_path: Path) -> None:
    # A Prometheus that accepts and never answers holds /decide for 3 x 30 s: SIGTERM used to
    # wait for it (and then SIGKILL); the graceful-shutdown timeout ends it in seconds.
    (tmp_path / "video.json").write_text(
        json.dumps(video_profile().model_dump(mode="json", exclude_none=True))
    )
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        port = free_port()
        command = [
            sys.executable, "-m", "adapter", "run", "--port", str(port), "--profiles", str(tmp_path),
            "--prometheus-url", f"http://127.0.0.1:{silent.getsockname()[1]}", "--query-timeout", "30",
        ]  # fmt: skip
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + 30
            while True:
                assert process.poll() is None and time.monotonic() < deadline
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            caller = threading.Thread(
                target=lambda: _ignore_errors(
                    lambda: httpx.post(
                        f"http://127.0.0.1:{port}/decide",
                        json={"pipeline": "video", "sla_s": 2.0},
                        timeout=120,
                    )
                ),
                daemon=True,
            )
            caller.start()
            time.sleep(1.0)  # the request is in flight, waiting on the silent Prometheus
            process.send_signal(signal.SIGTERM)
            output, _ = process.communicate(timeout=25)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert process.returncode == 0, output


def _ignore_errors(call: Callable[[], object]) -> None:
    with contextlib.suppress(httpx.HTTPError):
        call()


def test_a_rate_of_1e30_from_prometheus_degrades_the_loop_and_keeps_the_decision() -> None:
    # It froze the loop thread while /healthz said ok and adapter_degraded stayed 0.
    now_s = 1_700_000_000.0
    rates = ["6", "1e30"]

    def answer(request: httpx.Request) -> httpx.Response:
        points = [[now_s - 10 * i, rates[0]] for i in range(3, -1, -1)]
        return httpx.Response(
            200,
            json={
                "status": "success",
                "data": {"resultType": "matrix", "result": [{"metric": {}, "values": points}]},
            },
        )

    metrics = AdapterMetrics()
    client = httpx.Client(transport=httpx.MockTransport(answer))
    with PrometheusQuery("http://prometheus", retries=0, client=client) as query:
        loops = build_loops(AdapterSettings(sla_s=2.0), {"video": video_profile()}, query, DryRunActuator())
        runner = LoopRunner(loops, metrics, 10)
        [first] = runner.step_all(now_s)
        assert not first.degraded and first.decision is not None
        rates.pop(0)
        [second] = runner.step_all(now_s)
    assert second.degraded and second.decision == first.decision
    assert "not in [0, 1e+06]" in metrics.degraded_reasons()["loop:video"]
    assert "adapter_degraded 1.0" in metrics.exposition().decode()
