"""The sampler over fixture trees read through the real readers (powercap, /proc/stat, cgroups)."""

from __future__ import annotations

import functools
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from energyd.cgroups import PodUsageReader
from energyd.cgroups.names import NoNames
from energyd.procstat import read_cpu_times
from energyd.sampler import Sampler, Snapshot
from energyd.sources.select import open_source
from tests.energyd.cgroup_trees import NodeTree, container_id, pod_uid
from tests.energyd.fixture_trees import DRAM_RANGE_UJ, set_energy, write_powercap_zone, zone_dir

A, B = pod_uid(1), pod_uid(2)
CA = container_id(1)
ZONE = "package-0"


def sampler_for(
    node: NodeTree,
    grace_period_s: float = 300.0,
    max_power_w: dict[str, float] | None = None,
    all_pod_zones: bool = False,
) -> Sampler:
    source, _ = open_source("powercap", node.roots)
    return Sampler(
        source,
        functools.partial(read_cpu_times, node.roots.procfs),
        PodUsageReader(node.roots.cgroup),
        NoNames(),
        grace_period_s=grace_period_s,
        max_power_w=max_power_w,
        all_pod_zones=all_pod_zones,
    )


def pod_j(snap: Snapshot, uid: str) -> float | None:
    return snap.pod_energy_j[ZONE].get(uid)


def assert_conserved(snap: Snapshot, per_pod: tuple[str, ...] = (ZONE,)) -> None:
    """pods + system + idle = node in every zone; in the zones `per_pod` (those attributed per
    pod at every pass so far, no pod expired) the pods' own joules add up to the pods' total."""
    for zone, node_j in snap.node_energy_j.items():
        parts = [snap.pods_total_j[zone]]
        parts += [snap.unattributed_j.get((zone, k), 0.0) for k in ("system", "idle")]
        assert math.isclose(math.fsum(parts), node_j, rel_tol=1e-9, abs_tol=1e-9)
    for zone in per_pod:
        pods_j = math.fsum(snap.pod_energy_j[zone].values())
        assert math.isclose(pods_j, snap.pods_total_j[zone], rel_tol=1e-9, abs_tol=1e-9)


@pytest.fixture
def node(tmp_path: Path) -> NodeTree:
    tree = NodeTree(tmp_path)
    tree.cgroups.set_pod(A, 0)
    tree.cgroups.set_container(A, CA, 0)
    tree.cgroups.set_pod(B, 0, qos="besteffort")
    return tree


def test_an_interval_is_split_by_cpu_time(node: NodeTree) -> None:
    sampler = sampler_for(node)
    first = sampler.step(100.0)
    assert pod_j(first, A) is None and first.node_energy_j == {ZONE: 0.0}  # a baseline only
    # 4 CPUs for 1 s: 2 CPU-s busy, pod A 1.0 (its container 0.8), pod B 0.5; 40 J in the package.
    node.set_energy_uj(40_000_000)
    node.set_cpu(busy_s=2.0, idle_s=2.0)
    node.cgroups.set_pod(A, 1_000_000)
    node.cgroups.set_container(A, CA, 800_000)
    node.cgroups.set_pod(B, 500_000)
    snap = sampler.step(101.0)
    assert snap.node_energy_j[ZONE] == pytest.approx(40.0)
    assert snap.node_power_w[ZONE] == pytest.approx(40.0)
    assert pod_j(snap, A) == pytest.approx(10.0)
    assert pod_j(snap, B) == pytest.approx(5.0)
    assert snap.unattributed_j[(ZONE, "system")] == pytest.approx(5.0)
    assert snap.unattributed_j[(ZONE, "idle")] == pytest.approx(20.0)
    assert snap.container_energy_j[ZONE] == {(A, CA): pytest.approx(8.0)}
    assert snap.pod_meta == {}  # no API: the exporter labels pods by uid
    assert snap.pods_present == 2 and snap.source == "powercap" and snap.measured
    assert_conserved(snap)


