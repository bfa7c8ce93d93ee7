"""Hypothesis strategies for random valid profiles and decision problems (importable by every
adapter test). Sizes are small by default so that the exhaustive oracle stays fast on them."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from adapter.problem import Problem, Weights
from adapter.profiles import Profile, parse_profile

BATCH_SIZES = (1, 2, 3, 4, 8, 16)


@st.composite
def batch_point_dicts(draw: st.DrawFn, size: int) -> dict[str, Any]:
    point: dict[str, Any] = {
        "size": size,
        "latency_s": draw(st.floats(0.001, 2.0)),
        "energy_per_request_j": draw(st.one_of(st.just(0.0), st.floats(0.0, 5.0))),
    }
    # Absent throughput means size / latency_s: both paths get exercised.
    throughput = draw(st.one_of(st.none(), st.floats(0.1, 200.0)))
    if throughput is not None:
        point["throughput_rps"] = throughput
    return point


@st.composite
def variant_dicts(draw: st.DrawFn, name: str, max_batches: int = 4) -> dict[str, Any]:
    sizes = draw(st.lists(st.sampled_from(BATCH_SIZES), min_size=1, max_size=max_batches, unique=True))
    return {
        "name": name,
        "accuracy": draw(st.floats(1.0, 100.0)),
        "cores": draw(st.one_of(st.sampled_from((0.5, 1.0, 2.0, 4.0)), st.floats(0.1, 8.0))),
        "idle_power_w": draw(st.floats(0.0, 10.0)),
        "batches": [draw(batch_point_dicts(size)) for size in sizes],
    }


@st.composite
def profile_dicts(
    draw: st.DrawFn, max_stages: int = 3, max_variants: int = 3, max_batches: int = 4
) -> dict[str, Any]:
    """A decoded profile file (what YAML or JSON would give) that passes validation."""
    stages = []
    for s in range(draw(st.integers(1, max_stages))):
        count = draw(st.integers(1, max_variants))
        stages.append(
            {
                "name": f"stage{s}",
                "variants": [draw(variant_dicts(f"v{v}", max_batches)) for v in range(count)],
            }
        )
    return {"pipeline": draw(st.sampled_from(("video", "audio-qa", "nlp"))), "stages": stages}


def profiles(max_stages: int = 3, max_variants: int = 3, max_batches: int = 4) -> st.SearchStrategy[Profile]:
    return profile_dicts(max_stages, max_variants, max_batches).map(parse_profile)


def weights() -> st.SearchStrategy[Weights]:
    def weight(high: float) -> st.SearchStrategy[float]:
        return st.one_of(st.just(0.0), st.floats(0.0, high))

    return st.builds(Weights, alpha=weight(5.0), beta=weight(1.0), gamma=weight(0.5), delta=weight(0.1))


@st.composite
def problems(
    draw: st.DrawFn, max_stages: int = 3, max_variants: int = 3, max_batches: int = 4, max_replicas: int = 6
) -> Problem:
    """A valid Problem: λ includes 0 and loads no replica count carries; the SLA is random, or
    exactly the latency sum of one configuration (instances on the boundary), or scaled from it."""
    profile = draw(profiles(max_stages, max_variants, max_batches))
    arrival_rate_rps = draw(st.one_of(st.just(0.0), st.floats(0.01, 50.0), st.floats(50.0, 3000.0)))
    replicas_min = draw(st.integers(1, 3))
    replicas_max = draw(st.integers(replicas_min, max(replicas_min, max_replicas)))
    batch_sizes = None
    if draw(st.booleans()):
        # One measured size per stage keeps the filter valid; extra sizes may or may not exist.
        kept = {
            draw(st.sampled_from([p.size for v in s.variants for p in v.batches])) for s in profile.stages
        }
        kept |= set(draw(st.lists(st.sampled_from(BATCH_SIZES), max_size=2)))
        batch_sizes = tuple(sorted(kept))
    base = Problem(
        profile,
        arrival_rate_rps=arrival_rate_rps,
        sla_s=1.0,
        weights=draw(weights()),
        replicas_min=replicas_min,
        replicas_max=replicas_max,
        batch_sizes=batch_sizes,
        utilisation_max=draw(st.one_of(st.just(1.0), st.sampled_from((0.5, 0.8)), st.floats(0.05, 1.0))),
    )
    combination_s = sum(
        draw(st.sampled_from(base.options(s))).total_latency_s for s in range(len(profile.stages))
    )
    sla_s = draw(
        st.one_of(
            st.floats(0.001, 10.0),
            st.just(combination_s),
            st.sampled_from((0.5, 0.999, 1.001, 2.0)).map(lambda f: f * combination_s),
        )
    )
    return Problem(
        profile,
        arrival_rate_rps=arrival_rate_rps,
        sla_s=sla_s,
        weights=base.weights,
        replicas_min=replicas_min,
        replicas_max=replicas_max,
        batch_sizes=batch_sizes,
        utilisation_max=base.utilisation_max,
    )
