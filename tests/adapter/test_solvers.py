"""Every available solver against the exhaustive oracle, plus hand-checked instances."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings

from adapter.problem import Decision, Option, Problem, Weights
from adapter.profiles import Profile, parse_profile
from adapter.solve import AutoSolver, SolverUnavailable, available_solvers, get_solver
from adapter.solve.common import SolverTimeout
from adapter.solve.exhaustive import ExhaustiveSolver, InstanceTooLarge
from adapter.solve.frontier import FrontierSolver
from adapter.solve.gurobi import GurobiSolver
from adapter.solve.highs import HighsSolver
from adapter.solve.synthetic import synthetic_profile
from tests.adapter.strategies import problems

SOLVERS = [name for name in available_solvers() if name != "exhaustive"]
ORACLE = ExhaustiveSolver()


def chosen_options(problem: Problem, decision: Decision) -> list[Option]:
    """The decision's configuration rebuilt through the problem's own terms."""
    result = []
    for index, (stage, choice) in enumerate(zip(problem.profile.stages, decision.stages, strict=True)):
        assert choice.stage == stage.name
        result.append(problem.option(index, stage.variant(choice.variant), choice.batch, choice.replicas))
    return result


def same_objective(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


@pytest.mark.parametrize("name", SOLVERS)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=problems())
def test_solver_agrees_with_the_oracle(name: str, problem: Problem) -> None:
    expected = ORACLE.solve(problem)
    decision = get_solver(name).solve(problem)
    assert decision.feasible == expected.feasible
    options = chosen_options(problem, decision)
    assert same_objective(decision.objective, sum(o.value for o in options))
    if expected.feasible:
        assert problem.is_feasible(options)
        assert same_objective(decision.objective, expected.objective), (decision, expected)
        assert decision.binding is None
    else:
        assert decision.binding == expected.binding == problem.infeasibility()
        # The oracle finds its best effort walking every replica count.
        assert decision.stages == expected.stages
        assert problem.carried_rps(options) == min(problem.arrival_rate_rps, problem.max_throughput_rps())


@settings(max_examples=60, deadline=None)
@given(problem=problems(max_stages=2, max_variants=2, max_batches=2, max_replicas=4))
def test_oracle_agrees_with_the_least_replicas_reduction(problem: Problem) -> None:
    # The oracle walks every n; the reduced options must reach the same optimum and binding.
    expected = ORACLE.solve(problem)
    assert expected.binding == problem.infeasibility()
    if expected.feasible:
        best = max(
            (
                sum(o.value for o in combo)
                for combo in _reduced_combinations(problem)
                if problem.is_feasible(combo)
            ),
        )
        assert same_objective(best, expected.objective)


def _reduced_combinations(problem: Problem) -> list[tuple[Option, ...]]:
    return list(itertools.product(*(problem.options(s) for s in range(len(problem.profile.stages)))))


def two_stage_profile() -> Profile:
    """Numbers small enough to solve by hand (throughput = size / latency)."""

    def variant(name: str, accuracy: float, cores: float, latency_s: float) -> dict[str, object]:
        return {
            "name": name,
            "accuracy": accuracy,
            "cores": cores,
            "idle_power_w": 2.0,
            "batches": [
                {"size": 1, "latency_s": latency_s, "energy_per_request_j": 0.5},
                {"size": 4, "latency_s": 2 * latency_s, "energy_per_request_j": 0.2},
            ],
        }

    return parse_profile(
        {
            "pipeline": "hand",
            "stages": [
                {
                    "name": "detect",
                    "variants": [variant("small", 50.0, 1, 0.1), variant("large", 70.0, 2, 0.4)],
                },
                {
                    "name": "classify",
                    "variants": [variant("small", 60.0, 1, 0.1), variant("large", 90.0, 1, 0.3)],
                },
            ],
        }
    )


@pytest.mark.parametrize("name", [*SOLVERS, "exhaustive"])
def test_ipa_style_choice_by_hand(name: str) -> None:
    # λ = 5, gamma = 0, delta = 0, alpha = 1, beta = 0.05. Least replicas (batch 1 / batch 4):
    # detect small: 1 (thr 10) / 1 (thr 20);  detect large: 2 (thr 2.5) / 1 (thr 5)
    # classify small: 1 / 1;                  classify large: 2 (thr 3.33) / 1 (thr 6.67)
    # q(4) = 3/5 = 0.6 s. Values: detect small 0.50-0.05=0.45, large b1 0.70-0.20=0.50, large b4
    # 0.70-0.10=0.60 (latency 0.8+0.6=1.4); classify small 0.55, large b1 0.90-0.10=0.80 (0.3 s),
    # large b4 0.90-0.05=0.85 (0.6+0.6=1.2 s). SLA 0.7 s: large b1 + large b1 = 0.7 s, 1.30.
    problem = Problem(two_stage_profile(), 5.0, 0.7, Weights(alpha=1.0, beta=0.05, gamma=0.0, delta=0.0))
    decision = get_solver(name).solve(problem)
    assert [(s.variant, s.batch, s.replicas) for s in decision.stages] == [("large", 1, 2), ("large", 1, 2)]
    assert decision.objective == pytest.approx(1.30)
    assert decision.pas == pytest.approx(100 * 0.70 * 0.90)
    assert decision.latency_s == pytest.approx(0.7)
    assert decision.cores == 6
    # A looser SLA lets classify batch (1.2 s) and keep detect large at batch 1: 0.50 + 0.85.
    looser = Problem(two_stage_profile(), 5.0, 1.6, problem.weights)
    assert get_solver(name).solve(looser).objective == pytest.approx(1.35)


@pytest.mark.parametrize("name", [*SOLVERS, "exhaustive"])
def test_batch_sizes_filter_and_infeasible_bindings(name: str) -> None:
    solver = get_solver(name)
    weights = Weights(alpha=1.0, beta=0.05, gamma=0.0, delta=0.0)
    only_one = solver.solve(Problem(two_stage_profile(), 5.0, 10.0, weights, batch_sizes=(1,)))
    assert only_one.feasible and {s.batch for s in only_one.stages} == {1}
    # 25 req/s needs 3 replicas of detect small at batch 1: more than replicas_max = 2.
    too_busy = solver.solve(
        Problem(two_stage_profile(), 25.0, 10.0, weights, replicas_max=2, batch_sizes=(1,))
    )
    assert (too_busy.feasible, too_busy.binding) == (False, "throughput")
    assert [(s.variant, s.replicas) for s in too_busy.stages] == [("small", 2), ("small", 2)]
    too_fast = solver.solve(Problem(two_stage_profile(), 5.0, 0.15, weights))
    assert (too_fast.feasible, too_fast.binding) == (False, "latency")


def test_gamma_prices_power() -> None:
    # With gamma large, the lower-energy batch 4 wins although it costs latency and accuracy holds.
    weights = Weights(alpha=0.0, beta=0.0, gamma=1.0, delta=0.0)
    decision = get_solver("frontier").solve(Problem(two_stage_profile(), 5.0, 10.0, weights))
    assert [s.batch for s in decision.stages] == [4, 4]
    assert decision.power_w == pytest.approx(sum(s.power_w for s in decision.stages))
    assert decision.objective == pytest.approx(-decision.power_w)


def test_importing_adapter_solve_loads_no_backend() -> None:
    code = "import sys, adapter.solve; print('highspy' in sys.modules, 'gurobipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_get_solver_names() -> None:
    assert {"auto", "frontier", "highs", "exhaustive"} <= set(available_solvers())
    with pytest.raises(ValueError, match="unknown solver 'cplex'"):
        get_solver("cplex")
    assert get_solver("highs").name == "highs"


def test_auto_falls_back_when_a_backend_cannot_answer() -> None:
    problem = Problem(synthetic_profile(7, 6, 5), 20.0, 1.5)
    reference = HighsSolver().solve(problem)
    auto = AutoSolver([FrontierSolver(max_frontier=1), HighsSolver()])
    decision = auto.solve(problem)
    assert decision.solver == "highs"
    assert same_objective(decision.objective, reference.objective)
    assert same_objective(get_solver("auto").solve(problem).objective, reference.objective)


def test_auto_falls_through_gurobi_size_limited_licence_to_highs() -> None:
    # 70 stages x 35 options = 2450 binaries: past the pip wheel's 2000-variable licence.
    problem = Problem(synthetic_profile(3, 70, 5), 10.0, 1000.0)
    auto = AutoSolver([FrontierSolver(max_frontier=1), GurobiSolver(), HighsSolver()])
    try:
        GurobiSolver().solve(problem)
    except SolverUnavailable as exc:
        # The size-limited licence installed with the wheel; or no gurobipy or licence at all.
        assert "size-limited" in exc.reason or "gurobi" not in available_solvers()
        expected = "highs"
    else:  # a full licence solves it itself
        expected = "gurobi"
    assert auto.solve(problem).solver == expected


def test_oracle_refuses_large_instances() -> None:
    with pytest.raises(InstanceTooLarge, match="exceed the exhaustive limit"):
        ExhaustiveSolver(max_combinations=1000).solve(Problem(synthetic_profile(1, 3, 5), 10.0, 5.0))


@pytest.mark.parametrize("name", [*SOLVERS, "exhaustive"])
def test_best_effort_carries_the_load_with_the_least_latency(name: str) -> None:
    # Only the SLA binds (0.15 s < 0.2 s, the least latency any configuration has). The old
    # answer, the most throughput at replicas_max (batch 4 x 32 replicas per stage: 96 cores,
    # 2.4 s), became: the load carried at the least latency, small at batch 1, 1 replica each.
    decision = get_solver(name).solve(Problem(two_stage_profile(), 5.0, 0.15))
    assert (decision.feasible, decision.binding) == (False, "latency")
    assert [(s.variant, s.batch, s.replicas) for s in decision.stages] == [("small", 1, 1), ("small", 1, 1)]
    assert decision.latency_s == pytest.approx(0.2) and decision.cores == 2


@pytest.mark.parametrize("name", [*SOLVERS, "exhaustive"])
def test_best_effort_past_capacity_carries_the_most_then_the_least_latency(name: str) -> None:
    # 100 req/s, 4 replicas at most: detect carries 40 at best (batch 4 = 10 req/s a replica).
    # Classify then needs to carry only those 40: "fast" at batch 1 (50 req/s) on one replica
    # is the least latency that does; the old answer was the most throughput at 4 replicas.
    def point(size: int, latency_s: float) -> dict[str, float]:
        return {"size": size, "latency_s": latency_s, "energy_per_request_j": 0.1}

    def variant(name: str, *points: dict[str, float]) -> dict[str, object]:
        return {"name": name, "accuracy": 50.0, "cores": 1, "idle_power_w": 1.0, "batches": list(points)}

    profile = parse_profile(
        {
            "pipeline": "capacity",
            "stages": [
                {"name": "detect", "variants": [variant("only", point(1, 0.2), point(4, 0.4))]},
                {"name": "classify", "variants": [variant("fast", point(1, 0.02), point(4, 0.1))]},
            ],
        }
    )
    problem = Problem(profile, 100.0, 0.01, replicas_max=4)
    decision = get_solver(name).solve(problem)
    assert (decision.feasible, decision.binding) == (False, "throughput")
    assert [(s.variant, s.batch, s.replicas) for s in decision.stages] == [("only", 4, 4), ("fast", 1, 1)]
    assert problem.max_throughput_rps() == 40.0


def test_the_oracle_checks_the_instance_size_before_walking() -> None:
    # replicas_max 1000 x 35 choices x 3 stages: refused at once, not after building 105,000 options.
    solver = ExhaustiveSolver(max_options_walked=10_000)
    with pytest.raises(InstanceTooLarge, match="exceed the exhaustive limit"):
        solver.solve(Problem(synthetic_profile(1, 3, 5), 10.0, 5.0, replicas_max=1000))


@pytest.mark.parametrize("name", ["frontier", "highs", "exhaustive"])
def test_every_solver_stops_at_its_time_limit(name: str) -> None:
    ticks = itertools.count()

    def clock() -> float:
        return float(next(ticks))  # one second per reading: any limit below is past at once

    solver: ExhaustiveSolver | FrontierSolver | HighsSolver
    problem = Problem(synthetic_profile(4, 3, 2), 10.0, 5.0)
    if name == "frontier":
        solver = FrontierSolver(clock=clock, time_limit_s=0.5)
    elif name == "exhaustive":
        solver = ExhaustiveSolver(clock=clock, time_limit_s=0.5)
    else:
        solver = HighsSolver(time_limit_s=1e-9)
        problem = Problem(synthetic_profile(4, 40, 8), 300.0, 4.0)
    with pytest.raises(SolverTimeout, match="time limit"):
        solver.solve(problem)
