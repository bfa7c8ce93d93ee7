"""Writers of kubepods cgroup trees (v1 and v2, systemd and cgroupfs drivers) for tests and bench.

The layouts follow real nodes (Kepler's cgroup path table and its v2 test tree): systemd unit
names carry the pod uid with '_' for '-', guaranteed pods sit directly under kubepods.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from energyd.config import Roots
from tests.energyd.fixture_trees import write_powercap_zone, write_proc_stat

RUNTIME_PREFIX = {"containerd": "cri-containerd-", "crio": "crio-", "docker": "docker-"}


def pod_dir(hierarchy: Path, driver: str, uid: str, qos: str = "burstable") -> Path:
    """Where the kubelet puts a pod's cgroup in one hierarchy, with the systemd or cgroupfs driver."""
    if driver == "systemd":
        base = hierarchy / "kubepods.slice"
        unit_uid = uid.replace("-", "_")
        if qos == "guaranteed":
            return base / f"kubepods-pod{unit_uid}.slice"
        return base / f"kubepods-{qos}.slice" / f"kubepods-{qos}-pod{unit_uid}.slice"
    base = hierarchy / "kubepods"
    return base / f"pod{uid}" if qos == "guaranteed" else base / qos / f"pod{uid}"


def container_dir(pod: Path, driver: str, runtime: str, container_id: str) -> Path:
    if driver == "systemd":
        return pod / f"{RUNTIME_PREFIX[runtime]}{container_id}.scope"
    return pod / container_id


def flat_container_dir(hierarchy: Path, uid: str, container_id: str, qos: str = "burstable") -> Path:
    """A container cgroup as runc makes it from a systemd-style path when it is not using systemd
    itself: flat under containerd's own cgroup, named ``<pod slice>:cri-containerd:<id>`` (the
    shape of containerd issue #5226 and of Kepler's cgroup path table)."""
    unit_uid = uid.replace("-", "_")
    pod_slice = (
        f"kubepods-pod{unit_uid}.slice" if qos == "guaranteed" else f"kubepods-{qos}-pod{unit_uid}.slice"
    )
    return hierarchy / "system.slice/containerd.service" / f"{pod_slice}:cri-containerd:{container_id}"


class CgroupTree:
    """A fake cgroup mount: pods and containers whose CPU counters a test sets at will."""

    def __init__(
        self, root: Path, version: int = 2, driver: str = "systemd", runtime: str = "containerd"
    ) -> None:
        self.root = root
        self.version = version
        self.driver = driver
        self.runtime = runtime
        if version == 2:
            root.mkdir(parents=True, exist_ok=True)
            (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
            self.hierarchy = root
        else:
            # The joined mount with the usual cpuacct symlink beside it.
            self.hierarchy = root / "cpu,cpuacct"
            self.hierarchy.mkdir(parents=True, exist_ok=True)
            (root / "cpuacct").symlink_to("cpu,cpuacct")
            (self.hierarchy / "cpuacct.usage").write_text("0\n")
        self._qos: dict[str, str] = {}

    def pod_dir(self, uid: str) -> Path:
        return pod_dir(self.hierarchy, self.driver, uid, self._qos[uid])

    def container_dir(self, uid: str, container_id: str) -> Path:
        return container_dir(self.pod_dir(uid), self.driver, self.runtime, container_id)

    def set_flat_container(self, uid: str, container_id: str, usage_us: int) -> None:
        self._write_usage(flat_container_dir(self.hierarchy, uid, container_id), usage_us)

    def _write_usage(self, directory: Path, usage_us: int) -> None:
        # Fixed-width values overwritten in place by one pwrite: a concurrent reader (the daemon
        # under test) never sees a truncated file, and the directory's mtime stays put as on a
        # real cgroupfs, where counters change without touching the directory.
        directory.mkdir(parents=True, exist_ok=True)
        if self.version == 2:
            name = "cpu.stat"
            user = usage_us // 2
            data = f"usage_usec {usage_us:020d}\nuser_usec {user:020d}\nsystem_usec {usage_us - user:020d}\n"
            data += "nr_periods 0\nnr_throttled 0\nthrottled_usec 0\n"
        else:
            name = "cpuacct.usage"
            data = f"{usage_us * 1000:024d}\n"
        fd = os.open(directory / name, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.pwrite(fd, data.encode(), 0)
        finally:
            os.close(fd)

    def set_pod(self, uid: str, usage_us: int, qos: str = "burstable") -> None:
        self._qos.setdefault(uid, qos)
        self._write_usage(self.pod_dir(uid), usage_us)

    def set_container(self, uid: str, container_id: str, usage_us: int) -> None:
        self._write_usage(self.container_dir(uid, container_id), usage_us)

    def remove_pod(self, uid: str) -> None:
        shutil.rmtree(self.pod_dir(uid))
        del self._qos[uid]

    def remove_container(self, uid: str, container_id: str) -> None:
        shutil.rmtree(self.container_dir(uid, container_id))


def pod_uid(i: int) -> str:
    return f"{i:08x}-0000-4000-8000-{i:012x}"


def container_id(i: int, j: int = 0) -> str:
    return f"{i:056x}{j:08x}"


class NodeTree:
    """A whole fake node under one directory: sys/ (one RAPL package zone), proc/stat, cgroup/.

    Tests and the bench advance its counters while energyd reads it through its --*-root flags,
    so every write is one the reader can never see half done: energy_uj is rewritten in place at
    a fixed width (the powercap source keeps it open), /proc/stat is replaced by a rename.
    """

    USER_HZ = 100

    def __init__(self, root: Path, max_range_uj: int | None = 262143328850, **cgroup: Any) -> None:
        self.roots = Roots(sysfs=root / "sys", procfs=root / "proc", cgroup=root / "cgroup")
        self.cgroups = CgroupTree(self.roots.cgroup, **cgroup)
        self.max_range_uj = max_range_uj
        self._staging = root / "staging"
        zone = write_powercap_zone(self.roots.sysfs, 0, "package-0", 0, max_range_uj)
        self._energy_file = zone / "energy_uj"
        self.set_energy_uj(0)
        self.set_cpu(busy_s=0.0, idle_s=0.0)

    def set_energy_uj(self, energy_uj: int) -> None:
        """Cumulative energy as the hardware counts it: wrapped at max_range_uj (if any)."""
        if self.max_range_uj is not None:
            energy_uj %= self.max_range_uj
        fd = os.open(self._energy_file, os.O_WRONLY)
        try:
            os.pwrite(fd, f"{energy_uj:020d}\n".encode(), 0)
        finally:
            os.close(fd)

    def set_cpu(self, busy_s: float, idle_s: float) -> None:
        # Busy time split between user and system so that a parser that skips a column fails.
        user = round(busy_s * self.USER_HZ * 0.75)
        system = round(busy_s * self.USER_HZ) - user
        staged = write_proc_stat(self._staging, user=user, system=system, idle=round(idle_s * self.USER_HZ))
        self.roots.procfs.mkdir(parents=True, exist_ok=True)
        os.replace(staged, self.roots.procfs / "stat")