def test_a_wrapped_zone_counter_keeps_counting(tmp_path: Path) -> None:
    node = NodeTree(tmp_path, max_range_uj=100_000_000)
    node.cgroups.set_pod(A, 0)
    node.set_energy_uj(90_000_000)
    sampler = sampler_for(node)
    sampler.step(0.0)
    node.set_energy_uj(130_000_000)  # written as 30 J: the counter wrapped at 100 J
    node.set_cpu(busy_s=1.0, idle_s=1.0)
    node.cgroups.set_pod(A, 1_000_000)
    snap = sampler.step(1.0)
    assert snap.node_energy_j[ZONE] == pytest.approx(40.0)
    assert pod_j(snap, A) == pytest.approx(20.0)


def test_churn_keeps_pod_counters_monotonic(node: NodeTree) -> None:
    sampler = sampler_for(node, grace_period_s=10.0)
    sampler.step(0.0)
    node.set_energy_uj(40_000_000)
    node.set_cpu(busy_s=2.0, idle_s=2.0)
    node.cgroups.set_pod(A, 1_000_000)
    node.cgroups.set_pod(B, 1_000_000)
    snap = sampler.step(1.0)
    a1, b1 = pod_j(snap, A), pod_j(snap, B)
    assert a1 is not None and b1 is not None
    assert a1 == pytest.approx(10.0) and b1 == pytest.approx(10.0)
    # Pod A's cgroup was recreated (its counter restarted: 0.5 s since), a new container
    # appeared in it, and pod B vanished.
    node.cgroups.set_pod(A, 500_000)
    node.cgroups.set_container(A, container_id(1, 2), 400_000)
    node.cgroups.remove_pod(B)
    node.set_energy_uj(80_000_000)
    node.set_cpu(busy_s=4.0, idle_s=4.0)
    snap = sampler.step(2.0)
    assert pod_j(snap, A) == pytest.approx(a1 + 5.0)
    assert pod_j(snap, B) == pytest.approx(b1)  # kept through the grace period
    assert snap.container_energy_j[ZONE][(A, container_id(1, 2))] == pytest.approx(4.0)
    assert snap.pods_present == 1
    assert_conserved(snap)
    # B comes back within the grace period: its series continues from where it was.
    node.cgroups.set_pod(B, 1_500_000, qos="besteffort")
    node.set_energy_uj(120_000_000)
    node.set_cpu(busy_s=6.0, idle_s=6.0)
    snap = sampler.step(3.0)
    assert pod_j(snap, B) == pytest.approx(b1 + 5.0)
    node.cgroups.remove_pod(B)
    sampler.step(10.0)
    assert pod_j(sampler.step(13.1), B) is None  # unseen for more than 10 s: dropped


def test_a_failed_energy_read_is_covered_by_the_next_pass(node: NodeTree) -> None:
    sampler = sampler_for(node)
    sampler.step(0.0)
    energy = node.roots.sysfs / "class/powercap/intel-rapl:0/energy_uj"
    saved = energy.read_text()
    energy.write_text("garbage\n")
    node.set_cpu(busy_s=1.0, idle_s=1.0)
    node.cgroups.set_pod(A, 1_000_000)
    failed = sampler.step(1.0)
    assert failed.read_errors.get(("powercap", "read_failed")) == 1
    assert failed.read_errors.get(("powercap", "not_a_counter")) == 1
    assert failed.node_energy_j[ZONE] == 0.0
    energy.write_text(saved)
    node.set_energy_uj(80_000_000)
    node.set_cpu(busy_s=2.0, idle_s=2.0)
    snap = sampler.step(2.0)
    assert snap.node_energy_j[ZONE] == pytest.approx(80.0)
    assert pod_j(snap, A) == pytest.approx(20.0)  # 1 of the 4 CPU-seconds over the whole gap
    assert_conserved(snap)


@dataclass(frozen=True)
class Step:
    energy_uj: int
    busy_s: float
    idle_s: float
    pods: dict[int, int]  # pod -> µs of CPU time this step; a pod left out is removed
    reset: set[int]  # pods whose cgroup was recreated (counter back to 0) this step
    # What the zone's energy_uj shows instead of the true counter this step: None (the counter),
    # "reset" (it restarted near 0), "jump" (far beyond the power ceiling), "above_range" (past
    # max_energy_range_uj: the range is unknown from then on), or text that is no counter
    # (negative, empty, absurdly long).
    glitch: str | None = None


