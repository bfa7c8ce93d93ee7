"""Pod and container cgroups found and read through the same code path as on a node."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from energyd.cgroups import CgroupError, PodUsageReader, v2
from energyd.cgroups.flat import flat_container
from energyd.cgroups.pods import container_id_from_name, pod_uid_from_name
from tests.energyd.cgroup_trees import CgroupTree, container_id, flat_container_dir, pod_uid

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
    assert {p.uid for p in reader.read().pods} == {pod_uid(1), pod_uid(2)}  # a new pod: at once
    pods = {p.uid: p for p in reader.read().pods}  # a new container: within two passes
    assert set(pods) == {pod_uid(1), pod_uid(2)}
    assert pods[pod_uid(1)].containers == {container_id(1): 5, container_id(1, 1): 7}
    tree.remove_container(pod_uid(1), container_id(1))
    tree.remove_pod(pod_uid(2))
    # Within two passes here: a removed file's open descriptor still reads on a disk file system
    # until the directory is checked (on cgroupfs it fails at once: test_cgroups_real.py).
    reader.read()
    pods = {p.uid: p for p in reader.read().pods}
    assert set(pods) == {pod_uid(1)}
    assert pods[pod_uid(1)].containers == {container_id(1, 1): 7}


@contextlib.contextmanager
def kernfs_mtime(directory: Path) -> Iterator[None]:
    """Children made and removed inside leave the directory's mtime as it was, as on cgroupfs."""
    st = directory.stat()
    yield
    os.utime(directory, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_listing_is_reused_until_the_link_count_moves_or_a_cgroup_goes(tmp_path: Path) -> None:
    tree = CgroupTree(tmp_path)
    tree.set_pod(pod_uid(1), 10)
    tree.set_container(pod_uid(1), container_id(1), 3)
    # Files opened per read: an open descriptor of a removed file still reads on a disk file
    # system (cgroupfs answers ENODEV, which test_cgroups_real.py shows).
    reader = PodUsageReader(tmp_path, max_open_files=0)
    assert [p.containers for p in reader.read().pods] == [{container_id(1): 3}]
    # A new container directory raises the pod directory's link count: listed anew once that
    # is checked, every other pass.
    tree.set_container(pod_uid(1), container_id(1, 1), 4)
    reader.read()
    assert reader.read().pods[0].containers == {container_id(1): 3, container_id(1, 1): 4}
    # One container replaced by another within an interval: the count is as it was, so the
    # cached listing is served once (proof the cache is used); the gone container's counter
    # fails to open, which makes the next pass list the pod again.
    with kernfs_mtime(tree.pod_dir(pod_uid(1))):
        tree.container_dir(pod_uid(1), container_id(1)).rename(
            tree.container_dir(pod_uid(1), container_id(1, 2))
        )
    assert reader.read().pods[0].containers == {container_id(1, 1): 4}
    assert reader.read().pods[0].containers == {container_id(1, 1): 4, container_id(1, 2): 3}


def test_a_pod_replaced_within_an_interval_is_found_on_the_next_pass(tmp_path: Path) -> None:
    tree = CgroupTree(tmp_path, version=1, driver="cgroupfs")
    tree.set_pod(pod_uid(1), 10)
    reader = PodUsageReader(tmp_path, max_open_files=0)
    assert [p.uid for p in reader.read().pods] == [pod_uid(1)]
    with kernfs_mtime(tree.pod_dir(pod_uid(1)).parent):
        tree.remove_pod(pod_uid(1))
        tree.set_pod(pod_uid(2), 20)  # the QoS directory's link count is unchanged
    assert reader.read().pods == []
    assert [p.uid for p in reader.read().pods] == [pod_uid(2)]


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
        (b"usage_usec 1234567\nuser_usec 1000000\nsystem_usec 234567\nnr_periods 0\n", 1234567),
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
    with pytest.raises(ValueError):
        v2.parse_usage_us(b"usage_usec 4x\nuser_usec 40\n")
    with pytest.raises(ValueError, match="usage_usec"):
        v2.parse_usage_us(b"usage_usec\n")


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
    for _ in range(2):  # the first pass opens the files, the next reads them kept open
        pods = {p.uid: p.containers for p in reader.read().pods}
        assert pods == {
            pod_uid(1): {app: 10},  # its only app container: the pod's counter, no container read
            pod_uid(2): {sandbox: 1, app: 8},  # not known to the API yet: every scope read
            pod_uid(3): {app: 8, sidecar: 0},  # the sandbox is left out
        }


def test_a_container_the_api_runs_but_the_listing_lacks_gets_the_pod_listed_again(tmp_path: Path) -> None:
    tree = CgroupTree(tmp_path)
    sandbox, app, restarted = container_id(1, 0), container_id(1, 1), container_id(1, 2)
    tree.set_pod(pod_uid(1), 10)
    tree.set_container(pod_uid(1), sandbox, 1)
    tree.set_container(pod_uid(1), app, 8)
    apps = {pod_uid(1): {app}}
    reader = PodUsageReader(tmp_path, known_containers=apps.get)
    assert reader.read().pods == [(pod_uid(1), 10, {app: 10})]
    # The app container restarts within one interval, and the API says so; link count and
    # mtime stay as they were, as on cgroupfs.
    with kernfs_mtime(tree.pod_dir(pod_uid(1))):
        tree.container_dir(pod_uid(1), app).rename(tree.container_dir(pod_uid(1), restarted))
    apps[pod_uid(1)] = {restarted}
    reader.read()
    assert reader.read().pods == [(pod_uid(1), 10, {restarted: 10})]
    # The API also lists a finished init container, whose cgroup is gone for good: still read.
    apps[pod_uid(1)] = {restarted, container_id(1, 3)}
    for _ in range(3):
        assert reader.read().pods == [(pod_uid(1), 10, {restarted: 8})]


# Real paths (Kepler's cgroup path table, from containerd nodes whose runc did not use systemd).
FLAT_NAMES = [
    (
        "kubepods-burstable-poda3b200c9_db51_40b4_9d2d_53f8fdf80d7f.slice:cri-containerd:"
        "286b15051ec43375190802e1f40562536980a8fd97e75bb89c7f2eec6f995f17",
        (
            "a3b200c9-db51-40b4-9d2d-53f8fdf80d7f",
            "286b15051ec43375190802e1f40562536980a8fd97e75bb89c7f2eec6f995f17",
        ),
    ),
    (
        "kubepods-besteffort-pod0043435f_1854_4327_b76b_730f681a781d.slice:cri-containerd:"
        "01fd96f7ad292b02a8317cde4ecb8c7ef3cc06ffdd113f13410e0837eb2b2a20",
        (
            "0043435f-1854-4327-b76b-730f681a781d",
            "01fd96f7ad292b02a8317cde4ecb8c7ef3cc06ffdd113f13410e0837eb2b2a20",
        ),
    ),
    (f"system.slice:cri-containerd:{HEX64}", None),  # no pod in the slice name
    (f"kubepods-burstable-podd0511cd2_29d2_4215_be0f_f77bc0609d99.slice:cri-containerd:{HEX64[:-1]}", None),
    ("containerd.service", None),
]


@pytest.mark.parametrize(("name", "found"), FLAT_NAMES)
def test_flat_container_names(name: str, found: tuple[str, str] | None) -> None:
    assert flat_container(name) == found


@pytest.mark.parametrize("version", [1, 2])
def test_flat_containers_are_attributed_to_their_pod(tmp_path: Path, version: int) -> None:
    tree = CgroupTree(tmp_path, version=version)
    sandbox, app = container_id(1, 0), container_id(1, 1)
    tree.set_flat_container(pod_uid(1), sandbox, 2)
    tree.set_flat_container(pod_uid(1), app, 100)
    tree.set_flat_container(pod_uid(2), container_id(2), 7)
    reader = PodUsageReader(tmp_path)
    got = {p.uid: (p.usage_us, p.containers) for p in reader.read().pods}
    assert got == {pod_uid(1): (102, {sandbox: 2, app: 100}), pod_uid(2): (7, {container_id(2): 7})}
    # The app container ends: the pod's counter keeps what it had used, never steps back.
    tree.set_flat_container(pod_uid(1), app, 150)
    assert reader.read().pods[0].usage_us == 152
    shutil.rmtree(flat_container_dir(tree.hierarchy, pod_uid(1), app))
    tree.set_flat_container(pod_uid(1), sandbox, 3)
    for _ in range(2):
        assert {p.uid: (p.usage_us, p.containers) for p in reader.read().pods}[pod_uid(1)] == (
            153,
            {sandbox: 3},
        )
    # A restarted app container counts from 0 on top of what the pod used before.
    tree.set_flat_container(pod_uid(1), container_id(1, 2), 10)
    assert reader.read().pods[0].usage_us == 163
    shutil.rmtree(tmp_path / "cpu,cpuacct" if version == 1 else tmp_path / "system.slice")
    assert reader.read().pods == []


def test_flat_pods_with_names_read_the_sandbox_for_the_pod_only(tmp_path: Path) -> None:
    tree = CgroupTree(tmp_path)
    sandbox, app = container_id(1, 0), container_id(1, 1)
    tree.set_flat_container(pod_uid(1), sandbox, 2)
    tree.set_flat_container(pod_uid(1), app, 100)
    reader = PodUsageReader(tmp_path, known_containers={pod_uid(1): {app}}.get)
    assert reader.read().pods == [(pod_uid(1), 102, {app: 100})]


def test_flat_pods_only_export_no_container(tmp_path: Path) -> None:
    tree = CgroupTree(tmp_path)
    tree.set_flat_container(pod_uid(1), container_id(1, 0), 2)
    tree.set_flat_container(pod_uid(1), container_id(1, 1), 5)
    assert PodUsageReader(tmp_path, containers=False).read().pods == [(pod_uid(1), 7, {})]
