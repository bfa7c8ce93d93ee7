"""Writers of kubepods cgroup trees (v1 and v2, systemd and cgroupfs drivers) for tests and bench.

The layouts follow real nodes (Kepler's cgroup path table and its v2 test tree): systemd unit
names carry the pod uid with '_' for '-', guaranteed pods sit directly under kubepods.
"""

from __future__ import annotations

import shutil
from pathlib import Path

RUNTIME_PREFIX = {"containerd": "cri-containerd-", "crio": "crio-", "docker": "docker-"}


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
        qos = self._qos[uid]
        if self.driver == "systemd":
            base = self.hierarchy / "kubepods.slice"
            unit_uid = uid.replace("-", "_")
            if qos == "guaranteed":
                return base / f"kubepods-pod{unit_uid}.slice"
            return base / f"kubepods-{qos}.slice" / f"kubepods-{qos}-pod{unit_uid}.slice"
        base = self.hierarchy / "kubepods"
        return base / f"pod{uid}" if qos == "guaranteed" else base / qos / f"pod{uid}"

    def container_dir(self, uid: str, container_id: str) -> Path:
        if self.driver == "systemd":
            return self.pod_dir(uid) / f"{RUNTIME_PREFIX[self.runtime]}{container_id}.scope"
        return self.pod_dir(uid) / container_id

    def _write_usage(self, directory: Path, usage_us: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        if self.version == 2:
            text = (
                f"usage_usec {usage_us}\nuser_usec {usage_us // 2}\nsystem_usec {usage_us - usage_us // 2}\n"
            )
            (directory / "cpu.stat").write_text(text + "nr_periods 0\nnr_throttled 0\nthrottled_usec 0\n")
        else:
            (directory / "cpuacct.usage").write_text(f"{usage_us * 1000}\n")

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
