"""Pod and container cgroups found and read through the same code path as on a node."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from energyd.cgroups import CgroupError, PodUsageReader, v2
from energyd.cgroups.pods import container_id_from_name, pod_uid_from_name
from tests.energyd.cgroup_trees import CgroupTree, container_id, pod_uid

HEX64 = "f93ee491b8ed2680d5a909eb098b14a9430173b57ca1c4efedd8768566d67e8e"


@pytest.mark.parametrize(
    ("name", "uid"),
    [
        (
            "kubepods-burstable-podd0511cd2_29d2_4215_be0f_f77bc0609d99.slice",
            "d0511cd2-29d2-4215-be0f-f77bc0609d99",
        ),
        ("kubepods-pod7922aa99_d4aa_4885_a953_82976860b23a.slice", "7922aa99-d4aa-4885-a953-82976860b23a"),
        (
            "kubelet-kubepods-besteffort-pod3cae2e45_052c_4b11_80d3_4d7b2d2d3464.slice",
            "3cae2e45-052c-4b11-80d3-4d7b2d2d3464",
        ),
        ("podbdd4097d-6795-404e-9bd8-6a1383386198", "bdd4097d-6795-404e-9bd8-6a1383386198"),
        ("kubepods-burstable.slice", None),
        ("system.slice", None),
        ("podnotauid", None),
    ],
)
def test_pod_uid_from_name(name: str, uid: str | None) -> None:
    assert pod_uid_from_name(name) == uid


@pytest.mark.parametrize(
    ("name", "cid"),
    [
        (f"crio-{HEX64}.scope", HEX64),
        (f"cri-containerd-{HEX64}.scope", HEX64),
        (f"docker-{HEX64}.scope", HEX64),
        (HEX64, HEX64),
        (f"crio-conmon-{HEX64}.scope", None),
        ("cpu.stat", None),
        (f"crio-{HEX64[:-1]}.scope", None),
    ],
)
def test_container_id_from_name(name: str, cid: str | None) -> None:
    assert container_id_from_name(name) == cid


LAYOUTS = [
    (2, "systemd", "containerd"),
    (2, "systemd", "crio"),
    (2, "cgroupfs", "docker"),
    (1, "systemd", "docker"),
    (1, "cgroupfs", "containerd"),
]


@pytest.mark.parametrize(("version", "driver", "runtime"), LAYOUTS)
def test_reads_every_qos_class(tmp_path: Path, version: int, driver: str, runtime: str) -> None:
    tree = CgroupTree(tmp_path, version=version, driver=driver, runtime=runtime)
    for i, qos in enumerate(("guaranteed", "burstable", "besteffort")):
        tree.set_pod(pod_uid(i), 1000 * (i + 1), qos=qos)
        tree.set_container(pod_uid(i), container_id(i), 900 * (i + 1))
    reader = PodUsageReader(tmp_path)
    assert reader.version == version
    reading = reader.read()
    got = {p.uid: (p.usage_us, p.containers) for p in reading.pods}
    assert got == {pod_uid(i): (1000 * (i + 1), {container_id(i): 900 * (i + 1)}) for i in range(3)}
    assert reading.errors == 0


@pytest.mark.parametrize(("version", "driver", "runtime"), LAYOUTS)
def test_pods_and_containers_come_and_go(tmp_path: Path, version: int, driver: str, runtime: str) -> None:
    tree = CgroupTree(tmp_path, version=version, driver=driver, runtime=runtime)
    reader = PodUsageReader(tmp_path)
    assert reader.read().pods == []  # no kubepods yet: the kubelet has not started
    tree.set_pod(pod_uid(1), 10)
    tree.set_container(pod_uid(1), container_id(1), 5)
    assert [p.uid for p in reader.read().pods] == [pod_uid(1)]
    tree.set_container(pod_uid(1), container_id(1, 1), 7)
    tree.set_pod(pod_uid(2), 20, qos="besteffort")
    pods = {p.uid: p for p in reader.read().pods}
    assert set(pods) == {pod_uid(1), pod_uid(2)}
    assert pods[pod_uid(1)].containers == {container_id(1): 5, container_id(1, 1): 7}
    tree.remove_container(pod_uid(1), container_id(1))
    tree.remove_pod(pod_uid(2))
    pods = {p.uid: p for p in reader.read().pods}
    assert set(pods) == {pod_uid(1)}
    assert pods[pod_uid(1)].containers == {container_id(1, 1): 7}


def test_settled_listing_is_reused_and_a_change_is_seen(tmp_path: Path) -> None:
    tree = CgroupTree(tmp_path)
    tree.set_pod(pod_uid(1), 10)
    pod_dir = tree.pod_dir(pod_uid(1))
    old_ns = 1_000_000_000_000_000_000
    for d in (pod_dir, pod_dir.parent, pod_dir.parent.parent):
        os.utime(d, ns=(old_ns, old_ns))
    reader = PodUsageReader(tmp_path)
    assert [p.containers for p in reader.read().pods] == [{}]
    # A container directory appearing bumps the pod directory's mtime: the listing is redone.
    tree.set_container(pod_uid(1), container_id(1), 3)
    assert [p.containers for p in reader.read().pods] == [{container_id(1): 3}]
    # With the mtime forced back to the settled one, the first listing is served again: proof the
    # cache is used (on a real node the kernel never moves an mtime back).
    tree.set_container(pod_uid(1), container_id(1, 1), 4)
    os.utime(pod_dir, ns=(old_ns, old_ns))
    assert reader.read().pods[0].containers == {}
    os.utime(pod_dir, ns=(old_ns + 1, old_ns + 1))
    assert reader.read().pods[0].containers == {container_id(1): 3, container_id(1, 1): 4}


def test_kind_layout_is_found(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu\n")
    uid = "3cae2e45-052c-4b11-80d3-4d7b2d2d3464"
    pod = tmp_path / "kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice"
    pod = pod / f"kubelet-kubepods-burstable-pod{uid.replace('-', '_')}.slice"
    (pod / f"cri-containerd-{HEX64}.scope").mkdir(parents=True)
    (pod / "cpu.stat").write_text("usage_usec 42\n")
    (pod / f"cri-containerd-{HEX64}.scope" / "cpu.stat").write_text("usage_usec 40\nuser_usec 1\n")
    [usage] = PodUsageReader(tmp_path).read().pods
    assert (usage.uid, usage.usage_us, usage.containers) == (uid, 42, {HEX64: 40})


def test_a_garbled_counter_is_an_error_not_a_crash(tmp_path: Path) -> None:
    tree = CgroupTree(tmp_path)
    tree.set_pod(pod_uid(1), 10)
    tree.set_pod(pod_uid(2), 20)
    (tree.pod_dir(pod_uid(2)) / "cpu.stat").write_text("user_usec 3\n")
    reading = PodUsageReader(tmp_path).read()
    assert [p.uid for p in reading.pods] == [pod_uid(1)]
    assert reading.errors == 1


def test_unusable_roots_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CgroupError, match="not a readable directory"):
        PodUsageReader(tmp_path / "missing")
    with pytest.raises(CgroupError, match="neither"):
        PodUsageReader(tmp_path)


@pytest.mark.parametrize(
    ("data", "usage_us"),
    [
        (b"usage_usec 42\nuser_usec 40\n", 42),
        (b"usage_usec 42", 42),
        (b"user_usec 40\nusage_usec 43\nsystem_usec 3\n", 43),
        (b"user_usec 40\nusage_usec 44", 44),
    ],
)
def test_cpu_stat_is_parsed_wherever_usage_usec_is(data: bytes, usage_us: int) -> None:
    assert v2.parse_usage_us(data) == usage_us


def test_cpu_stat_without_usage_usec_is_refused() -> None:
    with pytest.raises(ValueError, match="usage_usec"):
        v2.parse_usage_us(b"user_usec 40\nxusage_usec 4\n")


def test_descriptors_follow_churn(tmp_path: Path) -> None:
    tree = CgroupTree(tmp_path)
    tree.set_pod(pod_uid(1), 10)
    tree.set_pod(pod_uid(2), 20)
    for d in tmp_path.rglob("*"):  # settled: listings are cached, descriptors kept
        if d.is_dir():
            os.utime(d, ns=(10**18, 10**18))
    reader = PodUsageReader(tmp_path)
    reader.read()
    # Pod 2 is replaced by pod 3 between passes, and pod 1's cgroup is recreated with a fresh
    # counter: no descriptor of a removed file may be read again.
    tree.remove_pod(pod_uid(2))
    tree.set_pod(pod_uid(3), 30)
    tree.remove_pod(pod_uid(1))
    tree.set_pod(pod_uid(1), 5)
    assert {p.uid: p.usage_us for p in reader.read().pods} == {pod_uid(1): 5, pod_uid(3): 30}
    open_fds = len(os.listdir("/proc/self/fd"))
    reader.close()
    assert len(os.listdir("/proc/self/fd")) == open_fds - 2


def test_past_the_descriptor_budget_files_are_read_and_closed(tmp_path: Path) -> None:
    tree = CgroupTree(tmp_path)
    for i in range(3):
        tree.set_pod(pod_uid(i), i)
    reader = PodUsageReader(tmp_path, max_open_files=1)
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(2):
        assert sorted(p.usage_us for p in reader.read().pods) == [0, 1, 2]
    assert len(os.listdir("/proc/self/fd")) == before + 1


@pytest.mark.parametrize(("version", "driver", "runtime"), LAYOUTS[:3])
def test_pods_only_reads_no_container(tmp_path: Path, version: int, driver: str, runtime: str) -> None:
    tree = CgroupTree(tmp_path, version=version, driver=driver, runtime=runtime)
    tree.set_pod(pod_uid(1), 10)
    tree.set_container(pod_uid(1), container_id(1), 5)
    reader = PodUsageReader(tmp_path, containers=False)
    assert reader.read().pods == [(pod_uid(1), 10, {})]
    tree.set_pod(pod_uid(1), 12)
    tree.set_pod(pod_uid(2), 20, qos="guaranteed")
    assert sorted(reader.read().pods) == [(pod_uid(1), 12, {}), (pod_uid(2), 20, {})]
    tree.remove_pod(pod_uid(1))
    assert reader.read().pods == [(pod_uid(2), 20, {})]


def test_only_the_containers_the_api_lists_are_read(tmp_path: Path) -> None:
    tree = CgroupTree(tmp_path)
    sandbox, app, sidecar = container_id(1, 0), container_id(1, 1), container_id(1, 2)
    for uid in (pod_uid(1), pod_uid(2), pod_uid(3)):
        tree.set_pod(uid, 10)
        tree.set_container(uid, sandbox, 1)
        tree.set_container(uid, app, 8)
    tree.set_container(pod_uid(3), sidecar, 0)
    apps = {pod_uid(1): {app}, pod_uid(3): {app, sidecar}}
    reader = PodUsageReader(tmp_path, known_containers=apps.get)
    pods = {p.uid: p.containers for p in reader.read().pods}
    assert pods == {
        pod_uid(1): {app: 10},  # its only app container: the pod's counter, no container read
        pod_uid(2): {sandbox: 1, app: 8},  # not known to the API yet: every scope read
        pod_uid(3): {app: 8, sidecar: 0},  # the sandbox is left out
    }
