from __future__ import annotations

import dataclasses

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


# The same family as SMALL at a nearby rate with the same exact optimum.
NEAR = dataclasses.replace(SMALL, arrival_rate_rps=3.8)


@pytest.mark.parametrize("seed", range(2))
def test_a_later_problem_of_the_family_starts_from_the_trained_table(seed: int) -> None:
    optimum = get_solver("exhaustive").solve(NEAR)
    solver = QLearningSolver(seed=seed, settings=QLearningSettings(warm_episodes=0))
    solver.solve(SMALL)
    learned = solver.states_learned(SMALL)
    assert learned > 0 and solver.states_learned(NEAR) == learned
    # No further training: the table trained on SMALL answers NEAR, which an untrained one cannot
    # (test_without_training_it_does_not_find_the_optimum).
    carried = solver.solve(NEAR)
    assert carried.objective >= optimum.objective - 0.05 * abs(optimum.objective)
    untrained = QLearningSolver(seed=seed, settings=QLearningSettings(episodes=0)).solve(NEAR)
    assert untrained.objective < optimum.objective - 0.05 * abs(optimum.objective)


def test_another_family_trains_its_own_table_and_sequences_are_deterministic() -> None:
    other_family = dataclasses.replace(NEAR, sla_s=1.4)
    solver = QLearningSolver(seed=1)
    answers = [solver.solve(p) for p in (SMALL, NEAR)]
    assert solver.states_learned(other_family) == 0
    answers.append(solver.solve(other_family))
    # Its first problem trains from scratch, as on a fresh solver.
    assert answers[2] == dataclasses.replace(
        QLearningSolver(seed=1).solve(other_family), solve_time_s=answers[2].solve_time_s
    )
    again = QLearningSolver(seed=1)
    assert [again.solve(p).stages for p in (SMALL, NEAR, other_family)] == [a.stages for a in answers]


def test_the_learning_curve_starts_at_the_start_state_and_closes_the_gap() -> None:
    from adapter.sim.learning import learning_curve

    rows = learning_curve(SMALL.profile, [4.0, 4.0, 6.0], 1.5, Weights(), episodes=(0, 1000))
    untrained, trained = rows
    assert untrained["problems"] == trained["problems"] == 2  # distinct rates only
    assert untrained["episodes"] == 0 and untrained["at_start"] == 2
    assert trained["within"] == trained["feasible"] == 2
    assert trained["mean_gap_pct"] < untrained["mean_gap_pct"] or untrained["feasible"] < 2
    assert trained["misses"] == 0 and untrained["misses"] == 2 - untrained["within"]
    # 1296 states x 12 actions per problem (both rates need at most 6 replicas): 100 steps an episode.
    assert untrained["updates_per_q"] == 0.0
    assert trained["updates_per_q"] == pytest.approx(1000 * 100 / trained["q_values_mean"])
    assert 0 < trained["q_values_mean"] <= 1296 * 12


def test_table_shape_counts_the_reachable_states_and_the_actions() -> None:
    from adapter.sim.qlearning import table_shape

    states, actions = table_shape(SMALL)
    assert actions == 12  # 2 stages x (variant, replicas, batch) x (+1, -1)
    # 3 variants x 2 batches per stage, replicas 1 up to what the slowest option needs (<= 6).
    assert states % 36 == 0 and 36 <= states <= 36 * 36
