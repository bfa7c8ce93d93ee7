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

One Q-table per solver and problem family (profile, SLA, weights, replica bounds, batch sizes),
kept across problems as an online learner keeps its table from one adaptation interval to the
next: the first problem trains it from scratch (`episodes`), each later one (a new predicted
rate) goes on training it (`warm_episodes`, with its own epsilon schedule from epsilon_start)
against its own rewards. An answer is cached per problem; each problem's random stream is seeded
by (seed, problem), so answers depend only on the seed and the sequence of distinct problems.

A state is an int (the mixed-radix number of its per-stage indices, the same number for every
rate of a family), and everything a step needs is precomputed per stage or made once per state
(next state per action, reward), so the hot loop is list indexing and one dict look-up.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass

from adapter.problem import LATENCY_TOLERANCE_S, Decision, Option, Problem, least_replicas
from adapter.profiles import Variant

VIOLATION_REWARD = -1000.0

QTable = dict[int, list[float]]  # state -> Q-value per action


@dataclass(frozen=True)
class QLearningSettings:
    episodes: int = 1000
    warm_episodes: int = 200  # for a problem whose family's table is already trained
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
        self._tables: dict[tuple[object, ...], QTable] = {}

    def states_learned(self, problem: Problem) -> int:
        """How many states the Q-table of `problem`'s family holds (0: none trained yet)."""
        return len(self._tables.get(_family(problem), {}))

    def solve(self, problem: Problem) -> Decision:
        family = _family(problem)
        key = (*family, problem.arrival_rate_rps)
        if key not in self._answers:
            started = time.perf_counter()
            q = self._tables.setdefault(family, {})
            episodes = self.settings.warm_episodes if q else self.settings.episodes
            rng = random.Random(f"{self.seed}:{(problem.arrival_rate_rps, *family[1:])}")
            chosen = _Learner(problem, rng, self.settings, q).best(episodes)
            elapsed = time.perf_counter() - started
            binding = _violated(problem, chosen)
            self._answers[key] = Decision.build(problem, chosen, self.name, elapsed, binding)
        return self._answers[key]


def table_shape(problem: Problem, settings: QLearningSettings | None = None) -> tuple[int, int]:
    """(states reachable for `problem`'s rate, actions per state): the Q-values its learner
    must estimate, against which a budget of episodes x steps is spent."""
    learner = _Learner(problem, random.Random(0), settings or QLearningSettings(), {})
    states = 1
    for s, pairs in enumerate(learner.pairs):
        states *= len(pairs) * (learner.replicas_cap[s] - problem.replicas_min + 1)
    return states, learner.n_actions


def _family(problem: Problem) -> tuple[object, ...]:
    """What problems sharing one Q-table have in common: all but the arrival rate."""
    return (
        id(problem.profile),
        problem.sla_s,
        problem.weights,
        problem.replicas_min,
        problem.replicas_max,
        problem.batch_sizes,
    )


def _violated(problem: Problem, chosen: list[Option]) -> str | None:
    if not all(o.feasible_throughput for o in chosen):
        return "throughput"
    return None if problem.is_feasible(chosen) else "latency"


