"""Kubepods cgroup layout: which directories are pods and containers, and which pod uid they hold.

Both kubelet cgroup drivers are understood:

- systemd: ``kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid>.slice/<runtime>-<id>.scope``
  (the uid's '-' are '_' in unit names); guaranteed pods sit directly under ``kubepods.slice``;
  kind nests everything one level deeper under ``kubelet.slice/kubelet-kubepods.slice``.
- cgroupfs: ``kubepods/<qos>/pod<uid>/<id>`` (guaranteed: ``kubepods/pod<uid>/<id>``).

The scanner re-lists a directory only when its mtime changed: creating or removing a child
cgroup updates the parent's mtime, so a steady node costs one stat per pod per scan. File
system clocks are coarse (a kernel tick), so a listing taken within a second of the mtime is
not trusted: a child created in the same tick would leave the mtime unchanged.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

QOS_CLASSES = ("burstable", "besteffort")

# Relative to a cgroup hierarchy root; the first that exists is the kubepods root.
KUBEPODS_DIRS = (
    "kubepods.slice",
    "kubepods",
    "kubelet.slice/kubelet-kubepods.slice",
    "kubelet/kubepods",
)

_UID = r"[0-9a-fA-F]{8}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{12}"
_POD_RE = re.compile(rf"^(?:.*-)?pod({_UID})(?:\.slice)?$")
_CONTAINER_RE = re.compile(r"^(?:(?:cri-containerd|crio|docker|libpod)-)?([0-9a-f]{64})(?:\.scope)?$")


def pod_uid_from_name(name: str) -> str | None:
    """The pod uid in a pod cgroup's directory name, with systemd's '_' mapped back to '-'."""
    match = _POD_RE.match(name)
    return match.group(1).replace("_", "-").lower() if match else None


def container_id_from_name(name: str) -> str | None:
    """The container id in a container cgroup's directory name (containerd, CRI-O, docker, podman)."""
    match = _CONTAINER_RE.match(name)
    return match.group(1) if match else None


def find_kubepods(hierarchy: Path) -> Path | None:
    """The kubepods directory inside one cgroup hierarchy, or None when this node runs no pods."""
    for rel in KUBEPODS_DIRS:
        candidate = hierarchy / rel
        if candidate.is_dir():
            return candidate
    return None


@dataclass(frozen=True, eq=False)  # compared by identity: each listing is a new object
class PodCgroup:
    uid: str
    usage_file: str  # the pod cgroup's CPU usage file
    containers: tuple[tuple[str, str], ...]  # (container id, its usage file)
    listing: int  # changes whenever the directory was listed anew (it may have been recreated)


def _subdirs(path: str) -> list[str]:
    try:
        with os.scandir(path) as entries:
            return [e.name for e in entries if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []


_SETTLED_NS = 1_000_000_000


def _mtime_ns(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


class PodScanner:
    """Lists the pod and container cgroups under one kubepods directory, cheaply on repeat."""

    def __init__(self, kubepods: Path, usage_file: str, containers: bool = True) -> None:
        self._root = str(kubepods)
        self._usage_file = usage_file
        # Without containers a pod directory's contents never matter: no per-pod stat at all.
        self._containers = containers
        self._listings = 0
        # Directory path -> (mtime when listed, its pod dirs or its pod); only settled listings.
        self._parents: dict[str, tuple[int, list[str]]] = {}
        self._pods: dict[str, tuple[int, PodCgroup]] = {}

    def _pod_parents(self) -> list[str]:
        parents = [self._root]
        for name in _subdirs(self._root):
            if name in QOS_CLASSES or any(name.endswith(f"-{qos}.slice") for qos in QOS_CLASSES):
                parents.append(os.path.join(self._root, name))
        return parents

    def _pod_dirs(self, parent: str) -> list[str]:
        mtime = _mtime_ns(parent)
        if mtime is None:
            self._parents.pop(parent, None)
            return []
        cached = self._parents.get(parent)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        listed_ns = time.time_ns()
        dirs = [os.path.join(parent, n) for n in _subdirs(parent) if pod_uid_from_name(n) is not None]
        if listed_ns - mtime > _SETTLED_NS:
            self._parents[parent] = (mtime, dirs)
        return dirs

    def _list_pod(self, path: str, mtime: int) -> PodCgroup | None:
        uid = pod_uid_from_name(os.path.basename(path))
        if uid is None:
            return None
        listed_ns = time.time_ns()
        containers = []
        for name in sorted(_subdirs(path)) if self._containers else ():
            cid = container_id_from_name(name)
            if cid is not None:
                containers.append((cid, os.path.join(path, name, self._usage_file)))
        self._listings += 1
        pod = PodCgroup(uid, os.path.join(path, self._usage_file), tuple(containers), self._listings)
        if not self._containers or listed_ns - mtime > _SETTLED_NS:
            self._pods[path] = (mtime, pod)
        return pod

    def scan(self) -> list[PodCgroup]:
        """Every pod cgroup now present. A pod whose directory vanished mid-scan is left out."""
        stat, cache, with_containers = os.stat, self._pods, self._containers
        pods = []
        paths = []
        in_cache = 0
        for parent in self._pod_parents():
            for path in self._pod_dirs(parent):
                mtime = 0
                if with_containers:
                    try:
                        mtime = stat(path).st_mtime_ns
                    except OSError:
                        continue
                cached = cache.get(path)
                if cached is not None and cached[0] == mtime:
                    pod: PodCgroup | None = cached[1]
                    in_cache += 1
                else:
                    pod = self._list_pod(path, mtime)
                    in_cache += path in cache
                if pod is not None:
                    pods.append(pod)
                    paths.append(path)
        if len(cache) > in_cache:  # some cached pods were not met: they are gone
            for gone in cache.keys() - set(paths):
                del cache[gone]
        return pods
