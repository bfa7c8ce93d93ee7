"""One sampling pass: read energy, node CPU and pod CPU, attribute, accumulate. Owns all state.

Counters only ever grow: zone deltas go through delta_uj (wraps at max_energy_range_uj, resets
of a restarted source), a cgroup counter that went backwards was recreated and counts from 0,
and a pod seen for the first time gets the CPU time it used since it appeared (at most one
interval's worth: more means it predates the previous reading, so it counts 0). When a read
fails the interval is not attributed and the previous readings are kept, so the next good
pass covers the gap with energy and CPU deltas over the same span.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from energyd.attribution import PodCpu, ZoneAttribution, attribute, shares
from energyd.cgroups import UsageReading
from energyd.cgroups.names import PodMeta, PodResolver
from energyd.sources.base import EnergySource, SourceError, Zone, delta_uj

log = logging.getLogger(__name__)

_K = TypeVar("_K", bound=Hashable)

US_PER_S = 1_000_000
UJ_PER_J = 1_000_000


class NodeCpu(Protocol):
    """Cumulative CPU-seconds of the node summed over all CPUs (energyd.procstat.CpuTimes)."""

    @property
    def total_s(self) -> float: ...

    @property
    def busy_s(self) -> float: ...


class UsageSource(Protocol):
    def read(self) -> UsageReading: ...


@dataclass(frozen=True)
class SourceStatus:
    """One energy source as the selection left it: the one in use has an empty reason."""

    source: str
    reason: str
    measured: bool
    selected: bool


@dataclass(frozen=True)
class Snapshot:
    """Everything the exporter shows, as of one pass. Never mutated after step() returns it.

    Per-pod figures are laid out per zone (zone -> pod -> joules) so a pass copies one dict per
    zone instead of one per pod. `pod_meta` holds the pods the Kubernetes API could name.
    """

    timestamp_s: float
    source: str
    measured: bool
    sources: tuple[SourceStatus, ...]
    node_energy_j: Mapping[str, float]
    in_node_total: Mapping[str, bool]  # zone -> Zone.in_node_total
    node_power_w: Mapping[str, float]
    pod_energy_j: Mapping[str, Mapping[str, float]]  # zone -> pod uid -> joules
    container_energy_j: Mapping[str, Mapping[tuple[str, str], float]]  # zone -> (uid, id) -> J
    pod_meta: Mapping[str, PodMeta]
    unattributed_j: Mapping[tuple[str, str], float]  # (zone, "system" | "idle") -> joules
    read_errors: Mapping[str, int]
    sample_duration_s: float
    pods_present: int
    # Zones read by another source than `source` (the GPU zones: "nvml"), and per GPU zone its
    # info labels (uuid, model, attribution, mig); filled in by energyd.gpu_attribution.
    zone_source: Mapping[str, str] = field(default_factory=dict)
    gpu_info: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


class Sampler:
    def __init__(
        self,
        source: EnergySource,
        read_node_cpu: Callable[[], NodeCpu],
        usage: UsageSource,
        names: PodResolver,
        sources: Sequence[SourceStatus] = (),
        grace_period_s: float = 300.0,
    ) -> None:
        self._source = source
        self._read_node_cpu = read_node_cpu
        self._usage = usage
        self._names = names
        self._sources = tuple(sources)
        self._grace_period_s = grace_period_s
        self._prev: tuple[dict[Zone, int], NodeCpu, float] | None = None
        # Previous cgroup counters (µs) and when each cgroup was last seen.
        self._pod_us: dict[str, int] = {}
        self._container_us: dict[tuple[str, str], int] = {}
        self._pod_seen_s: dict[str, float] = {}
        self._container_seen_s: dict[tuple[str, str], float] = {}
        self._node_j: dict[str, float] = {}
        self._in_node_total: dict[str, bool] = {}
        self._pod_j: dict[str, dict[str, float]] = {}
        self._container_j: dict[str, dict[tuple[str, str], float]] = {}
        self._power_w: dict[str, float] = {}
        self._unattributed_j: dict[tuple[str, str], float] = {}
        self._errors: Counter[str] = Counter()

    def step(self, now_s: float) -> Snapshot:
        started = time.perf_counter()
        reading = self._usage.read()
        self._errors["cgroup"] += reading.errors
        energy_uj: dict[Zone, int] | None
        try:
            energy_uj = dict(self._source.read_uj())
            if not energy_uj:
                raise SourceError("no energy zones left to read")
        except SourceError as err:
            log.warning("energy read failed (%s): %s", self._source.name, err.reason)
            self._errors[self._source.name] += 1
            energy_uj = None
        try:
            cpu = self._read_node_cpu()
        except (OSError, ValueError) as err:
            log.warning("node CPU read failed: %s", err)
            self._errors["procstat"] += 1
            cpu = None
        if energy_uj is not None and cpu is not None:
            self._advance(now_s, energy_uj, cpu, reading)
        else:
            self._see(now_s, reading)
        self._forget(now_s - self._grace_period_s)
        return self._snapshot(now_s, len(reading.pods), time.perf_counter() - started)

    def _advance(self, now_s: float, energy_uj: dict[Zone, int], cpu: NodeCpu, reading: UsageReading) -> None:
        prev = self._prev
        self._prev = (energy_uj, cpu, now_s)
        for zone in energy_uj:
            self._in_node_total[zone.name] = zone.in_node_total
            if zone.name not in self._node_j:
                self._node_j[zone.name] = 0.0
                self._pod_j[zone.name] = {}
                self._container_j[zone.name] = {}
        if prev is None:
            self._pod_deltas(now_s, reading, None)
            return
        prev_uj, prev_cpu, prev_s = prev
        total_s = cpu.total_s - prev_cpu.total_s
        pods_cpu = self._pod_deltas(now_s, reading, total_s)
        fractions = shares(total_s, cpu.busy_s - prev_cpu.busy_s, pods_cpu)
        elapsed_s = now_s - prev_s
        for zone, cur in energy_uj.items():
            before = prev_uj.get(zone)
            if before is None:
                continue  # a zone that appeared: its first reading is the baseline
            zone_j = delta_uj(before, cur, zone.max_energy_range_uj) / UJ_PER_J
            self._accumulate(zone.name, zone_j, attribute(zone_j, fractions))
            self._power_w[zone.name] = zone_j / elapsed_s if elapsed_s > 0 else 0.0

    def _pod_deltas(
        self, now_s: float, reading: UsageReading, total_s: float | None
    ) -> dict[str, PodCpu[str]]:
        """CPU-seconds per pod and container since the last pass; total_s None on the first."""
        pod_us, pod_seen = self._pod_us, self._pod_seen_s
        container_us, container_seen = self._container_us, self._container_seen_s
        pods_cpu: dict[str, PodCpu[str]] = {}
        for pod in reading.pods:
            uid = pod.uid
            containers = {
                cid: _delta_s(container_us, container_seen, (uid, cid), us, now_s, total_s)
                for cid, us in pod.containers.items()
            }
            pods_cpu[uid] = PodCpu(_delta_s(pod_us, pod_seen, uid, pod.usage_us, now_s, total_s), containers)
        return pods_cpu

    def _accumulate(self, zone: str, zone_j: float, att: ZoneAttribution[str, str]) -> None:
        self._node_j[zone] += zone_j
        pod_j = self._pod_j[zone]
        for uid, j in att.pods_j.items():
            pod_j[uid] = pod_j.get(uid, 0.0) + j
        container_j = self._container_j[zone]
        for key, j in att.containers_j.items():
            container_j[key] = container_j.get(key, 0.0) + j
        for kind, j in (("system", att.system_j), ("idle", att.idle_j)):
            self._unattributed_j[(zone, kind)] = self._unattributed_j.get((zone, kind), 0.0) + j

    def _see(self, now_s: float, reading: UsageReading) -> None:
        # Seen even when the interval cannot be attributed, so a long source outage does not
        # expire pods that are still running.
        for pod in reading.pods:
            if pod.uid in self._pod_seen_s:
                self._pod_seen_s[pod.uid] = now_s
            for cid in pod.containers:
                if (pod.uid, cid) in self._container_seen_s:
                    self._container_seen_s[(pod.uid, cid)] = now_s

    def _forget(self, unseen_since_s: float) -> None:
        _expire(self._pod_seen_s, self._pod_us, self._pod_j, unseen_since_s)
        _expire(self._container_seen_s, self._container_us, self._container_j, unseen_since_s)

    def _snapshot(self, now_s: float, pods_present: int, duration_s: float) -> Snapshot:
        lookup = self._names.lookup
        pod_meta = {uid: meta for uid in self._pod_us if (meta := lookup(uid)) is not None}
        return Snapshot(
            timestamp_s=now_s,
            source=self._source.name,
            measured=self._source.measured,
            sources=self._sources,
            node_energy_j=dict(self._node_j),
            in_node_total=dict(self._in_node_total),
            node_power_w=dict(self._power_w),
            pod_energy_j={zone: dict(j) for zone, j in self._pod_j.items()},
            container_energy_j={zone: dict(j) for zone, j in self._container_j.items()},
            pod_meta=pod_meta,
            unattributed_j=dict(self._unattributed_j),
            read_errors=dict(self._errors),
            sample_duration_s=duration_s,
            pods_present=pods_present,
        )


def _delta_s(
    prev_us: dict[_K, int],
    seen_s: dict[_K, float],
    key: _K,
    usage_us: int,
    now_s: float,
    total_s: float | None,
) -> float:
    """One cgroup's CPU-seconds since the last pass, never negative."""
    seen_s[key] = now_s
    before = prev_us.get(key)
    prev_us[key] = usage_us
    if before is None:
        # New since the last pass: what it used counts if it fits in the interval; more means
        # it predates the last pass (or this is the first pass) and is not this interval's.
        fresh_s = usage_us / US_PER_S
        return fresh_s if total_s is not None and fresh_s <= total_s else 0.0
    # A counter that went backwards belongs to a recreated cgroup: it counted from 0.
    return (usage_us - before if usage_us >= before else usage_us) / US_PER_S


def _expire(
    seen_s: dict[_K, float],
    prev_us: dict[_K, int],
    energy_j: dict[str, dict[_K, float]],
    unseen_since_s: float,
) -> None:
    for key in [k for k, t in seen_s.items() if t < unseen_since_s]:
        del seen_s[key], prev_us[key]
        for per_zone in energy_j.values():
            per_zone.pop(key, None)
