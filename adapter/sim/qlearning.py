"""Tabular epsilon-greedy Q-learning behind the Solver interface, as in the IPA energy study.

State: per stage (variant, batch, replicas). Actions: per stage, the next or previous variant,
one replica more or fewer, the next or previous batch size (a move off the edge stays put).
Reward of a state: the problem's own objective (accuracy minus core, power and batch terms), or
-1000 when it breaks the SLA or cannot carry the arrival rate. The learner trains against the
problem's model (no cluster in the loop) and answers with the best state its greedy policy
visits from the start state: per stage the first variant at its smallest batch, with the fewest
replicas that carry the rate (a deployable configuration, as a running pipeline would be).

Replicas range over [replicas_min, the most any option needs for the rate]: more replicas than
the slowest option needs can only lower the reward, and the bound keeps the table small.
A Q-table is trained once per distinct problem (the simulator sees few distinct predicted
rates), with a random stream seeded by (seed, problem), so answers do not depend on call order.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from adapter.problem import Decision, Option, Problem, least_replicas
from adapter.profiles import Variant

VIOLATION_REWARD = -1000.0

State = tuple[int, ...]  # (variant, batch, replicas) per stage, flattened


@dataclass(frozen=True)
class QLearningSettings:
    episodes: int = 1000
    steps_per_episode: int = 100
    alpha_q: float = 0.1
    gamma_q: float = 0.9
    epsilon_start: float = 1.0
    epsilon_end: float = 0.01


class QLearningSolver:
    name = "qlearning"

    def __init__(self, seed: int = 0, settings: QLearningSettings | None = None) -> None:
        self.seed = seed
        self.settings = settings or QLearningSettings()
        self._answers: dict[tuple[object, ...], Decision] = {}

    def solve(self, problem: Problem) -> Decision:
        key = (
            id(problem.profile),
            problem.arrival_rate_rps,
            problem.sla_s,
            problem.weights,
            problem.replicas_min,
            problem.replicas_max,
            problem.batch_sizes,
        )
        if key not in self._answers:
            started = time.perf_counter()
            chosen = _Learner(problem, random.Random(f"{self.seed}:{key[1:]}"), self.settings).best()
            elapsed = time.perf_counter() - started
            binding = _violated(problem, chosen)
            self._answers[key] = Decision.build(problem, chosen, self.name, elapsed, binding)
        return self._answers[key]


def _violated(problem: Problem, chosen: list[Option]) -> str | None:
    if not all(o.feasible_throughput for o in chosen):
        return "throughput"
    return None if problem.is_feasible(chosen) else "latency"


class _Learner:
    def __init__(self, problem: Problem, rng: random.Random, settings: QLearningSettings) -> None:
        self.problem = problem
        self.rng = rng
        self.settings = settings
        n_stages = len(problem.profile.stages)
        # Per stage: the variants and, per variant, its allowed batch sizes.
        self.variants: list[list[tuple[Variant, list[int]]]] = []
        for s in range(n_stages):
            by_variant: dict[str, tuple[Variant, list[int]]] = {}
            for variant, batch in problem.stage_choices(s):
                by_variant.setdefault(variant.name, (variant, []))[1].append(batch)
            self.variants.append(list(by_variant.values()))
        lam = problem.arrival_rate_rps
        self.replicas_cap = [
            max(
                problem.replicas_min,
                min(
                    problem.replicas_max,
                    max(
                        least_replicas(lam, o.variant.batch(o.batch).replica_throughput_rps, 1)
                        for o in problem.options(s)
                    ),
                ),
            )
            for s in range(n_stages)
        ]
        self.n_actions = 6 * n_stages
        # Optimistic initial values (the discounted return of the best conceivable reward, every
        # stage at its most accurate variant at no cost) make the greedy policy try each action
        # of a state before it settles, which a table this size needs to converge in budget.
        w = problem.weights
        best_reward = sum(w.alpha * max(v.accuracy for v, _ in stage) / 100.0 for stage in self.variants)
        self.optimistic_q = best_reward / (1.0 - settings.gamma_q)
        self.q: dict[State, list[float]] = {}
        self._rewards: dict[State, float] = {}
        self._options: dict[tuple[int, int, int, int], Option] = {}
        self.start: State = tuple(
            x
            for s in range(n_stages)
            for x in (
                0,
                0,
                min(self.replicas_cap[s], self._least(s, self.variants[s][0][0], self.variants[s][0][1][0])),
            )
        )

    def _least(self, stage: int, variant: Variant, batch: int) -> int:
        thr = variant.batch(batch).replica_throughput_rps
        return least_replicas(self.problem.arrival_rate_rps, thr, self.problem.replicas_min)

    def chosen(self, state: State) -> list[Option]:
        result = []
        for s in range(len(self.variants)):
            vi, bi, n = state[3 * s : 3 * s + 3]
            key = (s, vi, bi, n)
            if key not in self._options:
                variant, batches = self.variants[s][vi]
                self._options[key] = self.problem.option(s, variant, batches[bi], n)
            result.append(self._options[key])
        return result

    def reward(self, state: State) -> float:
        if state not in self._rewards:
            chosen = self.chosen(state)
            feasible = self.problem.is_feasible(chosen)
            self._rewards[state] = sum(o.value for o in chosen) if feasible else VIOLATION_REWARD
        return self._rewards[state]

    def move(self, state: State, action: int) -> State:
        s, kind = divmod(action, 6)
        vi, bi, n = state[3 * s : 3 * s + 3]
        step = 1 if kind % 2 == 0 else -1
        if kind < 2:
            vi = min(max(vi + step, 0), len(self.variants[s]) - 1)
            bi = min(bi, len(self.variants[s][vi][1]) - 1)
        elif kind < 4:
            n = min(max(n + step, self.problem.replicas_min), self.replicas_cap[s])
        else:
            bi = min(max(bi + step, 0), len(self.variants[s][vi][1]) - 1)
        return (*state[: 3 * s], vi, bi, n, *state[3 * s + 3 :])

    def values(self, state: State) -> list[float]:
        if state not in self.q:
            self.q[state] = [self.optimistic_q] * self.n_actions
        return self.q[state]

    def random_state(self) -> State:
        state: list[int] = []
        for s, variants in enumerate(self.variants):
            vi = self.rng.randrange(len(variants))
            n = self.rng.randint(self.problem.replicas_min, self.replicas_cap[s])
            state += [vi, self.rng.randrange(len(variants[vi][1])), n]
        return tuple(state)

    def train(self) -> None:
        st = self.settings
        decay = (st.epsilon_end / st.epsilon_start) ** (1.0 / max(1, st.episodes - 1))
        epsilon = st.epsilon_start
        for episode in range(st.episodes):
            # Exploring starts: every other episode from a random state, so that the far corners
            # of a large table are reached at all within the step budget.
            state = self.start if episode % 2 == 0 else self.random_state()
            for _ in range(st.steps_per_episode):
                q = self.values(state)
                action = (
                    self.rng.randrange(self.n_actions) if self.rng.random() < epsilon else q.index(max(q))
                )
                nxt = self.move(state, action)
                target = self.reward(nxt) + st.gamma_q * max(self.values(nxt))
                q[action] += st.alpha_q * (target - q[action])
                state = nxt
            epsilon *= decay

    def best(self) -> list[Option]:
        """Train, then follow the greedy policy from the start state; the best state on the way."""
        self.train()
        state = best = self.start
        for _ in range(self.settings.steps_per_episode):
            q = self.values(state)
            state = self.move(state, q.index(max(q)))
            if self.reward(state) > self.reward(best):
                best = state
        return self.chosen(best)