RANGE_UJ = 1_000_000_000  # 1 kJ
CEILING_W = 100.0  # a step adds at most 60 J: under the ceiling, and a wrap is unambiguous
GARBAGE = ["-5", "", "9" * 25, "1" * 300, "0x10", "12 J"]
step_st = st.builds(
    Step,
    energy_uj=st.integers(0, 60_000_000),
    busy_s=st.floats(0.0, 4.0),
    idle_s=st.floats(0.0, 4.0),
    pods=st.dictionaries(st.integers(1, 4), st.integers(0, 2_000_000), max_size=4),
    reset=st.sets(st.integers(1, 4), max_size=2),
    glitch=st.sampled_from([None, None, None, "reset", "jump", "above_range", *GARBAGE]),
)


def write_energy(node: NodeTree, text: str) -> None:
    with open(node.roots.sysfs / "class/powercap/intel-rapl:0/energy_uj", "r+") as f:
        f.truncate(0)
        f.write(text + "\n")


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(step_st, min_size=1, max_size=8))
def test_conservation_and_monotonic_counters_through_wraps_resets_garbage_and_churn(
    steps: list[Step],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        node = NodeTree(Path(tmp), max_range_uj=RANGE_UJ)
        sampler = sampler_for(node, grace_period_s=1e9, max_power_w={"package": CEILING_W})
        prev = sampler.step(0.0)
        energy_uj, busy_s, idle_s = 0, 0.0, 0.0
        usage: dict[int, int] = {}
        # The energy the next counted interval must show, when it is known exactly: the true
        # counter's rise since the last reading the sampler counted from.
        owed_uj: int | None = 0
        range_known = True
        for i, step in enumerate(steps, start=1):
            if step.glitch == "reset":
                energy_uj = step.energy_uj // 100  # restarted near 0; counts on from there
            else:
                energy_uj += step.energy_uj
            busy_s += step.busy_s
            idle_s += step.idle_s
            if step.glitch is None or step.glitch == "reset":
                write_energy(node, str(energy_uj % RANGE_UJ))
            elif step.glitch == "jump":
                write_energy(node, str((energy_uj + RANGE_UJ // 2) % RANGE_UJ))
            elif step.glitch == "above_range":
                write_energy(node, str(RANGE_UJ + energy_uj))
            else:
                write_energy(node, step.glitch)
            node.set_cpu(busy_s=busy_s, idle_s=idle_s)
            for p in [p for p in usage if p not in step.pods]:
                node.cgroups.remove_pod(pod_uid(p))
                del usage[p]
            for p, inc_us in step.pods.items():
                usage[p] = (0 if p in step.reset else usage.get(p, 0)) + inc_us
                node.cgroups.set_pod(pod_uid(p), usage[p])
            snap = sampler.step(float(i))
            added_j = snap.node_energy_j[ZONE] - prev.node_energy_j[ZONE]
            assert added_j >= 0.0
            assert added_j <= CEILING_W * i + 1e-9  # never more than the ceiling allows
            if step.glitch is None and owed_uj is not None:
                assert added_j == pytest.approx((owed_uj + step.energy_uj) / 1e6)
            if step.glitch is None:
                owed_uj = 0
            elif step.glitch in GARBAGE:
                assert added_j == 0.0  # the zone was unreadable: nothing counted
                owed_uj = None if owed_uj is None else owed_uj + step.energy_uj
            elif step.glitch == "above_range":
                # The range is unknown from now on, so later wraps count as resets: only the
                # invariants are checked after it.
                range_known = False
            else:
                # A reset or a jump counts nothing (or, for a reset just after a wrap point,
                # what a wrap would), and the next interval counts from the value it left.
                owed_uj = None if step.glitch == "jump" else 0
            if not range_known:
                owed_uj = None
            assert_conserved(snap)
            before = prev.pod_energy_j[ZONE]
            for uid, j in snap.pod_energy_j[ZONE].items():
                assert j >= before.get(uid, 0.0)
            for key, j in snap.unattributed_j.items():
                assert j >= prev.unattributed_j.get(key, 0.0)
            prev = snap


def test_a_counter_that_steps_back_far_from_its_range_is_a_reset_not_a_wrap(tmp_path: Path) -> None:
    node = NodeTree(tmp_path)  # the package's real range: 262 kJ
    node.cgroups.set_pod(A, 0)
    sampler = sampler_for(node)
    node.set_energy_uj(100_000_000)
    sampler.step(0.0)
    node.set_energy_uj(150_000_000)
    node.set_cpu(busy_s=1.0, idle_s=1.0)
    assert sampler.step(1.0).node_energy_j[ZONE] == pytest.approx(50.0)
    # 10 J back (a driver reload): the old code added ~262 kJ as a wrap.
    node.set_energy_uj(140_000_000)
    node.set_cpu(busy_s=2.0, idle_s=2.0)
    node.cgroups.set_pod(A, 1_000_000)
    snap = sampler.step(2.0)
    assert snap.node_energy_j[ZONE] == pytest.approx(50.0)  # the interval counts nothing
    assert pod_j(snap, A) == pytest.approx(0.0)
    assert snap.read_errors[("powercap", "reset")] == 1
    assert ZONE not in snap.node_power_w
    assert_conserved(snap)
    # It counts on from its new reading.
    node.set_energy_uj(160_000_000)
    node.set_cpu(busy_s=3.0, idle_s=3.0)
    snap = sampler.step(3.0)
    assert snap.node_energy_j[ZONE] == pytest.approx(70.0)
    assert snap.node_power_w[ZONE] == pytest.approx(20.0)


def test_a_delta_above_the_power_ceiling_is_discarded_and_counted(tmp_path: Path) -> None:
    node = NodeTree(tmp_path)
    sampler = sampler_for(node, max_power_w={"package": 500.0})
    sampler.step(0.0)
    node.set_energy_uj(600_000_000)  # 600 J in 1 s: above 500 W
    node.set_cpu(busy_s=1.0, idle_s=1.0)
    snap = sampler.step(1.0)
    assert snap.node_energy_j[ZONE] == 0.0 and snap.read_errors[("powercap", "implausible")] == 1
    node.set_energy_uj(900_000_000)  # 300 J in 1 s: plausible, and counted from the last reading
    node.set_cpu(busy_s=2.0, idle_s=2.0)
    assert sampler.step(2.0).node_energy_j[ZONE] == pytest.approx(300.0)


def test_a_counter_without_range_that_goes_back_restarted(tmp_path: Path) -> None:
    # No max_energy_range_uj: a decrease cannot be a wrap, so the interval counts nothing.
    node = NodeTree(tmp_path, max_range_uj=None)
    node.cgroups.set_pod(A, 0)
    sampler = sampler_for(node)
    sampler.step(0.0)
    node.set_energy_uj(50_000_000)
    node.set_cpu(busy_s=1.0, idle_s=1.0)
    assert sampler.step(1.0).node_energy_j[ZONE] == pytest.approx(50.0)
    node.set_energy_uj(5_000_000)
    node.set_cpu(busy_s=2.0, idle_s=2.0)
    node.cgroups.set_pod(A, 1_000_000)
    snap = sampler.step(2.0)
    assert snap.node_energy_j[ZONE] == pytest.approx(50.0)
    assert snap.read_errors[("powercap", "reset")] == 1
    assert_conserved(snap)


def psys_node(tmp_path: Path) -> NodeTree:
    """A client: package-0 (the NodeTree's zone), dram-0 inside it and psys beside it."""
    node = NodeTree(tmp_path)
    write_powercap_zone(node.roots.sysfs, "0:0", "dram", 0, DRAM_RANGE_UJ)
    write_powercap_zone(node.roots.sysfs, 1, "psys", 0)
    return node


def test_a_flat_psys_is_distrusted_and_packages_plus_dram_are_the_node_total(tmp_path: Path) -> None:
    node = psys_node(tmp_path)
    sampler = sampler_for(node)
    sampler.step(0.0)
    node.set_energy_uj(30_000_000)
    set_energy(node.roots.sysfs, "0:0", 5_000_000)
    node.set_cpu(busy_s=1.0, idle_s=1.0)
    snap = sampler.step(1.0)  # psys stayed at 0 while the package moved
    assert {z for z, t in snap.in_node_total.items() if t} == {"dram-0", "package-0"}
    [note] = [s for s in snap.sources if s.reason.startswith("psys")]
    assert "psys did not move while dram-0, package-0 did" in note.reason and not note.selected
    # Once psys moves it is the node total again, and the note goes.
    node.set_energy_uj(60_000_000)
    set_energy(node.roots.sysfs, 1, 40_000_000)
    node.set_cpu(busy_s=2.0, idle_s=2.0)
    snap = sampler.step(2.0)
    assert {z for z, t in snap.in_node_total.items() if t} == {"psys"}
    assert not [s for s in snap.sources if s.reason.startswith("psys")]


@pytest.mark.parametrize("all_pod_zones", [False, True])
def test_only_the_zones_with_pod_series_are_attributed_per_pod(tmp_path: Path, all_pod_zones: bool) -> None:
    node = psys_node(tmp_path)
    node.cgroups.set_pod(A, 0)
    node.cgroups.set_container(A, CA, 0)
    sampler = sampler_for(node, all_pod_zones=all_pod_zones)
    sampler.step(0.0)
    # psys (100 J) is the node total: by default only it gets per-pod joules.
    node.set_energy_uj(30_000_000)
    set_energy(node.roots.sysfs, "0:0", 10_000_000)
    set_energy(node.roots.sysfs, 1, 100_000_000)
    node.set_cpu(busy_s=2.0, idle_s=2.0)
    node.cgroups.set_pod(A, 1_000_000)
    node.cgroups.set_container(A, CA, 1_000_000)
    snap = sampler.step(1.0)
    assert snap.pod_energy_j["psys"] == {A: pytest.approx(25.0)}
    assert snap.container_energy_j["psys"] == {(A, CA): pytest.approx(25.0)}
    for zone, zone_j in (("package-0", 30.0), ("dram-0", 10.0)):
        # Skipped or not, the pods' total and system and idle are the same.
        assert snap.pods_total_j[zone] == pytest.approx(zone_j / 4)
        assert snap.unattributed_j[(zone, "system")] == pytest.approx(zone_j / 4)
        assert snap.unattributed_j[(zone, "idle")] == pytest.approx(zone_j / 2)
        assert snap.pod_energy_j[zone] == ({A: pytest.approx(zone_j / 4)} if all_pod_zones else {})
        assert bool(snap.container_energy_j[zone]) is all_pod_zones
    assert_conserved(snap, per_pod=("psys", "package-0", "dram-0") if all_pod_zones else ("psys",))
    # psys stays flat while the package moves: package + dram are the node total from this
    # interval on, and get per-pod joules from it.
    node.set_energy_uj(70_000_000)
    set_energy(node.roots.sysfs, "0:0", 30_000_000)
    node.set_cpu(busy_s=4.0, idle_s=4.0)
    node.cgroups.set_pod(A, 2_000_000)
    snap = sampler.step(2.0)
    assert snap.pod_energy_j["package-0"][A] == pytest.approx(17.5 if all_pod_zones else 10.0)
    assert snap.pod_energy_j["dram-0"][A] == pytest.approx(7.5 if all_pod_zones else 5.0)
    assert snap.pod_energy_j["psys"] == {A: pytest.approx(25.0)}  # kept as it was: no energy
    assert_conserved(snap, per_pod=("psys", "package-0", "dram-0") if all_pod_zones else ("psys",))


def test_a_vanished_zone_has_no_series_and_a_returning_one_counts_from_its_new_reading(
    tmp_path: Path,
) -> None:
    node = psys_node(tmp_path)
    sampler = sampler_for(node)
    sampler.step(0.0)
    node.set_energy_uj(30_000_000)
    set_energy(node.roots.sysfs, 1, 40_000_000)
    node.set_cpu(busy_s=1.0, idle_s=1.0)
    snap = sampler.step(1.0)
    assert snap.node_power_w["psys"] == pytest.approx(40.0)
    # psys goes: on sysfs its open file fails to read (ENODEV); a fixture file cannot, so the
    # file the source holds open stops holding a counter.
    with open(zone_dir(node.roots.sysfs, 1) / "energy_uj", "r+") as f:
        f.truncate(0)
        f.write("gone\n")
    node.set_energy_uj(60_000_000)
    node.set_cpu(busy_s=2.0, idle_s=2.0)
    snap = sampler.step(2.0)
    assert "psys" not in snap.node_power_w and "psys" not in snap.node_energy_j
    assert "psys" not in snap.pod_energy_j and ("psys", "idle") not in snap.unattributed_j
    # No double count: the packages are the node total, and the stale psys is gone from it.
    assert {z for z, t in snap.in_node_total.items() if t} == {"dram-0", "package-0"}
    assert any("intel-rapl:1/energy_uj" in s.reason for s in snap.sources)
    set_energy(node.roots.sysfs, 1, 900_000_000)  # back, at a new value
    node.set_energy_uj(90_000_000)
    node.set_cpu(busy_s=3.0, idle_s=3.0)
    snap = sampler.step(3.0)
    assert snap.node_energy_j["psys"] == pytest.approx(40.0)  # its first reading is a baseline
    assert "psys" not in snap.node_power_w
    set_energy(node.roots.sysfs, 1, 910_000_000)
    node.set_energy_uj(100_000_000)
    node.set_cpu(busy_s=4.0, idle_s=4.0)
    snap = sampler.step(4.0)
    assert snap.node_energy_j["psys"] == pytest.approx(50.0)
    assert {z for z, t in snap.in_node_total.items() if t} == {"psys"}
    assert_conserved(snap, per_pod=())


def test_a_long_source_outage_does_not_expire_running_pods(node: NodeTree) -> None:
    sampler = sampler_for(node, grace_period_s=10.0)
    sampler.step(0.0)
    node.set_energy_uj(4_000_000)
    node.set_cpu(busy_s=1.0, idle_s=1.0)
    node.cgroups.set_pod(A, 500_000)
    a1 = pod_j(sampler.step(1.0), A)
    energy = node.roots.sysfs / "class/powercap/intel-rapl:0/energy_uj"
    saved = energy.read_text()
    energy.write_text("garbage\n")
    for t in (6.0, 12.0, 18.0):
        assert pod_j(sampler.step(t), A) == a1  # still running: kept, though nothing is attributed
    energy.write_text(saved)
    assert pod_j(sampler.step(19.0), A) == a1


def test_a_pod_first_seen_with_more_cpu_than_the_interval_predates_it(node: NodeTree) -> None:
    sampler = sampler_for(node)
    sampler.step(0.0)
    # Pod C shows up with 100 CPU-seconds used: more than the node's 4 in this interval, so
    # they were used before the last pass (its cgroup was unreadable then) and count 0.
    old = pod_uid(3)
    node.cgroups.set_pod(old, 100_000_000)
    node.cgroups.set_pod(A, 1_000_000)
    node.set_energy_uj(40_000_000)
    node.set_cpu(busy_s=2.0, idle_s=2.0)
    snap = sampler.step(1.0)
    assert pod_j(snap, old) == 0.0
    assert pod_j(snap, A) == pytest.approx(10.0)
    node.cgroups.set_pod(old, 101_000_000)  # from now on it counts as any pod
    node.set_energy_uj(80_000_000)
    node.set_cpu(busy_s=4.0, idle_s=4.0)
    assert pod_j(sampler.step(2.0), old) == pytest.approx(10.0)


def test_one_unreadable_zone_is_skipped_and_named_and_the_others_exported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    node = NodeTree(tmp_path)
    broken = write_powercap_zone(node.roots.sysfs, 1, "package-1", 0) / "energy_uj"
    broken.unlink()
    broken.mkdir()  # opens, but every read fails (EISDIR)
    sampler = sampler_for(node)
    sampler.step(0.0)
    node.set_energy_uj(40_000_000)
    node.set_cpu(busy_s=1.0, idle_s=1.0)
    snap = sampler.step(1.0)
    assert snap.node_energy_j == {ZONE: pytest.approx(40.0)}
    [note] = [s for s in snap.sources if "intel-rapl:1/energy_uj" in s.reason]
    assert note.source == "powercap" and not note.selected
    assert snap.read_errors[("powercap", "unreadable")] == 3  # at open, then once per pass
    assert f"{node.roots.sysfs}/class/powercap/intel-rapl:1/energy_uj" in caplog.text
