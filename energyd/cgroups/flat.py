"""Pods whose containers sit flat under the runtime's own cgroup, with no pod cgroup.

When the kubelet uses the systemd cgroup driver and containerd's runc does not, runc receives
systemd's ``slice:prefix:name`` cgroup path, takes it for a relative cgroupfs path and creates
one directory per container (the sandbox's too) below containerd's own cgroup:
``system.slice/containerd.service/kubepods-burstable-pod<uid_>.slice:cri-containerd:<id>``
(seen in containerd issue #5226 and Kepler's cgroup path table). Where containerd's cgroup is
in a v1 hierarchy depends on that controller's accounting, so the likely parents are all
looked at. The pod's CPU time is the sum of its containers', kept monotonic by `FlatPodSums`
across containers that come and go.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from energyd.cgroups.pods import RUNTIME_PREFIXES, ListingCache, PodCgroup, pod_uid_from_name

# Relative to a cgroup hierarchy root: where a runtime's own cgroup may hold such directories.
RUNTIME_CGROUPS = ("system.slice/containerd.service", "system.slice", ".")

_FLAT_RE = re.compile(rf"^([^:]+\.slice):(?:{RUNTIME_PREFIXES}):([0-9a-f]{{64}})$")


def flat_container(name: str) -> tuple[str, str] | None:
    """(pod uid, container id) of a ``<pod slice>:<runtime>:<id>`` directory name."""
    match = _FLAT_RE.match(name)
    if match is None:
        return None
    uid = pod_uid_from_name(match.group(1))
    return None if uid is None else (uid, match.group(2))


class FlatPodScanner:
    """Finds flat container cgroups in the runtime cgroups of one hierarchy, grouped by pod."""

    def __init__(self, hierarchy: Path, usage_file: str) -> None:
        self._parents = [os.path.normpath(hierarchy / rel) for rel in RUNTIME_CGROUPS]
        self._usage_file = usage_file
        self._dirs = ListingCache()
        self._listings = 0
        self._pods: dict[str, list[PodCgroup]] = {}  # parent -> its pods, while its listing holds
        self._names: dict[str, list[str]] = {}

    def scan(self) -> list[PodCgroup]:
        pods: list[PodCgroup] = []
        for parent in self._parents:
            names = self._dirs.subdirs(parent)
            if names is None:
                continue
            if self._names.get(parent) is not names:  # listed anew: regroup
                self._names[parent] = names
                self._pods[parent] = self._group(parent, names)
            pods += self._pods[parent]
        return pods

    def _group(self, parent: str, names: list[str]) -> list[PodCgroup]:
        by_uid: dict[str, list[tuple[str, str]]] = {}
        for name in sorted(names):
            found = flat_container(name)
            if found is not None:
                by_uid.setdefault(found[0], []).append(
                    (found[1], os.path.join(parent, name, self._usage_file))
                )
        self._listings += 1
        return [PodCgroup(uid, None, tuple(c), self._listings, parent) for uid, c in by_uid.items()]

    def invalidate(self, pod: PodCgroup) -> None:
        self._dirs.forget(pod.path)


class FlatPodSums:
    """A flat pod's CPU time: what its containers read now plus what the gone ones had read, so
    that the pod's counter never steps back when a container goes (a step back would be taken
    for a recreated cgroup counting from 0)."""

    def __init__(self) -> None:
        self._last: dict[str, dict[str, int]] = {}  # uid -> container id -> µs at its last read
        self._retired_us: dict[str, int] = {}

    def usage_us(self, uid: str, listed: dict[str, int | None]) -> int:
        """`listed`: every container of the pod's listing, with its reading (None: unreadable
        this pass, so its last reading stands in)."""
        last = self._last.get(uid, {})
        retired = self._retired_us.get(uid, 0)
        for cid, us in last.items():
            if cid not in listed:
                retired += us
        now = {cid: us if us is not None else last.get(cid, 0) for cid, us in listed.items()}
        self._last[uid] = now
        self._retired_us[uid] = retired
        return retired + sum(now.values())

    def keep_only(self, scanned: list[PodCgroup]) -> None:
        """Forgets the pods not in this scan."""
        if not self._last:
            return
        for uid in self._last.keys() - {p.uid for p in scanned if p.usage_file is None}:
            del self._last[uid]
            self._retired_us.pop(uid, None)
