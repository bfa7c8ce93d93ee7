"""A simulated node on disk: a cgroup v2 kubepods tree and a /proc/stat, laid out as a real
node's, so that energyd reads them through its normal code path (--cgroup-root, --procfs-root).

The layout is the systemd cgroup driver's (``kubepods.slice/kubepods-burstable.slice/
kubepods-burstable-pod<uid>.slice/cri-containerd-<id>.scope``), one container per pod. Each pod's
and container's ``cpu.stat`` holds its cumulative ``usage_usec``; ``proc/stat`` holds the node's
CPU time in USER_HZ ticks: pods and a little system time are busy (user and system columns), the
rest of ``cpus`` x elapsed time is idle. So, over any interval, pods + system + idle = node.

cpu.stat files are rewritten in place at a fixed width, never replaced: energyd keeps them open
between passes and re-reads the same descriptor, which a new inode would leave stale. proc/stat
is opened anew on every read, so it is replaced atomically.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from energyd.procstat import USER_HZ

KUBEPODS = Path("kubepods.slice") / "kubepods-burstable.slice"
_US_PER_S = 1_000_000
_COUNTER_DIGITS = 20  # fixed width: a rewrite never leaves a longer old tail behind


@dataclass
class _Pod:
    uid: str
    container_id: str
    pod_fd: int
    container_fd: int
    usage_us: float = 0.0


def _cpu_stat(usage_us: int) -> bytes:
    return (
        f"usage_usec {usage_us:0{_COUNTER_DIGITS}d}\n"
        f"user_usec {usage_us:0{_COUNTER_DIGITS}d}\n"
        f"system_usec {0:0{_COUNTER_DIGITS}d}\n"
    ).encode()


def pod_dir_name(uid: str) -> str:
    """The systemd driver's unit name: the uid's '-' become '_'."""
    return f"kubepods-burstable-pod{uid.replace('-', '_')}.slice"


class NodeTree:
    """Owns `root`/cgroup and `root`/proc. Not thread-safe: one writer calls add/remove/advance."""

    def __init__(self, root: Path, cpus: int = 16) -> None:
        if cpus < 1:
            raise ValueError(f"a node needs at least one CPU, got {cpus}")
        self.cgroup_root = root / "cgroup"
        self.procfs_root = root / "proc"
        self.cpus = cpus
        self._pods: dict[str, _Pod] = {}
        # Cumulative CPU-seconds of the node summed over CPUs (user = pods, system, idle).
        self._user_s = 0.0
        self._system_s = 0.0
        self._idle_s = 0.0
        (self.cgroup_root / KUBEPODS).mkdir(parents=True, exist_ok=True)
        (self.cgroup_root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
        self.procfs_root.mkdir(parents=True, exist_ok=True)
        self._write_proc_stat()

    @property
    def pods(self) -> list[str]:
        return list(self._pods)

    def add_pod(self, uid: str | None = None) -> str:
        """Creates a pod cgroup with one container, both at 0 µs; returns the pod's uid."""
        uid = uid or str(uuid.uuid4())
        container_id = uuid.uuid4().hex + uuid.uuid4().hex
        pod_dir = self.cgroup_root / KUBEPODS / pod_dir_name(uid)
        container_dir = pod_dir / f"cri-containerd-{container_id}.scope"
        container_dir.mkdir(parents=True)
        fds = []
        for directory in (pod_dir, container_dir):
            fd = os.open(directory / "cpu.stat", os.O_RDWR | os.O_CREAT, 0o644)
            os.pwrite(fd, _cpu_stat(0), 0)
            fds.append(fd)
        self._pods[uid] = _Pod(uid, container_id, fds[0], fds[1])
        return uid

    def container_id(self, uid: str) -> str:
        return self._pods[uid].container_id

    def remove_pod(self, uid: str) -> None:
        pod = self._pods.pop(uid)
        os.close(pod.pod_fd)
        os.close(pod.container_fd)
        shutil.rmtree(self.cgroup_root / KUBEPODS / pod_dir_name(uid))

    def advance(self, elapsed_s: float, pod_cpu_s: dict[str, float], system_cpu_s: float = 0.0) -> None:
        """`elapsed_s` of wall time passed, in which each pod used `pod_cpu_s[uid]` CPU-seconds and
        the node's own processes `system_cpu_s`. Busy time beyond the node's CPUs is clipped,
        pods first, as a saturated node would run them slower."""
        capacity_s = self.cpus * max(elapsed_s, 0.0)
        wanted_s = sum(max(s, 0.0) for s in pod_cpu_s.values())
        pods_s = min(wanted_s, capacity_s)
        scale = pods_s / wanted_s if wanted_s > 0 else 0.0
        system_s = min(max(system_cpu_s, 0.0), capacity_s - pods_s)
        for uid, cpu_s in pod_cpu_s.items():
            pod = self._pods[uid]
            pod.usage_us += max(cpu_s, 0.0) * scale * _US_PER_S
            data = _cpu_stat(int(pod.usage_us))
            os.pwrite(pod.pod_fd, data, 0)
            os.pwrite(pod.container_fd, data, 0)
        self._user_s += pods_s
        self._system_s += system_s
        self._idle_s += capacity_s - pods_s - system_s
        self._write_proc_stat()

    def _write_proc_stat(self) -> None:
        def line(name: str, share: float) -> str:
            user, system, idle = (
                round(s * share * USER_HZ) for s in (self._user_s, self._system_s, self._idle_s)
            )
            return f"{name} {user} 0 {system} {idle} 0 0 0 0 0 0\n"

        text = line("cpu ", 1.0) + "".join(line(f"cpu{i}", 1.0 / self.cpus) for i in range(self.cpus))
        path = self.procfs_root / "stat"
        tmp = path.with_name("stat.tmp")
        tmp.write_text(text + "intr 0\nctxt 0\nbtime 0\nprocesses 0\n", encoding="ascii")
        os.replace(tmp, path)

    def close(self) -> None:
        for pod in self._pods.values():
            os.close(pod.pod_fd)
            os.close(pod.container_fd)
        self._pods.clear()
