"""CPU time of every pod and container cgroup on the node, from cgroup v1 or v2."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from energyd.cgroups import v1, v2
from energyd.cgroups.pods import PodScanner, find_kubepods

log = logging.getLogger(__name__)


class CgroupError(Exception):
    """The cgroup root is missing or holds neither a v2 hierarchy nor a v1 cpuacct one."""


@dataclass(frozen=True)
class PodUsage:
    uid: str
    usage_us: int  # the pod cgroup's own counter: its containers plus the sandbox
    containers: dict[str, int] = field(default_factory=dict)  # container id -> µs


@dataclass(frozen=True)
class UsageReading:
    pods: list[PodUsage]
    errors: int  # cgroups that vanished or could not be parsed during this read


class PodUsageReader:
    """Reads pod and container CPU time under a cgroup mount root (v1 or v2, detected once)."""

    def __init__(self, cgroup_root: Path = Path("/sys/fs/cgroup")) -> None:
        if not cgroup_root.is_dir():
            raise CgroupError(f"cgroup root {cgroup_root} is not a readable directory")
        hierarchy: Path | None
        self._read: Callable[[str], int]
        if v2.is_v2(str(cgroup_root)):
            self.version = 2
            hierarchy, self._read = cgroup_root, v2.read_usage_us
        else:
            hierarchy = v1.find_cpuacct(cgroup_root)
            if hierarchy is None:
                raise CgroupError(
                    f"{cgroup_root} has neither cgroup.controllers (v2) nor a cpuacct hierarchy (v1)"
                )
            self.version = 1
            self._read = v1.read_usage_us
        self._hierarchy = hierarchy
        self._scanner: PodScanner | None = None

    def _pod_scanner(self) -> PodScanner | None:
        # kubepods appears only once the kubelet has started: look again until it exists.
        if self._scanner is None:
            kubepods = find_kubepods(self._hierarchy)
            if kubepods is not None:
                log.info("pod cgroups under %s (cgroup v%d)", kubepods, self.version)
                self._scanner = PodScanner(kubepods)
        return self._scanner

    def read(self) -> UsageReading:
        scanner = self._pod_scanner()
        if scanner is None:
            return UsageReading(pods=[], errors=0)
        read = self._read
        pods = []
        errors = 0
        for pod in scanner.scan():
            try:
                pod_us = read(pod.path)
            except FileNotFoundError:  # removed since the scan: churn, not an error
                continue
            except (OSError, ValueError):
                errors += 1
                continue
            containers = {}
            for cid, path in pod.containers:
                try:
                    containers[cid] = read(path)
                except FileNotFoundError:
                    pass
                except (OSError, ValueError):
                    errors += 1
            pods.append(PodUsage(uid=pod.uid, usage_us=pod_us, containers=containers))
        return UsageReading(pods=pods, errors=errors)
