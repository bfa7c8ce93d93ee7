"""Kubepods cgroup layout: which directories are pods and containers, and which pod uid they hold.

Both kubelet cgroup drivers are understood:

- systemd: ``kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid>.slice/<runtime>-<id>.scope``
  (the uid's '-' are '_' in unit names); guaranteed pods sit directly under ``kubepods.slice``;
  kind nests everything one level deeper under ``kubelet.slice/kubelet-kubepods.slice``.
- cgroupfs: ``kubepods/<qos>/pod<uid>/<id>`` (guaranteed: ``kubepods/pod<uid>/<id>``).

A directory is re-listed when its `stat` differs from the one taken when it was listed (inode,
link count, mtime), or when the reader found that a cgroup it listed is gone
(`PodScanner.invalidate`). On cgroupfs the link count is what moves: kernfs (cgroup v1 and v2)
leaves a cgroup directory's mtime alone on mkdir and rmdir unless an attribute was once set on
it, while its link count is 2 + its subdirectories at every moment; the inode tells a cgroup
recreated at the same path. A child removed and another created within one interval leave the
count as it was; the removed one's counter then fails to read (ENODEV) or open, or its directory
fails to stat, and the parent is listed again on the next pass. So a cgroup created at any time
is found within two passes, and a steady node costs one stat per pod every other pass.
"""

from __future__ import annotations

import functools
import os
import re
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
RUNTIME_PREFIXES = "cri-containerd|crio|docker|libpod"
_CONTAINER_RE = re.compile(rf"^(?:(?:{RUNTIME_PREFIXES})-)?([0-9a-f]{{64}})(?:\.scope)?$")
_QOS_SLICES = tuple(f"-{qos}.slice" for qos in QOS_CLASSES)


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
    usage_file: str | None  # the pod cgroup's CPU usage file; None: no pod cgroup (see flat.py)
    containers: tuple[tuple[str, str], ...]  # (container id, its usage file)
    listing: int  # changes whenever the directory was listed anew (it may have been recreated)
    path: str  # the directory whose listing this is

    @functools.cached_property
    def container_ids(self) -> tuple[str, ...]:
        return tuple(cid for cid, _ in self.containers)


def subdirs(path: str) -> list[str]:
    """The names of a directory's subdirectories; none when it cannot be listed (it went)."""
    try:
        with os.scandir(path) as entries:
            return [e.name for e in entries if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []


DirKey = tuple[int, int, int]  # (inode, link count, mtime ns)


def dir_key(path: str) -> DirKey | None:
    """What tells a directory's listing is still good, or None when the directory is gone."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_nlink, st.st_mtime_ns)


def cacheable(key: DirKey) -> bool:
    # Some file systems (btrfs, overlayfs merged directories) report a link count of 1 whatever
    # the contents: their listings cannot be cached.
    return key[1] >= 2


class ListingCache:
    """Directory listings, kept while the directory's key (dir_key) stays what it was when listed."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[DirKey, list[str]]] = {}

    def subdirs(self, path: str) -> list[str] | None:
        """Its subdirectory names, listed anew only when needed; None when it is gone."""
        key = dir_key(path)
        if key is None:
            self._entries.pop(path, None)
            return None
        cached = self._entries.get(path)
        if cached is not None and cached[0] == key:
            return cached[1]
        # The key is taken before listing: a child made in between is in this listing, and the
        # key differs next pass, which only costs a second listing.
        names = subdirs(path)
        if cacheable(key):
            self._entries[path] = (key, names)
        return names

    def forget(self, path: str) -> None:
        self._entries.pop(path, None)


class PodScanner:
    """Lists the pod and container cgroups under one kubepods directory, cheaply on repeat."""

    def __init__(self, kubepods: Path, usage_file: str, containers: bool = True) -> None:
        self._root = str(kubepods)
        self._usage_file = usage_file
        # Without containers a pod directory's contents never matter: no per-pod stat at all.
        self._containers = containers
        self._listings = 0
        self._dirs = ListingCache()  # kubepods and its QoS directories
        self._derived: dict[str, tuple[list[str], list[str], list[str]]] = {}
        # Pod path -> (its key, its listing, on which passes its key is checked: odd or even).
        self._pods: dict[str, tuple[DirKey | None, PodCgroup, int]] = {}
        self._passes = 0

    def _pods_in(self, parent: str) -> tuple[list[str], list[str]]:
        """(pod directories, QoS directories) in parent, derived anew only when listed anew."""
        names = self._dirs.subdirs(parent) or []
        derived = self._derived.get(parent)
        if derived is not None and derived[0] is names:
            return derived[1], derived[2]
        pods = [os.path.join(parent, n) for n in names if _POD_RE.match(n)]
        qos = [os.path.join(parent, n) for n in names if n in QOS_CLASSES or n.endswith(_QOS_SLICES)]
        self._derived[parent] = (names, pods, qos)
        return pods, qos

    def _pod_dirs(self) -> list[str]:
        pods, qos_dirs = self._pods_in(self._root)
        found = list(pods)
        for parent in qos_dirs:
            found += self._pods_in(parent)[0]
        return found

    def _list_pod(self, path: str, key: DirKey | None) -> PodCgroup | None:
        uid = pod_uid_from_name(os.path.basename(path))
        if uid is None:
            return None
        containers = []
        for name in sorted(subdirs(path)) if self._containers else ():
            cid = container_id_from_name(name)
            if cid is not None:
                containers.append((cid, os.path.join(path, name, self._usage_file)))
        self._listings += 1
        pod = PodCgroup(uid, os.path.join(path, self._usage_file), tuple(containers), self._listings, path)
        if key is None or cacheable(key):
            self._pods[path] = (key, pod, self._listings & 1)
        return pod

    def scan(self) -> list[PodCgroup]:
        """Every pod cgroup now present. A pod whose directory vanished mid-scan is left out.

        A listed pod directory is checked (one stat) every other pass, half of them on each:
        a container made just after a check is found on the next pass but one, within the two
        passes promised; a gone cgroup makes its pod listed on the very next pass (invalidate).
        """
        stat, cache, with_containers = os.stat, self._pods, self._containers
        self._passes += 1
        turn = self._passes & 1
        pods = []
        in_cache = 0
        for path in self._pod_dirs():
            cached = cache.get(path)
            if cached is not None and (not with_containers or cached[2] != turn):
                pod: PodCgroup | None = cached[1]
                in_cache += 1
            else:
                key: DirKey | None = None
                if with_containers:
                    try:
                        st = stat(path)
                    except OSError:  # gone: a sibling may have come in its place, unseen by the count
                        self._dirs.forget(os.path.dirname(path))
                        continue
                    key = (st.st_ino, st.st_nlink, st.st_mtime_ns)
                if cached is not None and cached[0] == key:
                    pod = cached[1]
                    in_cache += 1
                else:
                    pod = self._list_pod(path, key)
                    in_cache += path in cache
            if pod is not None:
                pods.append(pod)
        if len(cache) > in_cache:  # some cached pods were not met: they are gone
            for gone in cache.keys() - {p.path for p in pods}:
                del cache[gone]
        return pods

    def invalidate(self, pod: PodCgroup) -> None:
        """A cgroup of this listing is gone: list the pod and its parent again next pass (a
        sibling may have been created in the same interval, leaving the link count unchanged)."""
        self._pods.pop(pod.path, None)
        self._dirs.forget(os.path.dirname(pod.path))
