"""The problem's own terms: least replicas, queueing, options, best effort, PAS, validation."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapter.problem import Problem, Weights, least_replicas, queue_delay_s
from adapter.solve.synthetic import synthetic_profile
from tests.adapter.strategies import problems


@settings(max_examples=200, deadline=None)
@given(
    arrival_rate_rps=st.one_of(st.just(0.0), st.floats(1e-3, 1e5)),
    throughput_rps=st.floats(1e-2, 1e4),
    replicas_min=st.integers(1, 5),
)
def test_least_replicas_is_least_and_sufficient(
    arrival_rate_rps: float, throughput_rps: float, replicas_min: int
) -> None:
    n = least_replicas(arrival_rate_rps, throughput_rps, replicas_min)
    assert n >= replicas_min
    assert n * throughput_rps >= arrival_rate_rps
    if n > replicas_min:
        assert (n - 1) * throughput_rps < arrival_rate_rps


def test_queue_delay() -> None:
    assert queue_delay_s(1, 10.0) == 0.0
    assert queue_delay_s(4, 10.0) == pytest.approx(0.3)
    assert queue_delay_s(8, 0.0) == 0.0


@settings(max_examples=100, deadline=None)
@given(problem=problems())
def test_options_carry_the_formulation_terms(problem: Problem) -> None:
    lam, w = problem.arrival_rate_rps, problem.weights
    for s, stage in enumerate(problem.profile.stages):
        options = problem.options(s)
        assert len(options) == len(problem.stage_choices(s))
        for o in options:
            point = o.variant.batch(o.batch)
            assert problem.batch_sizes is None or o.batch in problem.batch_sizes
            assert o.variant in stage.variants
            assert o.queue_s == queue_delay_s(o.batch, lam)
            assert o.power_w == pytest.approx(
                o.replicas * o.variant.idle_power_w + lam * point.energy_per_request_j
            )
            expected = (
                w.alpha * o.variant.accuracy / 100
                - w.beta * o.replicas * o.variant.cores
                - w.gamma * o.power_w
                - w.delta * o.batch
            )
            assert o.value == pytest.approx(expected, rel=1e-12, abs=1e-12)
            assert o.feasible_throughput == (o.replicas <= problem.replicas_max)


@settings(max_examples=100, deadline=None)
@given(problem=problems())
def test_best_effort_carries_the_most_load_then_the_least_latency(problem: Problem) -> None:
    chosen = problem.best_effort()
    target_rps = min(problem.arrival_rate_rps, problem.max_throughput_rps())
    assert problem.carried_rps(chosen) == target_rps
    for s, option in enumerate(chosen):
        assert problem.replicas_min <= option.replicas <= problem.replicas_max
        for variant, batch in problem.stage_choices(s):
            thr = problem.usable_throughput_rps(variant, batch)
            if problem.replicas_max * thr < target_rps:
                continue  # cannot carry that much
            other = problem.option(s, variant, batch, least_replicas(target_rps, thr, problem.replicas_min))
            assert (option.total_latency_s, -option.value) <= (other.total_latency_s, -other.value)
    decision = problem.infeasible_decision("test", 0.0, binding="throughput")
    assert not decision.feasible and decision.binding == "throughput"
    pas = 100.0
    for choice, stage in zip(decision.stages, problem.profile.stages, strict=True):
        pas *= stage.variant(choice.variant).accuracy / 100
    assert decision.pas == pytest.approx(pas)


def test_least_replicas_is_constant_time_and_bounded() -> None:
    # Counting down from ~1e29 one by one hung the adapter (issue 10); now it is one division.
    assert least_replicas(1e6, 1e-6, 1) == 10**12
    with pytest.raises(ValueError, match="past any limit"):
        least_replicas(1e30, 1.0, 1)
    with pytest.raises(ValueError, match="past any limit"):
        least_replicas(1.0, 5e-324, 1)


def test_pas_and_decision_json() -> None:
    problem = Problem(synthetic_profile(1, 3, 2), 10.0, 100.0)
    chosen = [problem.options(s)[0] for s in range(3)]
    decision = problem.decision(chosen, "test", 0.001)
    assert decision.pas == pytest.approx(100 * math.prod(o.variant.accuracy / 100 for o in chosen))
    body = decision.to_json()
    assert set(body) >= {
        "feasible", "objective", "stages", "pas", "cores", "power_w", "latency_s",
        "arrival_rate_rps", "solver", "solve_time_s", "binding",
    }  # fmt: skip
    assert set(body["stages"][0]) >= {
        "stage",
        "variant",
        "replicas",
        "batch",
        "latency_s",
        "queue_s",
        "power_w",
    }
    assert body["latency_s"] == pytest.approx(sum(o.total_latency_s for o in chosen))


def test_options_are_built_once() -> None:
    problem = Problem(synthetic_profile(2, 2, 3), 5.0, 1.0)
    assert problem.options(0) == problem.options(0)
    assert problem.options(0) is not problem.options(0)  # callers get their own list
    assert all(a is b for a, b in zip(problem.options(1), problem.options(1), strict=True))


def test_problems_share_no_lock() -> None:
    # functools.cached_property (Python 3.11) holds one lock per class: one slow problem stalled
    # every other. Options are built when the problem is, outside any shared lock.
    assert not any(type(v).__name__ == "cached_property" for v in vars(Problem).values())
    assert "_options" in vars(Problem(synthetic_profile(2, 2, 3), 5.0, 1.0))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"arrival_rate_rps": -1.0}, "arrival_rate_rps"),
        ({"arrival_rate_rps": math.nan}, "arrival_rate_rps"),
        ({"sla_s": 0.0}, "sla_s"),
        ({"replicas_min": 0}, "replicas_min"),
        ({"replicas_min": 5, "replicas_max": 4}, "replicas_min"),
        ({"batch_sizes": ()}, "batch_sizes"),
        ({"batch_sizes": (3,)}, "leave stage 'stage0' with no measured size"),
        ({"arrival_rate_rps": 1e30}, "arrival_rate_rps"),
        ({"sla_s": 1e9}, "sla_s"),
        ({"replicas_max": 10**6}, "replicas_max"),
        ({"batch_sizes": (1, 10**6)}, "batch_sizes"),
        ({"batch_sizes": tuple(range(1, 100))}, "batch_sizes"),
    ],
)
def test_problem_validation(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"arrival_rate_rps": 1.0, "sla_s": 1.0, **kwargs}
    with pytest.raises(ValueError, match=message):
        Problem(synthetic_profile(0, 1, 2), **args)  # type: ignore[arg-type]


def test_weights_must_be_finite_and_non_negative() -> None:
    with pytest.raises(ValueError, match=r"weights\.beta"):
        Weights(beta=-0.1)
    with pytest.raises(ValueError, match=r"weights\.gamma"):
        Weights(gamma=math.inf)
    with pytest.raises(ValueError, match=r"weights\.alpha"):
        Weights(alpha=1e308)


def test_tiny_rates_keep_the_queue_delay_finite() -> None:
    assert math.isfinite(queue_delay_s(4096, 5e-324))
