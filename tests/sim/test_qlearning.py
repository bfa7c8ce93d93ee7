from __future__ import annotations

import pytest

from adapter.problem import Problem, Weights
from adapter.sim.qlearning import QLearningSettings, QLearningSolver
from adapter.solve import get_solver
from tests.sim.profiles import video_profile

# Two stages x three variants x batches {1, 2} x replicas 1..6: 1296 states, 12 actions.
SMALL = Problem(video_profile(variants_per_stage=3, sizes=(1, 2)), 4.0, 1.5, Weights(), 1, 6)


@pytest.mark.parametrize("seed", range(4))
def test_converges_within_5_percent_of_the_exact_optimum(seed: int) -> None:
    optimum = get_solver("exhaustive").solve(SMALL)
    learned = QLearningSolver(seed=seed).solve(SMALL)
    assert optimum.feasible and learned.feasible
    assert learned.objective >= optimum.objective - 0.05 * abs(optimum.objective)


def test_without_training_it_does_not_find_the_optimum() -> None:
    # The start state is not the optimum, so the learning is what closes the gap above.
    optimum = get_solver("exhaustive").solve(SMALL)
    untrained = QLearningSolver(seed=0, settings=QLearningSettings(episodes=0)).solve(SMALL)
    assert untrained.objective < optimum.objective - 0.05 * abs(optimum.objective)


def test_answers_are_deterministic_and_cached() -> None:
    solver = QLearningSolver(seed=3)
    first = solver.solve(SMALL)
    assert solver.solve(SMALL) is first
    assert QLearningSolver(seed=3).solve(SMALL).stages == first.stages


def test_an_unreachable_rate_is_reported_infeasible() -> None:
    problem = Problem(video_profile(variants_per_stage=2, sizes=(1, 2)), 500.0, 1.5, Weights(), 1, 4)
    decision = QLearningSolver(seed=0).solve(problem)
    assert not decision.feasible and decision.binding == "throughput"
