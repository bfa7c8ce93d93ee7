"""CPU time of every pod and container cgroup on the node, from cgroup v1 or v2.

Counter files stay open between passes and are re-read with pread at offset 0 (cgroupfs
regenerates a file's text on every read from its start): at a thousand pods that is one
syscall per cgroup instead of three. A pod's descriptors are dropped when it leaves the scan,
its directory was listed anew (it may be a recreated cgroup of the same path), or one of its
cgroups is found gone: its listing is then stale and is made again on the next pass (pods.py
tells why that is the signal on cgroupfs). Pods come from the kubepods tree (pods.py) and from
containers laid flat under containerd's own cgroup (flat.py).
"""

from __future__ import annotations

import errno
import logging
import os
import resource
from collections.abc import Callable, Collection
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import NamedTuple

from energyd.cgroups import v1, v2
from energyd.cgroups.flat import FlatPodScanner, FlatPodSums
from energyd.cgroups.pods import PodCgroup, PodScanner, find_kubepods

log = logging.getLogger(__name__)

_READ_BYTES = 4096


class CgroupError(Exception):
    """The cgroup root is missing or holds neither a v2 hierarchy nor a v1 cpuacct one."""


Scanner = PodScanner | FlatPodScanner


class PodUsage(NamedTuple):  # a tuple: a thousand are built per pass
    uid: str
    usage_us: int  # the pod cgroup's own counter: its containers plus the sandbox
    containers: dict[str, int]  # container id -> µs


@dataclass(frozen=True)
class UsageReading:
    pods: list[PodUsage]
    errors: int  # cgroups that could not be read or parsed during this read