class _Learner:
    """One problem's training of the family's Q-table `q` (updated in place)."""

    def __init__(self, problem: Problem, rng: random.Random, settings: QLearningSettings, q: QTable) -> None:
        self.problem = problem
        self.rng = rng
        self.settings = settings
        self.q = q
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
        # A stage's local index is pair * width + (replicas - r_min), pair numbering its (variant,
        # batch) pairs variant-major; width spans the whole replica range so that a state keeps
        # its number across rates, though only replicas up to the cap are reachable.
        self.width = problem.replicas_max - r_min + 1
        self.pairs: list[list[tuple[int, int]]] = []
        self.first_pair: list[list[int]] = []  # [stage][variant] -> pair of its first batch
        # Per stage (stride, locals, next-state deltas per local, value per local, latency per
        # local with inf where the replicas cannot carry the rate): what a state's entry is made
        # from, so that making one creates no Option. Unreachable locals hold () and inf.
        self.stages: list[tuple[int, int, list[tuple[int, ...]], list[float], list[float]]] = []
        stride = 1
        for s in range(n_stages):
            firsts: list[int] = []
            pairs: list[tuple[int, int]] = []
            for vi, (_, batches) in enumerate(self.variants[s]):
                firsts.append(len(pairs))
                pairs += [(vi, bi) for bi in range(len(batches))]
            self.pairs.append(pairs)
            self.first_pair.append(firsts)
            n_locals = len(pairs) * self.width
            deltas: list[tuple[int, ...]] = [()] * n_locals
            values = [0.0] * n_locals
            latencies = [math.inf] * n_locals
            for k in range(self.replicas_cap[s] - r_min + 1):
                for p, (vi, bi) in enumerate(pairs):
                    local = p * self.width + k
                    o = self.option(s, local)
                    values[local] = o.value
                    if o.feasible_throughput:
                        latencies[local] = o.total_latency_s
                    deltas[local] = tuple((to - local) * stride for to in self._stage_moves(s, vi, bi, k))
            self.stages.append((stride, n_locals, deltas, values, latencies))
            stride *= n_locals
        self.n_actions = 6 * n_stages
        # Optimistic initial values (the discounted return of the best conceivable reward, every
        # stage at its most accurate variant at no cost) make the greedy policy try each action
        # of a state before it settles, which a table this size needs to converge in budget.
        w = problem.weights
        best_reward = sum(w.alpha * max(v.accuracy for v, _ in stage) / 100.0 for stage in self.variants)
        self.optimistic_q = best_reward / (1.0 - settings.gamma_q)
        # Per state seen by this problem: its Q-values (the family table's list), its next state
        # per action and its reward.
        self.entries: dict[int, tuple[list[float], list[int], float]] = {}
        self.start = sum(
            self.stages[s][0] * (min(self.replicas_cap[s], self._least(self.variants[s][0])) - r_min)
            for s in range(n_stages)
        )

    def _least(self, variant_batches: tuple[Variant, list[int]]) -> int:
        variant, batches = variant_batches
        thr = variant.batch(batches[0]).replica_throughput_rps
        return least_replicas(self.problem.arrival_rate_rps, thr, self.problem.replicas_min)

    def option(self, stage: int, local: int) -> Option:
        p, k = divmod(local, self.width)
        vi, bi = self.pairs[stage][p]
        variant, batches = self.variants[stage][vi]
        return self.problem.option(stage, variant, batches[bi], self.problem.replicas_min + k)

    def _stage_moves(self, s: int, vi: int, bi: int, k: int) -> tuple[int, ...]:
        """Next local index of stage s per action kind: variant +1/-1, replicas +1/-1, batch
        +1/-1; a move off the edge stays put, a variant switch keeps the batch index if it can."""
        variants, firsts = self.variants[s], self.first_pair[s]
        k_max = self.replicas_cap[s] - self.problem.replicas_min

        def local(v: int, b: int, kk: int) -> int:
            return (firsts[v] + b) * self.width + kk

        result = []
        for step in (1, -1):
            v = min(max(vi + step, 0), len(variants) - 1)
            result.append(local(v, min(bi, len(variants[v][1]) - 1), k))
        for step in (1, -1):
            result.append(local(vi, bi, min(max(k + step, 0), k_max)))
        for step in (1, -1):
            result.append(local(vi, min(max(bi + step, 0), len(variants[vi][1]) - 1), k))
        return tuple(result)

    def chosen(self, state: int) -> list[Option]:
        return [self.option(s, state // stride % n) for s, (stride, n, *_) in enumerate(self.stages)]

    def visit(self, state: int) -> tuple[list[float], list[int], float]:
        """This problem's entry of a state, made on its first visit."""
        entry = self.entries.get(state)
        if entry is None:
            nxt: list[int] = []
            # Summed from 0 in stage order, as Problem.is_feasible and Decision.build sum.
            value = latency_s = 0.0
            for stride, n, deltas, values, latencies in self.stages:
                local = state // stride % n
                nxt += [state + d for d in deltas[local]]
                value += values[local]
                latency_s += latencies[local]
            feasible = latency_s <= self.problem.sla_s + LATENCY_TOLERANCE_S
            q = self.q.get(state)
            if q is None:
                q = self.q[state] = [self.optimistic_q] * self.n_actions
            entry = self.entries[state] = (q, nxt, value if feasible else VIOLATION_REWARD)
        return entry

    def random_state(self) -> int:
        state = 0
        for s, variants in enumerate(self.variants):
            vi = self.rng.randrange(len(variants))
            k = self.rng.randint(self.problem.replicas_min, self.replicas_cap[s]) - self.problem.replicas_min
            bi = self.rng.randrange(len(variants[vi][1]))
            state += ((self.first_pair[s][vi] + bi) * self.width + k) * self.stages[s][0]
        return state

    def train(self, episodes: int) -> None:
        st = self.settings
        decay = (st.epsilon_end / st.epsilon_start) ** (1.0 / max(1, episodes - 1))
        epsilon = st.epsilon_start
        # Hot loop: locals instead of attribute look-ups, one dict look-up per step.
        entries, visit, random_ = self.entries, self.visit, self.rng.random
        randrange, n_actions = self.rng.randrange, self.n_actions
        alpha_q, gamma_q, steps = st.alpha_q, st.gamma_q, st.steps_per_episode
        for episode in range(episodes):
            # Exploring starts: every other episode from a random state, so that the far corners
            # of a large table are reached at all within the step budget.
            q, moves, _ = visit(self.start if episode % 2 == 0 else self.random_state())
            for _ in range(steps):
                action = randrange(n_actions) if random_() < epsilon else q.index(max(q))
                nxt = moves[action]
                q_next, moves, reward = entries.get(nxt) or visit(nxt)
                q[action] += alpha_q * (reward + gamma_q * max(q_next) - q[action])
                q = q_next
            epsilon *= decay

    def best(self, episodes: int) -> list[Option]:
        """Train, then follow the greedy policy from the start state; the best state on the way."""
        self.train(episodes)
        state = best = self.start
        for _ in range(self.settings.steps_per_episode):
            q, moves, _ = self.visit(state)
            state = moves[q.index(max(q))]
            if self.visit(state)[2] > self.visit(best)[2]:
                best = state
        return self.chosen(best)
