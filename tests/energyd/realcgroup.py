"""Real cgroups for tests and the bench: made with mkdir under a name of their own on this
machine's cgroup v1 cpuacct or cgroup2 mount, and removed (deepest first) afterwards.

CI runs as root on machines with both mounts (CI=true): there a missing or read-only mount
fails the test instead of skipping it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.energyd.cgroup_trees import container_dir, flat_container_dir, pod_dir

# cpuacct on its own mount (as on the CI machines) or joined with cpu; cgroup2 beside v1
# (hybrid) or at the top (unified).
V1_MOUNTS = (Path("/sys/fs/cgroup/cpuacct"), Path("/sys/fs/cgroup/cpu,cpuacct"))
V2_MOUNTS = (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup"))


def writable_mount(version: int) -> Path | None:
    """This machine's cgroup mount of that version, if there is one we may make cgroups in."""
    for mount in V1_MOUNTS if version == 1 else V2_MOUNTS:
        marker = "cpuacct.usage" if version == 1 else "cgroup.controllers"
        if (mount / marker).is_file() and os.access(mount, os.W_OK):
            return mount
    return None


def require_mount(version: int) -> Path:
    mount = writable_mount(version)
    if mount is None:
        why = f"no writable cgroup v{version} mount here (tests make real cgroups: run as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{why}; CI machines have one")
        pytest.skip(why)
    return mount


def remove_tree(top: Path) -> None:
    """rmdir every cgroup under top, deepest first (cgroupfs refuses rmdir of a non-empty one).
    A process that was just killed may take a moment to leave its cgroup: EBUSY is retried."""
    dirs = sorted((Path(d) for d, _, _ in os.walk(top)), key=lambda p: len(p.parts), reverse=True)
    for d in dirs:
        for attempt in range(50):
            try:
                d.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                if attempt == 49:
                    raise
                time.sleep(0.02)


@contextlib.contextmanager
def real_cgroup_root(version: int, workdir: Path) -> Iterator[tuple[Path, Path]]:
    """(what to pass as --cgroup-root, the hierarchy where pods go), backed by a fresh cgroup.

    v1: a directory laid out like /sys/fs/cgroup whose `cpuacct` is a link to the fresh cgroup
    in the real cpuacct mount, so energyd finds the hierarchy as it does at /sys/fs/cgroup.
    v2: the fresh cgroup itself (it has cgroup.controllers, as a cgroup2 mount root does).
    """
    top = require_mount(version) / f"energyd-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    top.mkdir()
    try:
        if version == 1:
            root = workdir / "cgroup"
            root.mkdir()
            (root / "cpuacct").symlink_to(top)
            yield root, top
        else:
            yield top, top
    finally:
        remove_tree(top)


class RealPods:
    """Pod and container cgroups made and removed with mkdir/rmdir, as the kubelet and runc do."""

    def __init__(self, hierarchy: Path, driver: str = "systemd", runtime: str = "containerd") -> None:
        self.hierarchy = hierarchy
        self.driver = driver
        self.runtime = runtime

    def pod(self, uid: str, qos: str = "burstable") -> Path:
        return pod_dir(self.hierarchy, self.driver, uid, qos)

    def container(self, uid: str, cid: str, qos: str = "burstable") -> Path:
        if self.driver == "flat":
            return flat_container_dir(self.hierarchy, uid, cid, qos)
        return container_dir(self.pod(uid, qos), self.driver, self.runtime, cid)

    def add_pod(self, uid: str, qos: str = "burstable") -> Path:
        path = self.pod(uid, qos)
        path.mkdir(parents=True, exist_ok=self.driver == "flat")
        return path

    def add_container(self, uid: str, cid: str, qos: str = "burstable") -> Path:
        path = self.container(uid, cid, qos)
        path.mkdir(parents=self.driver == "flat")
        return path

    def remove(self, path: Path) -> None:
        remove_tree(path)


class Burner:
    """A child process that burns CPU on request, placed in a cgroup through cgroup.procs."""

    def __init__(self, cgroup: Path) -> None:
        code = (
            "import sys, time\n"
            "for line in sys.stdin:\n"
            "    end = time.process_time() + float(line)\n"
            "    while time.process_time() < end: pass\n"
            "    print('done', flush=True)\n"
        )
        self._proc = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        (cgroup / "cgroup.procs").write_text(f"{self._proc.pid}\n")

    def burn(self, cpu_s: float) -> None:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(f"{cpu_s}\n")
        self._proc.stdin.flush()
        assert self._proc.stdout.readline() == "done\n"

    def stop(self) -> None:
        self._proc.kill()
        self._proc.wait()
        for stream in (self._proc.stdin, self._proc.stdout):
            if stream is not None:
                stream.close()
