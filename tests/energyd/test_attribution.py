"""Conservation and fairness of the pure attribution, over generated intervals."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from energyd.attribution import PodCpu, attribute, shares

cpu_s = st.floats(min_value=0.0, max_value=1e4, allow_nan=False)
energy_j = st.floats(min_value=0.0, max_value=1e7, allow_nan=False)
pods_st = st.dictionaries(
    st.integers(0, 50),
    st.builds(PodCpu, cpu_s, st.dictionaries(st.integers(0, 3), cpu_s, max_size=3)),
    max_size=20,
)


def assert_conserved(zone_j: float, att_pods: dict[int, float], system_j: float, idle_j: float) -> None:
    parts = [*att_pods.values(), system_j, idle_j]
    assert all(p >= 0.0 for p in parts)
    assert math.isclose(math.fsum(parts), zone_j, rel_tol=1e-9, abs_tol=1e-9)


@settings(max_examples=200, deadline=None)
@given(total_s=cpu_s, busy_s=cpu_s, pods=pods_st, zones_j=st.lists(energy_j, min_size=1, max_size=4))
def test_pods_system_idle_add_up_to_every_zone(
    total_s: float, busy_s: float, pods: dict[int, PodCpu[int]], zones_j: list[float]
) -> None:
    fractions = shares(total_s, busy_s, pods)
    for zone_j in zones_j:
        att = attribute(zone_j, fractions)
        assert_conserved(zone_j, dict(att.pods_j), att.system_j, att.idle_j)
        for uid in pods:
            in_pod = [j for (u, _), j in att.containers_j.items() if u == uid]
            assert all(j >= 0.0 for j in in_pod)
            assert math.fsum(in_pod) <= att.pods_j[uid] * (1 + 1e-9) + 1e-12
        assert math.isclose(att.pods_total_j, math.fsum(att.pods_j.values()), rel_tol=1e-9, abs_tol=1e-9)
        # Without the per-pod split: the same totals, and no per-pod entries made.
        totals = attribute(zone_j, fractions, per_pod=False)
        assert (totals.pods_j, totals.containers_j) == ({}, {})
        assert_conserved(zone_j, {0: totals.pods_total_j}, totals.system_j, totals.idle_j)
        assert totals.system_j == att.system_j
        for mine, full in ((totals.pods_total_j, att.pods_total_j), (totals.idle_j, att.idle_j)):
            assert math.isclose(mine, full, rel_tol=1e-9, abs_tol=1e-6)


def test_shares_follow_cpu_time() -> None:
    # 4 CPUs over 1 s: 4 CPU-seconds, 3 busy, pod a 1.5, pod b 0.5 -> system 1, idle 1.
    pods = {"a": PodCpu(1.5, {"c1": 1.0, "c2": 0.5}), "b": PodCpu(0.5, {})}
    att = attribute(100.0, shares(4.0, 3.0, pods))
    assert att.pods_j == {"a": 37.5, "b": 12.5}
    assert att.containers_j == {("a", "c1"): 25.0, ("a", "c2"): 12.5}
    assert (att.system_j, att.idle_j) == (25.0, 25.0)


def test_pods_beyond_busy_time_are_scaled_down() -> None:
    # Counters read a few ms apart: pods claim 3 CPU-seconds, the node saw only 2 busy.
    pods: dict[str, PodCpu[str]] = {"a": PodCpu(2.0, {}), "b": PodCpu(1.0, {})}
    att = attribute(40.0, shares(4.0, 2.0, pods))
    assert math.isclose(att.pods_j["a"], 40.0 * 2 / 3 * 2 / 4)
    assert math.isclose(att.pods_j["b"], 40.0 * 1 / 3 * 2 / 4)
    assert att.system_j == 0.0
    assert math.isclose(att.idle_j, 20.0)


def test_no_elapsed_cpu_time_is_all_idle() -> None:
    att = attribute(5.0, shares(0.0, 0.0, {"a": PodCpu(1.0, {"c": 1.0})}))
    assert (att.pods_j, att.system_j, att.idle_j) == ({"a": 0.0}, 0.0, 5.0)