def _fd_budget() -> int:
    # Keep at most half the soft descriptor limit open; past it, files are opened per read.
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 1 << 20 if soft == resource.RLIM_INFINITY else max(soft // 2 - 64, 0)


def _open(path: str) -> int | None:
    try:
        return os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None


def _close(fds: list[int | None]) -> None:
    for fd in fds:
        if fd is not None:
            os.close(fd)


def _sole_container(pod: PodCgroup, wanted: Collection[str] | None) -> str | None:
    """The pod's one app container, when the API lists exactly one and its scope is there.

    Its counter is then the pod's, less the sandbox's (a pause process that sleeps, or CRI-O's
    conmon): close enough to save the read, which is what costs at a thousand pods.
    """
    if wanted is None or len(wanted) != 1:
        return None
    [cid] = wanted
    return cid if cid in pod.container_ids else None


class PodUsageReader:
    """Reads pod and container CPU time under a cgroup mount root (v1 or v2, detected once)."""

    def __init__(
        self,
        cgroup_root: Path = Path("/sys/fs/cgroup"),
        containers: bool = True,
        known_containers: Callable[[str], Collection[str] | None] | None = None,
        max_open_files: int | None = None,
    ) -> None:
        """`known_containers(uid)`: the container ids of a pod worth reading (those the
        Kubernetes API lists, which leaves out the sandbox scope), or None to read them all. A
        pod with one known container is read at the pod level only (see _sole_container)."""
        if not cgroup_root.is_dir():
            raise CgroupError(f"cgroup root {cgroup_root} is not a readable directory")
        hierarchy: Path | None
        self._parse: Callable[[bytes], int]
        if v2.is_v2(str(cgroup_root)):
            self.version = 2
            hierarchy, self._parse, self._usage_file = cgroup_root, v2.parse_usage_us, v2.USAGE_FILE
        else:
            hierarchy = v1.find_cpuacct(cgroup_root)
            if hierarchy is None:
                raise CgroupError(
                    f"{cgroup_root} has neither cgroup.controllers (v2) nor a cpuacct hierarchy (v1)"
                )
            self.version = 1
            self._parse, self._usage_file = v1.parse_usage_us, v1.USAGE_FILE
        self.hierarchy = hierarchy  # where pods are looked for: the v2 root or the cpuacct hierarchy
        self._containers = containers
        self._known_containers = known_containers
        self._scanner: PodScanner | None = None
        self._scanners: list[Scanner] = [FlatPodScanner(hierarchy, self._usage_file)]
        self._flat_sums = FlatPodSums()
        self._missing: dict[str, frozenset[str]] = {}  # pod uid -> API containers it lacks
        self._errors = 0  # of the read under way
        self._max_open = _fd_budget() if max_open_files is None else max_open_files
        # Per pod listing (compared by identity: a relisted pod is a new object, so a
        # recreated cgroup of the same path gets fresh descriptors).
        self._open_fds: dict[PodCgroup, list[int | None]] = {}
        self._kept = 0

    def _pod_scanners(self) -> list[Scanner]:
        # kubepods appears only once the kubelet has started: look again until it exists.
        if self._scanner is None:
            kubepods = find_kubepods(self.hierarchy)
            if kubepods is not None:
                log.info("pod cgroups under %s (cgroup v%d)", kubepods, self.version)
                self._scanner = PodScanner(kubepods, self._usage_file, self._containers)
                self._scanners.insert(0, self._scanner)
        return self._scanners

    def _fds(self, pod: PodCgroup) -> tuple[list[int | None], bool]:
        """Opens the pod's usage file then its containers'; True if the descriptors are kept."""
        pod_fd = None if pod.usage_file is None else _open(pod.usage_file)
        fds = [pod_fd, *(_open(path) for _, path in pod.containers)]
        if self._kept + len(fds) > self._max_open:
            return fds, False
        self._open_fds[pod] = fds
        self._kept += len(fds)
        return fds, True

    def read(self) -> UsageReading:
        parse, open_fds, pread, apps_of = self._parse, self._open_fds, os.pread, self._known_containers
        # pread's size and offset for map(): C-level loops over a pod's descriptors, no frame each.
        sizes, offsets = repeat(_READ_BYTES), repeat(0)
        pods = []
        self._errors = 0
        scanned: list[PodCgroup] = []
        known = len(open_fds)
        for scanner in self._pod_scanners():
            pods_here = scanner.scan()
            scanned += pods_here
            for pod in pods_here:
                fds = open_fds.get(pod)
                wanted = apps_of(pod.uid) if apps_of is not None and pod.containers else None
                # Two cases kept apart for speed (the general path below handles every other, and
                # tells why a read failed): a pod the API does not name, every counter read; and
                # one whose sole app container the API names, the pod counter read for it.
                if fds is not None and pod.usage_file is not None:
                    try:
                        if wanted is None:
                            values = list(map(parse, map(pread, fds, sizes, offsets)))  # type: ignore[arg-type]
                            containers = dict(zip(pod.container_ids, values[1:], strict=True))
                            pods.append(PodUsage(pod.uid, values[0], containers))
                            continue
                        if len(wanted) == 1:
                            [cid] = wanted
                            if cid in pod.container_ids:
                                pod_us = parse(pread(fds[0], _READ_BYTES, 0))  # type: ignore[arg-type]
                                pods.append(PodUsage(pod.uid, pod_us, {cid: pod_us}))
                                continue
                    except (OSError, ValueError, TypeError):  # TypeError: a file that did not open
                        pass
                usage = self._read_pod(scanner, pod, fds, wanted)
                if usage is not None:
                    pods.append(usage)
        # Pods that left the scan (or were relisted as new objects) still hold descriptors.
        if len(open_fds) != known or known > len(scanned):
            self._forget(set(scanned))
        self._flat_sums.keep_only(scanned)
        if len(self._missing) > len(scanned):
            uids = {p.uid for p in scanned}
            self._missing = {uid: m for uid, m in self._missing.items() if uid in uids}
        return UsageReading(pods=pods, errors=self._errors)

    def _read_pod(
        self, scanner: Scanner, pod: PodCgroup, fds: list[int | None] | None, wanted: Collection[str] | None
    ) -> PodUsage | None:
        kept = True
        if fds is None:
            fds, kept = self._fds(pod)
        flat = pod.usage_file is None
        sole = None if flat else _sole_container(pod, wanted)
        # A cgroup of the listing that is gone, or a container the API runs that the listing
        # lacks: this listing is stale (a sibling may have come meanwhile).
        stale = wanted is not None and self._lacks(pod, wanted)
        values: list[int | None] = []
        for i in range(1 if sole is not None else len(fds)):
            fd = fds[i]
            if fd is None:
                values.append(None)
                stale = stale or i > 0 or not flat
                continue
            if i and not flat and wanted is not None and pod.container_ids[i - 1] not in wanted:
                values.append(None)
                continue
            try:
                values.append(self._parse(os.pread(fd, _READ_BYTES, 0)))
            except OSError as err:
                values.append(None)
                if err.errno == errno.ENODEV:  # the cgroup was removed: churn, not an error
                    stale = True
                else:
                    self._errors += 1
            except ValueError:
                values.append(None)
                self._errors += 1
        if not kept:
            _close(fds)
        elif stale:  # open the paths afresh next pass: they may hold a new cgroup by then
            self._drop(pod)
        if stale:
            scanner.invalidate(pod)
        return self._usage(pod, values, sole, wanted)

    def _lacks(self, pod: PodCgroup, wanted: Collection[str]) -> bool:
        """True once per new set of API-listed containers that the pod's listing lacks (the
        API also lists finished init containers, whose cgroups are gone for good)."""
        listed = pod.container_ids
        missing = frozenset(c for c in wanted if c not in listed)
        if not missing:
            self._missing.pop(pod.uid, None)
            return False
        if self._missing.get(pod.uid) == missing:
            return False
        self._missing[pod.uid] = missing
        return True

    def _usage(
        self, pod: PodCgroup, values: list[int | None], sole: str | None, wanted: Collection[str] | None
    ) -> PodUsage | None:
        if pod.usage_file is None:
            return self._flat_usage(pod, values, wanted)
        pod_us = values[0]
        if pod_us is None:
            return None
        if sole is not None:
            return PodUsage(pod.uid, pod_us, {sole: pod_us})
        containers = {
            cid: us for (cid, _), us in zip(pod.containers, values[1:], strict=True) if us is not None
        }
        return PodUsage(pod.uid, pod_us, containers)

    def _flat_usage(
        self, pod: PodCgroup, values: list[int | None], wanted: Collection[str] | None
    ) -> PodUsage | None:
        """No pod cgroup: the pod's time is the sum of every container's, the sandbox's included."""
        listed = {cid: us for (cid, _), us in zip(pod.containers, values[1:], strict=True)}
        containers = {cid: us for cid, us in listed.items() if us is not None}
        if not containers:
            return None
        pod_us = self._flat_sums.usage_us(pod.uid, listed)
        if not self._containers:
            containers = {}
        elif wanted is not None:
            containers = {cid: us for cid, us in containers.items() if cid in wanted}
        return PodUsage(pod.uid, pod_us, containers)

    def _drop(self, pod: PodCgroup) -> None:
        fds = self._open_fds.pop(pod)
        self._kept -= len(fds)
        _close(fds)

    def _forget(self, current: set[PodCgroup]) -> None:
        for pod in self._open_fds.keys() - current:
            self._drop(pod)

    def close(self) -> None:
        self._forget(set())
