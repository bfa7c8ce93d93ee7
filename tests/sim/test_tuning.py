"""Gamma is chosen on the tune windows alone and scored on the test windows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from adapter.sim.grid import Task
from adapter.sim.policies import POLICY_NAMES
from adapter.sim.report import analyse
from adapter.sim.runner import RunSpec
from tests.sim.profiles import video_profile

PROFILE = video_profile(3, (1, 2))
# Two cost-only points per window: (PAS 30, 100 J) and (PAS 40, 200 J).
COST = ((30.0, 100.0), (40.0, 200.0))


def result(pas: float, joules: float, **extra: Any) -> dict[str, Any]:
    return {
        "pas_mean": pas,
        "energy_j": joules,
        "floor_energy_j": joules + 10.0,
        "sla_violation_pct": 0.0,
        "dropped_pct": 0.0,
        "cores_mean": 1.0,
        "requests": 100,
        "p99_latency_s": 1.0,
        "sla_s": 5.0,
        "gamma": 0.0,
        "weights": {"alpha": 2.0, "beta": 1.0, "gamma": 0.0, "delta": 1e-6},
    } | extra


def window(name: str, energy_points: list[tuple[float, float]]) -> list[tuple[Task, dict[str, Any]]]:
    rows = [(Task(Path("p"), name, (), RunSpec(p)), result(35.0, 150.0)) for p in POLICY_NAMES]
    for beta, (pas, joules) in zip((1.0, 0.1), COST, strict=True):
        rows.append((Task(Path("p"), name, (), RunSpec("ipa", beta=beta)), result(pas, joules)))
    for gamma, (pas, joules) in zip((0.3, 0.03), energy_points, strict=True):
        rows.append(
            (
                Task(Path("p"), name, (), RunSpec("energy", beta=0.0, gamma=gamma)),
                result(pas, joules, gamma=gamma),
            )
        )
    return rows


def test_the_tune_windows_choose_gamma_and_the_test_windows_score_it() -> None:
    # On the tune window gamma 0.3 saves 20 % at PAS 35 (150 J on the chord) and 0.03 nothing;
    # on the test window it is the other way round.
    tune = window("a", [(35.0, 120.0), (35.0, 150.0)])
    test = window("b", [(35.0, 150.0), (35.0, 90.0)])
    summary = analyse(PROFILE, tune + test, ["a", "b"], ["a"], ["b"])
    chosen = summary["energy_j"]
    assert chosen["gamma"] == 0.3 and chosen["tune_saving_pct"] == pytest.approx(20.0)
    # Scored on the test window only: 0.3 saves nothing there, though 0.03 would save 40 %.
    assert chosen["vs_frontier"]["mean"] == pytest.approx(0.0) and chosen["vs_frontier"]["of"] == 1.0
