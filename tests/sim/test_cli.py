"""`adapter simulate` and the evaluation report end to end, on short traces."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from adapter.cli import main
from adapter.sim.report import evaluate
from adapter.sim.trace import workload, write_trace
from tests.sim.profiles import video_profile

TRACE = [3] * 20 + [20] * 20 + [6] * 20


@pytest.fixture
def profile_path(tmp_path: Path) -> Path:
    path = tmp_path / "video.yaml"
    path.write_text(
        yaml.safe_dump(video_profile(3, (1, 2, 4)).model_dump(exclude_none=True)), encoding="utf-8"
    )
    return path


@pytest.fixture
def trace_path(tmp_path: Path) -> Path:
    path = tmp_path / "trace.csv"
    write_trace(path, TRACE)
    return path


def test_simulate_writes_the_documented_json(profile_path: Path, trace_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    argv = ["simulate", "--profile", str(profile_path), "--trace", str(trace_path), "--policy", "energy"]
    assert main([*argv, "--sla-s", "2.5", "--seed", "7", "--json", str(out)]) == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    documented = {
        "policy", "requests", "served", "dropped", "late", "p99_latency_s", "pas_mean", "cores_mean",
        "energy_j", "energy_per_request_j", "decisions",
    }  # fmt: skip
    assert documented <= set(result)
    assert "log" not in result
    assert result["policy"] == "energy" and result["sla_s"] == 2.5 and result["seed"] == 7
    assert result["requests"] == result["served"] + result["dropped"] == sum(TRACE)
    assert result["decisions"] == 6


def test_simulate_prints_to_stdout_with_the_log(
    profile_path: Path, trace_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "simulate",
        "--profile",
        str(profile_path),
        "--trace",
        str(trace_path),
        "--policy",
        "fa2-low",
        "--log",
    ]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert [e["t_s"] for e in result["log"]] == [0.0, 10.0, 20.0, 30.0, 40.0, 50.0]
    assert {s["variant"] for e in result["log"] for s in e["stages"]} == {"yolov5n", "resnet18"}


def test_simulate_reports_a_bad_trace_by_line(
    profile_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("requests\n4\nmany\n", encoding="utf-8")
    assert main(["simulate", "--profile", str(profile_path), "--trace", str(bad), "--policy", "ipa"]) == 2
    assert "line 3: 'many' is not an integer" in capsys.readouterr().err


def test_simulate_refuses_an_unknown_policy(profile_path: Path, trace_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["simulate", "--profile", str(profile_path), "--trace", str(trace_path), "--policy", "greedy"])


def test_evaluate_writes_a_report_with_the_headline_and_plots(profile_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "evaluation"
    windows = {"burst": ("test", TRACE), "flat": ("test", [5] * 60), "tune": ("tune", [4] * 30 + [15] * 30)}
    readme = evaluate(
        [profile_path], out, jobs=1, solver="exhaustive", windows=windows, multipliers=(0.01, 0.1, 1.0)
    )
    text = readme.read_text(encoding="utf-8")
    assert "**What was measured and what was estimated.**" in text and "issue 12" in text
    assert "tune = tune; test = burst, flat" in text
    for policy in ("ipa", "energy", "fa2-low", "fa2-high", "rim-high", "qlearning"):
        assert f"| {policy} |" in text
    assert "sensitivity" in text and "| switch delay 30 s |" in text
    assert "| predictor learned (tune windows) |" in text and "## Load predictors" in text
    for png in ("video-decisions.png", "video-frontier.png"):
        assert (out / png).read_bytes().startswith(b"\x89PNG")
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    video = results["video"]
    assert [p["beta"] for p in video["cost_frontier"]] == [0.01, 0.1, 1.0]
    assert [p["gamma"] for p in video["energy_frontier"]] == pytest.approx([0.01 / 3, 0.1 / 3, 1 / 3])
    for key in ("energy_j", "floor_energy_j"):
        assert video[key]["vs_frontier"]["of"] == 2.0
    # The floor only adds joules.
    assert all(m["floor_energy_j"] > m["energy_j"] for m in video["policies"].values())


def test_simulate_replays_a_built_in_workload(profile_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    argv = ["simulate", "--profile", str(profile_path), "--workload", "steady_low", "--policy", "ipa"]
    assert main([*argv, "--json", str(out)]) == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["requests"] == sum(workload("steady_low"))


def test_simulate_takes_a_trace_or_a_workload_not_both(
    profile_path: Path, trace_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["simulate", "--profile", str(profile_path), "--policy", "ipa"]
    with pytest.raises(SystemExit) as neither:
        main(argv)
    assert neither.value.code == 2
    with pytest.raises(SystemExit) as both:
        main([*argv, "--trace", str(trace_path), "--workload", "bursty"])
    assert both.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_a_reader_that_goes_away_is_not_an_error(profile_path: Path, trace_path: Path) -> None:
    argv = ["simulate", "--profile", str(profile_path), "--trace", str(trace_path), "--policy", "ipa"]
    with subprocess.Popen(
        [sys.executable, "-m", "adapter", *argv, "--log"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # before the result is written, like `| head` that has had enough
        stderr = proc.stderr.read().decode()
        assert proc.wait(timeout=60) == 0, stderr
    assert "Traceback" not in stderr
