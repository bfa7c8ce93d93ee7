"""Pods found and read on this machine's real cgroupfs (v1 cpuacct and cgroup2), through the
reader `energyd run` builds: cgroups are made with mkdir after energyd's first pass, as the
kubelet and runc make them, and a real process burns CPU inside one."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path

import pytest

from energyd.cgroups import PodUsageReader
from energyd.cli import build
from energyd.config import Config
from tests.energyd.cgroup_trees import NodeTree, container_id, pod_uid
from tests.energyd.realcgroup import Burner, RealPods, real_cgroup_root, require_mount

# A pod or container made at any time must be found within this many passes.
PASSES = 2
LAYOUTS = [(1, "cgroupfs"), (1, "systemd"), (2, "cgroupfs"), (2, "systemd")]
FLAT_SANDBOX, FLAT_APP = container_id(1, 0), container_id(1, 1)
# Older than energyd's first pass by more than a file system clock tick, as a node's cgroups
# are (the mtime-based scanner this replaces trusted a listing only a second past the mtime).
SETTLE_S = 1.1

Case = tuple[str, int, str]  # (test, cgroup version, driver)


@pytest.fixture(scope="module")
def settled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[Case, tuple[Path, Path]]]:
    """A fresh real cgroup root per test case below, (--cgroup-root, hierarchy), holding the
    pods that predate energyd; made together and aged once for the module."""
    cases: list[Case] = [("made", v, d) for v, d in LAYOUTS]
    cases += [(test, v, "systemd") for test in ("flat", "wired") for v in (1, 2)]
    cases += [("names", 1, "cgroupfs"), ("names", 2, "systemd")]
    with contextlib.ExitStack() as stack:
        roots = {}
        for case in cases:
            test, version, driver = case
            root, hierarchy = stack.enter_context(real_cgroup_root(version, tmp_path_factory.mktemp(test)))
            roots[case] = (root, hierarchy)
            if test == "flat":
                flat = RealPods(hierarchy, "flat")
                flat.add_container(pod_uid(1), FLAT_SANDBOX)
                flat.add_container(pod_uid(1), FLAT_APP)
            else:
                RealPods(hierarchy, driver).add_pod(pod_uid(0))
            if test in ("made", "names"):
                RealPods(hierarchy, driver).add_container(pod_uid(0), container_id(0))
            if test == "names":
                RealPods(hierarchy, driver).add_container(pod_uid(0), container_id(0, 1))
        time.sleep(SETTLE_S)
        yield roots


def seen(reader: PodUsageReader) -> dict[str, set[str]]:
    return {p.uid: set(p.containers) for p in reader.read().pods}


def passes_until(reader: PodUsageReader, expected: dict[str, set[str]]) -> int | None:
    """The pass (1-based) at which the reader shows exactly `expected`, within PASSES."""
    for n in range(1, PASSES + 1):
        if seen(reader) == expected:
            return n
    return None


@pytest.mark.parametrize("version", [1, 2])
def test_kernfs_counts_subdirectories_in_the_link_count(tmp_path: Path, version: int) -> None:
    # The change signal the scanner relies on (the directory's mtime does not move on mkdir).
    with real_cgroup_root(version, tmp_path) as (_root, top):
        before = top.stat().st_nlink
        (top / "a").mkdir()
        (top / "b").mkdir()
        assert top.stat().st_nlink == before + 2
        (top / "a").rmdir()
        assert top.stat().st_nlink == before + 1


@pytest.mark.parametrize(("version", "driver"), LAYOUTS)
def test_cgroups_made_after_the_first_pass_are_found(
    settled: dict[Case, tuple[Path, Path]], version: int, driver: str
) -> None:
    root, hierarchy = settled[("made", version, driver)]
    kube = RealPods(hierarchy, driver)
    reader = PodUsageReader(root)
    assert reader.version == version
    assert seen(reader) == {pod_uid(0): {container_id(0)}}
    # New pods (in a new QoS directory too, and a guaranteed one beside the QoS directories)
    # and a new container in a pod already listed.
    kube.add_pod(pod_uid(1))
    kube.add_container(pod_uid(1), container_id(1))
    kube.add_pod(pod_uid(2), "guaranteed")
    kube.add_container(pod_uid(2), container_id(2), "guaranteed")
    kube.add_pod(pod_uid(3), "besteffort")
    kube.add_container(pod_uid(0), container_id(0, 1))
    expected = {
        pod_uid(0): {container_id(0), container_id(0, 1)},
        pod_uid(1): {container_id(1)},
        pod_uid(2): {container_id(2)},
        pod_uid(3): set(),
    }
    assert passes_until(reader, expected) is not None
    # Replaced within one interval: a container restarted (one scope gone, one new) and a pod
    # replaced by another in the same QoS directory leave every link count as it was.
    kube.remove(kube.container(pod_uid(0), container_id(0)))
    kube.add_container(pod_uid(0), container_id(0, 2))
    kube.remove(kube.pod(pod_uid(1)))
    kube.add_pod(pod_uid(4))
    kube.add_container(pod_uid(4), container_id(4))
    del expected[pod_uid(1)]
    expected[pod_uid(0)] = {container_id(0, 1), container_id(0, 2)}
    expected[pod_uid(4)] = {container_id(4)}
    assert passes_until(reader, expected) is not None
    # Removed: gone from the very next pass.
    kube.remove(kube.pod(pod_uid(2), "guaranteed"))
    kube.remove(kube.container(pod_uid(0), container_id(0, 1)))
    del expected[pod_uid(2)]
    expected[pod_uid(0)] = {container_id(0, 2)}
    assert seen(reader) == expected
    reader.close()


@pytest.mark.parametrize(("version", "driver"), [(1, "cgroupfs"), (2, "systemd")])
def test_a_restarted_container_the_api_names_is_found(
    settled: dict[Case, tuple[Path, Path]], version: int, driver: str
) -> None:
    # With names from the API, a pod whose one app container is known is read at the pod level
    # only: the restarted container's new id, not the removed cgroup, tells its listing is stale.
    root, hierarchy = settled[("names", version, driver)]
    kube = RealPods(hierarchy, driver)
    app, restarted = container_id(0, 1), container_id(0, 2)  # container_id(0) is the sandbox
    apps = {pod_uid(0): {app}}
    reader = PodUsageReader(root, known_containers=apps.get)
    assert seen(reader) == {pod_uid(0): {app}}
    kube.remove(kube.container(pod_uid(0), app))
    kube.add_container(pod_uid(0), restarted)
    apps[pod_uid(0)] = {restarted}
    assert passes_until(reader, {pod_uid(0): {restarted}}) is not None
    assert seen(reader) == {pod_uid(0): {restarted}}
    reader.close()


@pytest.mark.parametrize(("version", "driver"), [(1, "cgroupfs"), (2, "systemd"), (1, "flat"), (2, "flat")])
def test_cpu_time_of_a_real_process_is_read(tmp_path: Path, version: int, driver: str) -> None:
    with real_cgroup_root(version, tmp_path) as (root, hierarchy):
        kube = RealPods(hierarchy, driver)
        uid, app, sandbox = pod_uid(7), container_id(7, 1), container_id(7, 0)
        if driver != "flat":
            kube.add_pod(uid)
        kube.add_container(uid, sandbox)
        burner = Burner(kube.add_container(uid, app))
        try:
            burner.burn(0.0)  # the child's start-up is behind us
            reader = PodUsageReader(root)
            [before] = reader.read().pods
            burner.burn(0.3)
            [after] = reader.read().pods
        finally:
            burner.stop()
        app_s = (after.containers[app] - before.containers[app]) / 1e6
        pod_s = (after.usage_us - before.usage_us) / 1e6
        assert 0.25 < app_s < 2.0
        assert app_s <= pod_s < app_s + 0.05  # the sandbox cgroup holds no process
        assert after.containers[sandbox] == before.containers[sandbox] == 0
        reader.close()


@pytest.mark.parametrize("version", [1, 2])
def test_flat_containerd_service_pods_come_and_go(
    settled: dict[Case, tuple[Path, Path]], version: int
) -> None:
    root, hierarchy = settled[("flat", version, "systemd")]
    flat = RealPods(hierarchy, "flat")
    burner = Burner(flat.container(pod_uid(1), FLAT_APP))
    try:
        burner.burn(0.0)
        reader = PodUsageReader(root)
        assert seen(reader) == {pod_uid(1): {FLAT_SANDBOX, FLAT_APP}}
        burner.burn(0.1)
        flat.add_container(pod_uid(2), container_id(2), "besteffort")
        [used_us] = [p.usage_us for p in reader.read().pods if p.uid == pod_uid(1)]
    finally:
        burner.stop()
    expected = {pod_uid(1): {FLAT_SANDBOX, FLAT_APP}, pod_uid(2): {container_id(2)}}
    assert passes_until(reader, expected) is not None
    # The app container goes and another comes within one interval: found, and the pod's
    # counter keeps what the gone one had used.
    flat.remove(flat.container(pod_uid(1), FLAT_APP))
    flat.add_container(pod_uid(1), container_id(1, 2))
    expected[pod_uid(1)] = {FLAT_SANDBOX, container_id(1, 2)}
    assert passes_until(reader, expected) is not None
    [pod] = [p for p in reader.read().pods if p.uid == pod_uid(1)]
    assert pod.usage_us >= used_us > 0.09e6
    reader.close()


@pytest.mark.parametrize("version", [1, 2])
def test_energyd_as_wired_attributes_energy_to_a_pod_made_after_it_started(
    settled: dict[Case, tuple[Path, Path]], tmp_path: Path, version: int
) -> None:
    root, hierarchy = settled[("wired", version, "systemd")]
    kube = RealPods(hierarchy, "systemd")
    node = NodeTree(tmp_path)  # RAPL and /proc/stat from fixtures; the cgroups are real
    daemon = build(Config(roots=replace(node.roots, cgroup=root), source="powercap", port=0))
    try:
        daemon.step()
        kube.add_pod(pod_uid(2))
        burner = Burner(kube.add_container(pod_uid(2), container_id(2)))
        try:
            burner.burn(0.2)
        finally:
            burner.stop()
        joules: Mapping[str, float] = {}
        for k in range(1, PASSES + 1):
            node.set_energy_uj(k * 10_000_000)
            node.set_cpu(busy_s=k * 1.0, idle_s=k * 1.0)
            joules = daemon.step().pod_energy_j["package-0"]
            if joules.get(pod_uid(2), 0.0) > 0:
                break
        assert joules.get(pod_uid(2), 0.0) > 0
    finally:
        daemon.close()


def test_the_default_root_finds_this_machines_cpu_hierarchy() -> None:
    # What `energyd run` reads with no --cgroup-root on this machine kind (v1 with cgroup2
    # beside it): the cpuacct hierarchy, wherever the distribution mounts it.
    default = Config().roots.cgroup
    reader = PodUsageReader(default)
    if (default / "cgroup.controllers").is_file():
        assert (reader.version, reader.hierarchy) == (2, default)
    else:
        assert reader.version == 1
        assert reader.hierarchy.resolve() == require_mount(1).resolve()
    assert os.path.isfile(reader.hierarchy / ("cpuacct.usage" if reader.version == 1 else "cpu.stat"))
    reader.close()
