"""Q-learning's learning curve: on the problems a window poses (the rates IPA's loop plans for),
a fresh table trained for each budget of episodes, against the exact solver's optimum."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from adapter.loop import LoopSettings
from adapter.problem import Decision, Problem, Weights
from adapter.profiles import Profile
from adapter.sim.qlearning import QLearningSettings, QLearningSolver, table_shape
from adapter.solve import get_solver

EPISODES = (0, 100, 1000, 5000)
WITHIN = 0.05  # "within 5 % of the exact optimum's objective"


def learning_curve(
    profile: Profile,
    rates_rps: Sequence[float],
    sla_s: float,
    weights: Weights,
    episodes: Sequence[int] = EPISODES,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Per budget, over the problems the exact solver can meet: the mean relative objective gap
    of the feasible answers, how many answers are feasible and within WITHIN of the optimum, how
    many are the learner's start state (0 episodes' answer), how many of the rest (misses) keep
    the start state's variant and batch in every stage (differ from it in replicas only), and the
    updates per Q-value the budget affords (episodes x steps over states x actions, averaged)."""
    exact = get_solver("auto")
    problems, optimum = [], []
    for rate in sorted(set(rates_rps)):
        problem = Problem(profile, rate, sla_s, weights, utilisation_max=LoopSettings.utilisation_max)
        decision = exact.solve(problem)
        if decision.feasible:
            problems.append(problem)
            optimum.append(decision.objective)
    start = [_stages(QLearningSolver(seed, QLearningSettings(episodes=0)).solve(p)) for p in problems]
    q_values = [states * actions for states, actions in map(table_shape, problems)]
    steps = QLearningSettings().steps_per_episode
    rows = []
    for budget in episodes:
        gaps, within, feasible, at_start, misses, start_choice = [], 0, 0, 0, 0, 0
        for p, best, first in zip(problems, optimum, start, strict=True):
            answer = QLearningSolver(seed, QLearningSettings(episodes=budget)).solve(p)
            at_start += _stages(answer) == first
            gap = (best - answer.objective) / max(abs(best), 1e-9)
            if answer.feasible:
                gaps.append(gap)
                feasible += 1
                within += gap <= WITHIN
            if not (answer.feasible and gap <= WITHIN):
                misses += 1
                start_choice += [s[:2] for s in _stages(answer)] == [s[:2] for s in first]
        rows.append(
            {
                "episodes": budget,
                "problems": len(problems),
                "mean_gap_pct": 100.0 * sum(gaps) / len(gaps) if gaps else float("nan"),
                "feasible": feasible,
                "within": within,
                "at_start": at_start,
                "misses": misses,
                "misses_start_choice": start_choice,
                "updates_per_q": budget * steps * len(q_values) / sum(q_values) if q_values else 0.0,
                "q_values_mean": sum(q_values) / len(q_values) if q_values else 0.0,
            }
        )
    return rows


def _stages(decision: Decision) -> tuple[tuple[str, int, int], ...]:
    return tuple((s.variant, s.batch, s.replicas) for s in decision.stages)
