"""Every policy through the real runner (AdaptLoop + exact solver) on a short trace."""

from __future__ import annotations

import json
from typing import Any

import pytest

from adapter.problem import Problem
from adapter.sim.policies import POLICY_NAMES, heaviest, lightest, rim_replicas
from adapter.sim.runner import RunSpec, run
from adapter.solve import get_solver
from tests.sim.profiles import video_profile

PROFILE = video_profile(variants_per_stage=3, sizes=(1, 2, 4))
# A burst in the middle of a quiet minute and a half: 9 adaptation steps.
TRACE = [4] * 30 + [25] * 30 + [8] * 30


def simulate(policy: str, seed: int = 0) -> dict[str, Any]:
    return run(PROFILE, TRACE, RunSpec(policy, seed, solver="exhaustive"), get_solver("exhaustive"))


@pytest.fixture(scope="module")
def results() -> dict[str, dict[str, Any]]:
    return {policy: simulate(policy) for policy in POLICY_NAMES}


@pytest.mark.parametrize("policy", POLICY_NAMES)
def test_requests_are_conserved(results: dict[str, dict[str, Any]], policy: str) -> None:
    r = results[policy]
    assert r["policy"] == policy
    assert r["requests"] == r["served"] + r["dropped"] == sum(TRACE)
    assert 0 <= r["late"] <= r["served"]
    assert r["decisions"] == 9
    assert r["energy_j"] == pytest.approx(r["dynamic_energy_j"] + r["idle_energy_j"])
    assert r["energy_per_request_j"] == pytest.approx(r["energy_j"] / r["served"])


@pytest.mark.parametrize("policy", POLICY_NAMES)
def test_feasible_decisions_meet_the_constraints_of_their_problem(
    results: dict[str, dict[str, Any]], policy: str
) -> None:
    r = results[policy]
    feasible = [e for e in r["log"] if e["feasible"]]
    assert feasible, "no feasible decision on an easy trace"
    for entry in feasible:
        problem = Problem(PROFILE, entry["provisioned_rps"], r["sla_s"], replicas_max=64)
        chosen = [
            problem.option(s, PROFILE.stages[s].variant(c["variant"]), c["batch"], c["replicas"])
            for s, c in enumerate(entry["stages"])
        ]
        assert problem.is_feasible(chosen), (policy, entry)


def test_frozen_variants_and_pinned_replicas(results: dict[str, dict[str, Any]]) -> None:
    for policy, pick in (("fa2-low", lightest), ("fa2-high", heaviest), ("rim-high", heaviest)):
        for entry in results[policy]["log"]:
            assert [c["variant"] for c in entry["stages"]] == [pick(s).name for s in PROFILE.stages]
    pinned = rim_replicas(PROFILE, max(TRACE))
    assert {c["replicas"] for e in results["rim-high"]["log"] for c in e["stages"]} == {pinned}
    assert len({c["replicas"] for e in results["ipa"]["log"] for c in e["stages"]}) > 1


def test_the_energy_weight_saves_energy_on_the_same_trace(results: dict[str, dict[str, Any]]) -> None:
    ipa, energy = results["ipa"], results["energy"]
    assert energy["gamma"] > 0 == ipa["gamma"]
    assert energy["energy_j"] < ipa["energy_j"]
    assert results["fa2-low"]["pas_mean"] < ipa["pas_mean"] <= results["fa2-high"]["pas_mean"]


@pytest.mark.parametrize("policy", ["ipa", "qlearning"])
def test_a_seed_gives_identical_json(results: dict[str, dict[str, Any]], policy: str) -> None:
    assert json.dumps(simulate(policy)) == json.dumps(results[policy])
    other = simulate(policy, seed=1)
    assert other["requests"] == sum(TRACE)
    assert other["p99_latency_s"] != results[policy]["p99_latency_s"]
