"""Every policy through the real runner (AdaptLoop + exact solver) on a short trace."""

from __future__ import annotations

import json
from typing import Any

import pytest

from adapter.problem import Problem
from adapter.profiles import parse_profile
from adapter.sim.policies import POLICY_NAMES, RIM_REPLICAS, fa2_high, ipa_weights, lightest
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


def test_baselines_are_ipas_definitions(results: dict[str, dict[str, Any]]) -> None:
    # FA2: variants fixed (video-2.yaml: the lightest; video-3.yaml: yolov5s + resnet101).
    assert [fa2_high(s).name for s in PROFILE.stages] == ["yolov5s", "resnet101"]
    for policy, pick in (("fa2-low", lightest), ("fa2-high", fa2_high)):
        for entry in results[policy]["log"]:
            assert [c["variant"] for c in entry["stages"]] == [pick(s).name for s in PROFILE.stages]
    # RIM-high: 3 replicas per stage (video-5.yaml), variants left to the solver.
    assert {c["replicas"] for e in results["rim-high"]["log"] for c in e["stages"]} == {RIM_REPLICAS} == {3}
    assert len({c["replicas"] for e in results["ipa"]["log"] for c in e["stages"]}) > 1
    # Every baseline at IPA's weights for video (video-*.yaml: alpha 2, beta 1).
    for policy in POLICY_NAMES:
        weights = results[policy]["weights"]
        assert (weights["alpha"], weights["beta"]) == (2.0, 1.0), policy
        assert (weights["gamma"] > 0) == (policy == "energy")


def test_ipas_weights_come_from_the_profile_then_the_pipeline() -> None:
    data = PROFILE.model_dump(exclude_none=True)
    assert (ipa_weights(PROFILE).alpha, ipa_weights(PROFILE).beta) == (2.0, 1.0)
    nlp = parse_profile(data | {"pipeline": "nlp"})
    assert (ipa_weights(nlp).alpha, ipa_weights(nlp).beta) == (10.0, 0.5)
    stated = parse_profile(data | {"ipa_weights": {"alpha": 3.0, "beta": 0.25, "source": "a config"}})
    assert (ipa_weights(stated).alpha, ipa_weights(stated).beta) == (3.0, 0.25)
    other = parse_profile(data | {"pipeline": "audio"})
    assert ipa_weights(other).gamma == 0.0 and ipa_weights(other).beta == 0.01


def test_the_energy_weight_and_the_cost_sweep_move_the_same_trace() -> None:
    solver = get_solver("exhaustive")
    cheap = run(PROFILE, TRACE, RunSpec("ipa", solver="exhaustive", beta=0.01), solver)
    ipa = run(PROFILE, TRACE, RunSpec("ipa", solver="exhaustive"), solver)
    energy = run(PROFILE, TRACE, RunSpec("energy", solver="exhaustive", beta=0.0, gamma=0.01), solver)
    assert cheap["weights"]["beta"] == 0.01 and energy["weights"]["beta"] == 0.0
    assert cheap["pas_mean"] > ipa["pas_mean"] and cheap["energy_j"] > ipa["energy_j"]
    assert energy["energy_j"] < cheap["energy_j"]


@pytest.mark.parametrize("policy", ["ipa", "qlearning"])
def test_a_seed_gives_identical_json(results: dict[str, dict[str, Any]], policy: str) -> None:
    assert json.dumps(simulate(policy)) == json.dumps(results[policy])
    other = simulate(policy, seed=1)
    assert other["requests"] == sum(TRACE)
    assert other["p99_latency_s"] != results[policy]["p99_latency_s"]
