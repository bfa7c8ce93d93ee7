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

A state is an int (the mixed-radix number of its per-stage indices) and everything a step needs
is precomputed per stage or cached per state on its first visit (Q-values, next state per
action, reward), so the hot loop is list indexing and one dict look-up: the same answers, bit
for bit, as the straightforward version over tuples and Options, in about half the time.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass

from adapter.problem import LATENCY_TOLERANCE_S, Decision, Option, Problem, least_replicas
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
    """The learner over integer states: a state is the mixed-radix number of its per-stage local
    indices (variant-batch pair, replicas), so every table below is a plain list or dict of ints
    and floats, and a step allocates nothing once its states have been seen."""

    def __init__(self, problem: Problem, rng: random.Random, settings: QLearningSettings) -> None:
        self.problem = problem
        self.rng = rng
        self.settings = settings
        n_stages = len(problem.profile.stages)
        r_min = problem.replicas_min
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
                r_min,
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
        # Per stage, local index = pair * width + (replicas - r_min), where pair numbers the
        # (variant, batch) pairs variant-major; the state is sum(local_s * stride_s).
        self.first_pair: list[list[int]] = []  # [stage][variant] -> pair of its first batch
        self.width: list[int] = []
        self.options: list[list[Option]] = []  # [stage][local]
        # Per stage (stride, locals, next-state deltas per local, value per local, latency per
        # local with inf where the replicas cannot carry the rate): what a state's table entry
        # is made from, so that making one creates no Option.
        self.tables: list[tuple[int, int, list[tuple[int, ...]], list[float], list[float]]] = []
        stride = 1
        for s in range(n_stages):
            width = self.replicas_cap[s] - r_min + 1
            firsts: list[int] = []
            pairs: list[tuple[int, int]] = []
            for vi, (_, batches) in enumerate(self.variants[s]):
                firsts.append(len(pairs))
                pairs += [(vi, bi) for bi in range(len(batches))]
            self.first_pair.append(firsts)
            self.width.append(width)
            options = [
                problem.option(s, self.variants[s][vi][0], self.variants[s][vi][1][bi], r_min + k)
                for vi, bi in pairs
                for k in range(width)
            ]
            deltas = [
                tuple((to - local) * stride for to in self._stage_moves(s, vi, bi, k))
                for local, (vi, bi, k) in enumerate((vi, bi, k) for vi, bi in pairs for k in range(width))
            ]
            latencies = [o.total_latency_s if o.feasible_throughput else math.inf for o in options]
            self.options.append(options)
            self.tables.append((stride, len(options), deltas, [o.value for o in options], latencies))
            stride *= len(options)
        self.n_actions = 6 * n_stages
        # Optimistic initial values (the discounted return of the best conceivable reward, every
        # stage at its most accurate variant at no cost) make the greedy policy try each action
        # of a state before it settles, which a table this size needs to converge in budget.
        w = problem.weights
        best_reward = sum(w.alpha * max(v.accuracy for v, _ in stage) / 100.0 for stage in self.variants)
        self.optimistic_q = best_reward / (1.0 - settings.gamma_q)
        # Per seen state: its Q-values, its next state per action and its reward.
        self.table: dict[int, tuple[list[float], list[int], float]] = {}
        self.start = sum(
            self.tables[s][0]
            * (
                min(self.replicas_cap[s], self._least(self.variants[s][0][0], self.variants[s][0][1][0]))
                - r_min
            )
            for s in range(n_stages)
        )

    def _least(self, variant: Variant, batch: int) -> int:
        thr = variant.batch(batch).replica_throughput_rps
        return least_replicas(self.problem.arrival_rate_rps, thr, self.problem.replicas_min)

    def _stage_moves(self, s: int, vi: int, bi: int, k: int) -> tuple[int, ...]:
        """Next local index of stage s per action kind: variant +1/-1, replicas +1/-1, batch
        +1/-1; a move off the edge stays put, a variant switch keeps the batch index if it can."""
        variants, width, firsts = self.variants[s], self.width[s], self.first_pair[s]

        def local(v: int, b: int, kk: int) -> int:
            return (firsts[v] + b) * width + kk

        result = []
        for step in (1, -1):
            v = min(max(vi + step, 0), len(variants) - 1)
            result.append(local(v, min(bi, len(variants[v][1]) - 1), k))
        for step in (1, -1):
            result.append(local(vi, bi, min(max(k + step, 0), width - 1)))
        for step in (1, -1):
            result.append(local(vi, min(max(bi + step, 0), len(variants[vi][1]) - 1), k))
        return tuple(result)

    def chosen(self, state: int) -> list[Option]:
        return [
            opts[state // stride % n] for opts, (stride, n, *_) in zip(self.options, self.tables, strict=True)
        ]

    def visit(self, state: int) -> tuple[list[float], list[int], float]:
        """The table entry of a state, made on its first visit."""
        entry = self.table.get(state)
        if entry is None:
            nxt: list[int] = []
            # Summed from 0 in stage order, as Problem.is_feasible and Decision.build sum.
            value = latency_s = 0.0
            for stride, n, deltas, values, latencies in self.tables:
                local = state // stride % n
                nxt += [state + d for d in deltas[local]]
                value += values[local]
                latency_s += latencies[local]
            feasible = latency_s <= self.problem.sla_s + LATENCY_TOLERANCE_S
            entry = self.table[state] = (
                [self.optimistic_q] * self.n_actions,
                nxt,
                value if feasible else VIOLATION_REWARD,
            )
        return entry

    def random_state(self) -> int:
        state = 0
        for s, variants in enumerate(self.variants):
            vi = self.rng.randrange(len(variants))
            k = self.rng.randint(self.problem.replicas_min, self.replicas_cap[s]) - self.problem.replicas_min
            bi = self.rng.randrange(len(variants[vi][1]))
            state += ((self.first_pair[s][vi] + bi) * self.width[s] + k) * self.tables[s][0]
        return state

    def train(self) -> None:
        st = self.settings
        decay = (st.epsilon_end / st.epsilon_start) ** (1.0 / max(1, st.episodes - 1))
        epsilon = st.epsilon_start
        # Hot loop: locals instead of attribute look-ups, one dict look-up per step.
        table, visit, random_ = self.table, self.visit, self.rng.random
        randrange, n_actions = self.rng.randrange, self.n_actions
        alpha_q, gamma_q, steps = st.alpha_q, st.gamma_q, st.steps_per_episode
        for episode in range(st.episodes):
            # Exploring starts: every other episode from a random state, so that the far corners
            # of a large table are reached at all within the step budget.
            q, moves, _ = visit(self.start if episode % 2 == 0 else self.random_state())
            for _ in range(steps):
                action = randrange(n_actions) if random_() < epsilon else q.index(max(q))
                nxt = moves[action]
                entry = table.get(nxt) or visit(nxt)
                q_next, moves, reward = entry
                q[action] += alpha_q * (reward + gamma_q * max(q_next) - q[action])
                q = q_next
            epsilon *= decay

    def best(self) -> list[Option]:
        """Train, then follow the greedy policy from the start state; the best state on the way."""
        self.train()
        state = best = self.start
        for _ in range(self.settings.steps_per_episode):
            q, moves, _ = self.visit(state)
            state = moves[q.index(max(q))]
            if self.visit(state)[2] > self.visit(best)[2]:
                best = state
        return self.chosen(best)
