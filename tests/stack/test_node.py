"""The simulated node tree read by energyd's own readers: what the stand-in writes is what energyd
attributes, and pods + system + idle = node."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapter.standin.node import NodeTree
from energyd.cgroups import PodUsageReader
from energyd.cgroups.names import NoNames
from energyd.procstat import read_cpu_times, read_proc_stat
from energyd.sampler import Sampler
from energyd.sources.estimate import EstimateSource
from tests.clock import Clock


def _sampler(tree: NodeTree, clock: Clock) -> Sampler:
    source = EstimateSource(tree.procfs_root, clock=clock)
    return Sampler(
        source,
        functools.partial(read_cpu_times, tree.procfs_root),
        PodUsageReader(tree.cgroup_root),
        NoNames(),
    )


def test_energyd_reads_pod_usage_and_node_cpu(tmp_path: Path) -> None:
    tree = NodeTree(tmp_path, cpus=4)
    a, b = tree.add_pod(), tree.add_pod()
    reader = PodUsageReader(tree.cgroup_root)
    assert reader.version == 2
    tree.advance(2.0, {a: 1.5, b: 0.5}, system_cpu_s=0.25)
    first = {p.uid: p for p in reader.read().pods}
    assert first[a].usage_us == 1_500_000 and first[b].usage_us == 500_000
    assert first[a].containers == {tree.container_id(a): 1_500_000}
    tree.advance(1.0, {a: 1.0, b: 0.0})
    # The same descriptors, kept open by energyd, see the rewritten counters.
    assert {p.uid: p.usage_us for p in reader.read().pods} == {a: 2_500_000, b: 500_000}
    stat = read_proc_stat(tree.procfs_root)
    assert stat.online_cpus == 4
    assert stat.cpu.total_s == pytest.approx(12.0)
    assert stat.cpu.busy_s == pytest.approx(3.25)
    tree.remove_pod(b)
    assert [p.uid for p in reader.read().pods] == [a]
    tree.close()


def test_busy_time_past_the_cpus_is_clipped(tmp_path: Path) -> None:
    tree = NodeTree(tmp_path, cpus=2)
    a = tree.add_pod()
    tree.advance(1.0, {a: 5.0}, system_cpu_s=1.0)
    stat = read_proc_stat(tree.procfs_root)
    assert stat.cpu.busy_s == pytest.approx(2.0) and stat.cpu.idle_s == pytest.approx(0.0)
    assert [p.usage_us for p in PodUsageReader(tree.cgroup_root).read().pods] == [2_000_000]


@settings(max_examples=50, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.floats(0.5, 3.0),
            st.lists(st.floats(0.0, 1.5), min_size=1, max_size=4),
            st.floats(0.0, 0.2),
        ),
        min_size=2,
        max_size=5,
    )
)
def test_energyd_attributes_the_tree_conserving_energy(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[float, list[float], float]]
) -> None:
    tree = NodeTree(tmp_path_factory.mktemp("node"), cpus=4)
    uids = [tree.add_pod() for _ in range(4)]
    clock = Clock(1000.0)
    sampler = _sampler(tree, clock)
    sampler.step(clock.now_s)
    before_j: dict[str, float] = {}
    for elapsed_s, cpus, system_s in steps:
        used = {uid: c * elapsed_s for uid, c in zip(uids, cpus, strict=False)}
        tree.advance(elapsed_s, used, system_s * elapsed_s)
        clock.now_s += elapsed_s
        snap = sampler.step(clock.now_s)
        pods_j = snap.pod_energy_j["estimate"]
        # Within one interval energy follows CPU time: the pods' shares are in their CPU ratio
        # (to the tick rounding of /proc/stat).
        step_j = {uid: pods_j.get(uid, 0.0) - before_j.get(uid, 0.0) for uid in uids}
        busiest = max(used, key=lambda u: used[u])
        if used[busiest] > 0.5:
            for uid in uids:
                ratio = used.get(uid, 0.0) / used[busiest]
                assert step_j[uid] / step_j[busiest] == pytest.approx(ratio, abs=0.05)
        before_j = dict(pods_j)
    node_j = snap.node_energy_j["estimate"]
    rest_j = snap.unattributed_j[("estimate", "system")] + snap.unattributed_j[("estimate", "idle")]
    assert node_j > 0
    assert sum(before_j.values()) + rest_j == pytest.approx(node_j, rel=1e-9)
    tree.close()
