"""One sampling pass: read energy, node CPU and pod CPU, attribute, accumulate. Owns all state.

Counters only ever grow: zone deltas go through zone_delta (a wrap only from near the zone's
max_energy_range_uj; a counter that stepped back otherwise restarted, and an interval whose
energy exceeds the zone's power ceiling is implausible: either interval counts nothing for that
zone and is counted in read_errors with its reason). Only the zones of the latest reading are
shown: a zone that vanished has no series (its joules are kept, and continue if it returns,
from its new reading). A zone that covers others in the node total (psys) and stays flat over
an interval in which they moved is distrusted until it moves: they count instead. A cgroup counter that went backwards was recreated and counts from 0,
and a pod seen for the first time gets the CPU time it used since it appeared (at most one
interval's worth: more means it predates the previous reading, so it counts 0). When a read
fails the interval is not attributed and the previous readings are kept, so the next good
pass covers the gap with energy and CPU deltas over the same span.

Per-pod and per-container joules are kept only for the zones whose pod series are shown (those
in the node total of the pass, unless all_pod_zones): at a thousand pods each zone costs a
thousand additions per pass. Every zone keeps the pods' total, so pods + system + idle = node
holds for all of them (`pods_total_j`).
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
from energyd.sources.base import EnergySource, Inventoried, SourceError, Zone, zone_delta
from energyd.sources.ceiling import max_power_w

log = logging.getLogger(__name__)

_K = TypeVar("_K", bound=Hashable)

US_PER_S = 1_000_000
UJ_PER_J = 1_000_000
# The power ceiling bounds a delta over at least this long: the counters and the clock are read
# at slightly different instants, which at sub-second intervals would reject real energy. A
# misread wrap (most of a range: tens of kJ and up) still exceeds any ceiling times this.
MIN_BOUND_S = 1.0


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
    pod_energy_j: Mapping[str, Mapping[str, float]]  # zone -> pod uid -> joules (zones shown per pod)
    container_energy_j: Mapping[str, Mapping[tuple[str, str], float]]  # zone -> (uid, id) -> J
    pod_meta: Mapping[str, PodMeta]
    unattributed_j: Mapping[tuple[str, str], float]  # (zone, "system" | "idle") -> joules
    read_errors: Mapping[tuple[str, str], int]  # (reader, reason) -> failed reads
    sample_duration_s: float
    pods_present: int
    # Zones read by another source than `source` (the GPU zones: "nvml"), and per GPU zone its
    # info labels (uuid, model, attribution, mig); filled in by energyd.gpu_attribution.
    zone_source: Mapping[str, str] = field(default_factory=dict)
    gpu_info: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # zone -> joules attributed to pods, all of them together (expired ones included), every zone.
    pods_total_j: Mapping[str, float] = field(default_factory=dict)


class Sampler:
    def __init__(
        self,
        source: EnergySource,
        read_node_cpu: Callable[[], NodeCpu],
        usage: UsageSource,
        names: PodResolver,
        sources: Sequence[SourceStatus] = (),
        grace_period_s: float = 300.0,
        max_power_w: Mapping[str, float] | None = None,
        all_pod_zones: bool = False,
    ) -> None:
        """`all_pod_zones`: per-pod joules for every zone, not only those in the node total
        (Config.pod_zones "all", the exporter's choice of zones with pod series)."""
        self._source = source
        # What a source can say about its zones (skips, failed reads), when it can say it.
        self._inventory = source if isinstance(source, Inventoried) else None
        self._read_node_cpu = read_node_cpu
        self._usage = usage
        self._names = names
        self._sources = tuple(sources)
        self._grace_period_s = grace_period_s
        self._max_power_w = dict(max_power_w or {})  # overrides of energyd.sources.ceiling
        self._all_pod_zones = all_pod_zones
        self._prev: tuple[dict[str, int], NodeCpu, float] | None = None
        self._zones: dict[str, Zone] = {}  # the latest reading's: the zones shown
        self._distrusted: dict[str, str] = {}  # covering zone -> why it is not in the node total
        # Previous cgroup counters (µs) and when each cgroup was last seen.
        self._pod_us: dict[str, int] = {}
        self._container_us: dict[tuple[str, str], int] = {}
        self._pod_seen_s: dict[str, float] = {}
        self._container_seen_s: dict[tuple[str, str], float] = {}
        self._node_j: dict[str, float] = {}
        self._pods_total_j: dict[str, float] = {}
        self._pod_j: dict[str, dict[str, float]] = {}
        self._container_j: dict[str, dict[tuple[str, str], float]] = {}
        self._power_w: dict[str, float] = {}
        self._unattributed_j: dict[tuple[str, str], float] = {}
        self._errors: Counter[tuple[str, str]] = Counter()

    def step(self, now_s: float) -> Snapshot:
        started = time.perf_counter()
        reading = self._usage.read()
        self._errors[("cgroup", "unreadable")] += reading.errors
        energy_uj: dict[Zone, int] | None
        try:
            energy_uj = dict(self._source.read_uj())
            if not energy_uj:
                raise SourceError("no energy zones left to read")
        except SourceError as err:
            log.warning("energy read failed (%s): %s", self._source.name, err.reason)
            self._errors[(self._source.name, "read_failed")] += 1
            energy_uj = None
            self._power_w = {}  # no interval measured: no power to show
        try:
            cpu = self._read_node_cpu()
        except (OSError, ValueError) as err:
            log.warning("node CPU read failed: %s", err)
            self._errors[("procstat", "unreadable")] += 1
            cpu = None
        if energy_uj is not None and cpu is not None:
            self._advance(now_s, energy_uj, cpu, reading)
        else:
            self._see(now_s, reading)
        self._forget(now_s - self._grace_period_s)
        return self._snapshot(now_s, len(reading.pods), time.perf_counter() - started)

    def _advance(self, now_s: float, energy_uj: dict[Zone, int], cpu: NodeCpu, reading: UsageReading) -> None:
        prev = self._prev
        self._prev = ({zone.name: uj for zone, uj in energy_uj.items()}, cpu, now_s)
        self._zones = {zone.name: zone for zone in energy_uj}
        self._power_w = {}
        for gone in [cover for cover in self._distrusted if cover not in self._zones]:
            del self._distrusted[gone]
        for name in self._zones:
            if name not in self._node_j:
                self._node_j[name] = 0.0
                self._pods_total_j[name] = 0.0
                self._pod_j[name] = {}
                self._container_j[name] = {}
        if prev is None:
            self._pod_deltas(now_s, reading, None)
            return
        prev_uj, prev_cpu, prev_s = prev
        total_s = cpu.total_s - prev_cpu.total_s
        pods_cpu = self._pod_deltas(now_s, reading, total_s)
        fractions = shares(total_s, cpu.busy_s - prev_cpu.busy_s, pods_cpu)
        elapsed_s = max(now_s - prev_s, 0.0)
        zones_j = self._deltas_j(energy_uj, prev_uj, elapsed_s)
        self._judge_covers(zones_j)
        for name, zone_j in zones_j.items():
            per_pod = self._all_pod_zones or self._in_node_total(self._zones[name])
            self._accumulate(name, zone_j, attribute(zone_j, fractions, per_pod))
            self._power_w[name] = zone_j / elapsed_s if elapsed_s > 0 else 0.0

    def _deltas_j(
        self, energy_uj: Mapping[Zone, int], prev_uj: Mapping[str, int], elapsed_s: float
    ) -> dict[str, float]:
        """Joules per zone over the interval, for the zones whose delta is plausible."""
        zones_j: dict[str, float] = {}
        for zone, cur in energy_uj.items():
            before = prev_uj.get(zone.name)
            if before is None:
                continue  # a zone that appeared or came back: its first reading is the baseline
            ceiling_w = max_power_w(zone.name, self._max_power_w)
            bound_s = max(elapsed_s, MIN_BOUND_S)
            delta = zone_delta(before, cur, zone.max_energy_range_uj, ceiling_w * bound_s * UJ_PER_J)
            if delta.rejected is not None:
                log.warning(
                    "zone %s: %d -> %d µJ in %.3g s (range %s, ceiling %g W) is a %s: the interval counts 0",
                    zone.name,
                    before,
                    cur,
                    elapsed_s,
                    zone.max_energy_range_uj,
                    ceiling_w,
                    delta.rejected,
                )
                self._errors[(self._source.name, delta.rejected)] += 1
                continue
            zones_j[zone.name] = delta.uj / UJ_PER_J
        return zones_j

    def _judge_covers(self, zones_j: Mapping[str, float]) -> None:
        """Distrusts a covering zone (psys) that stayed flat while the zones it covers moved."""
        covered: dict[str, list[str]] = {}
        for zone in self._zones.values():
            if zone.covered_by is not None:
                covered.setdefault(zone.covered_by, []).append(zone.name)
        for cover, members in covered.items():
            if cover not in zones_j:
                continue  # no interval counted for it: nothing to judge by
            moved = sorted(m for m in members if zones_j.get(m, 0.0) > 0.0)
            if zones_j[cover] == 0.0 and moved and cover not in self._distrusted:
                why = (
                    f"{cover} did not move while {', '.join(moved)} did: node total = "
                    f"{' + '.join(sorted(members))} until it moves"
                )
                log.warning("distrusting %s", why)
                self._distrusted[cover] = why
            elif zones_j[cover] > 0.0 and self._distrusted.pop(cover, None) is not None:
                log.info("%s moves again: it is the node total again", cover)

    def _in_node_total(self, zone: Zone) -> bool:
        cover = zone.covered_by
        if cover is not None and (cover not in self._zones or cover in self._distrusted):
            return True
        return zone.in_node_total and zone.name not in self._distrusted

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
        self._pods_total_j[zone] += att.pods_total_j
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

    def _notes(self) -> tuple[SourceStatus, ...]:
        """What is wrong with the source in use now, one status each: skipped zones, distrust."""
        name, measured = self._source.name, self._source.measured
        notes = [SourceStatus(name, why, measured, False) for why in self._distrusted.values()]
        if self._inventory is not None:
            notes += [
                SourceStatus(name, f"skipped {s.why}", measured, False)
                for s in self._inventory.skipped()
                if s.reason != "not_a_zone"
            ]
        return tuple(notes)

    def _read_errors(self) -> dict[tuple[str, str], int]:
        errors = dict(self._errors)
        if self._inventory is not None:
            for reason, n in self._inventory.read_errors().items():
                errors[(self._source.name, reason)] = errors.get((self._source.name, reason), 0) + n
        return errors

    def _snapshot(self, now_s: float, pods_present: int, duration_s: float) -> Snapshot:
        lookup = self._names.lookup
        pod_meta = {uid: meta for uid in self._pod_us if (meta := lookup(uid)) is not None}
        shown = self._zones
        return Snapshot(
            timestamp_s=now_s,
            source=self._source.name,
            measured=self._source.measured,
            sources=self._sources + self._notes(),
            node_energy_j={zone: j for zone, j in self._node_j.items() if zone in shown},
            in_node_total={name: self._in_node_total(zone) for name, zone in shown.items()},
            node_power_w=dict(self._power_w),
            pod_energy_j={zone: dict(j) for zone, j in self._pod_j.items() if zone in shown},
            container_energy_j={zone: dict(j) for zone, j in self._container_j.items() if zone in shown},
            pod_meta=pod_meta,
            unattributed_j={key: j for key, j in self._unattributed_j.items() if key[0] in shown},
            read_errors=self._read_errors(),
            sample_duration_s=duration_s,
            pods_present=pods_present,
            pods_total_j={zone: j for zone, j in self._pods_total_j.items() if zone in shown},
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
