"""Each GPU's energy per interval, split between pods (by the GPU time of their processes),
`system` (processes outside pods) and `idle`, then merged into the CPU sampler's Snapshot.

A process's GPU time over an interval of Δt seconds comes from the first of these the GPU has
(the attribution method, exported on `energyd_gpu_info{attribution}`):

- `process-utilization`: NVML's per-process samples (`nvmlDeviceGetProcessUtilization`, the SM
  busy percent per sample period): the mean of a process's samples newer than the last pass,
  times Δt. A process with no sample in the interval did not run.
- `accounting`: accounting stats (on only where an admin ran `nvidia-smi -am 1`): the process's
  lifetime busy percent times its context time, a cumulative figure whose delta is its GPU time.
- `memory`: the device's busy percent (`nvmlDeviceGetUtilizationRates`) times Δt, shared by
  the running compute processes in proportion to their memory (`usedGpuMemory`); where the
  device's utilisation is not reported either (MIG), the processes share all of Δt.
- `none`: no process information at all: everything is idle.

Process -> pod reads `<procfs>/<pid>/cgroup` (NVML's pids are the host's, so procfs must be the
host's /proc) and finds the pod uid and container id with the same name parsing the CPU path
uses (energyd.cgroups.pods). Then the pure `energyd.attribution.shares` does the split with
Δt as the "total" and the summed GPU time as "busy", so conservation (pods + system + idle =
the GPU's energy) is the CPU path's, proven by the same arithmetic.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from energyd.attribution import PodCpu, Shares, attribute, shares
from energyd.cgroups.names import PodResolver
from energyd.cgroups.pods import container_id_from_name, pod_uid_from_name
from energyd.gpu import GpuProbe, GpuSource, reason_of, zone_name
from energyd.sampler import Snapshot
from energyd.sources.base import SourceError, delta_uj
from energyd.sources.nvml import Device, Nvml, NvmlError

log = logging.getLogger(__name__)

METHODS = ("process-utilization", "accounting", "memory", "none")
UJ_PER_J = 1_000_000
MS_PER_S = 1000.0
_CGROUP_BYTES = 64 * 1024


def pod_of_pid(procfs: Path, pid: int) -> tuple[str, str | None] | None:
    """(pod uid, container id or None) of a process from its cgroup path; None outside pods."""
    try:
        fd = os.open(os.path.join(procfs, str(pid), "cgroup"), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None  # exited meanwhile, or not visible: counted as system
    try:
        text = os.read(fd, _CGROUP_BYTES).decode("utf-8", "replace")
    except OSError:
        return None
    finally:
        os.close(fd)
    for line in text.splitlines():
        parts = line.split(":", 2)[-1].split("/")
        for i, part in enumerate(parts):
            uid = pod_uid_from_name(part)
            if uid is not None:
                cid = container_id_from_name(parts[i + 1]) if i + 1 < len(parts) else None
                return uid, cid
    return None


def detect_method(nvml: Nvml, device: Device) -> str:
    """The first attribution method this GPU answers for (see the module docstring)."""
    index = device.index
    for method, call in (
        ("process-utilization", lambda: nvml.process_samples(index, 0)),
        ("accounting", lambda: nvml.accounting(index)),
        ("memory", lambda: nvml.compute_processes(index)),
    ):
        try:
            call()
        except NvmlError as err:
            if err.kind not in ("not_supported", "no_permission"):
                raise
            continue
        return method
    return "none"


@dataclass
class _Gpu:
    device: Device
    method: str  # one of METHODS; "" until the GPU has answered which it supports
    prev_uj: int | None = None
    prev_s: float = 0.0
    since_us: int = 0  # newest process sample seen
    accounting_ms: dict[int, float] = field(default_factory=dict)  # pid -> cumulative busy ms
    owners: dict[int, tuple[str, str | None] | None] = field(default_factory=dict)  # pid -> pod


class GpuSampler:
    """Owns the GPU zones' previous readings and running totals; `step` merges them into a Snapshot."""

    def __init__(
        self,
        source: GpuSource,
        procfs: Path,
        names: PodResolver,
        containers: bool = True,
        grace_period_s: float = 300.0,
    ) -> None:
        self._source = source
        self._nvml = source.nvml
        self._procfs = procfs
        self._names = names
        self._containers = containers
        self._grace_period_s = grace_period_s
        self._gpus = {zone_name(d.index): _Gpu(d, "") for d in source.devices}
        for gpu in self._gpus.values():
            try:
                self._detect(gpu)
            except NvmlError as err:  # a GPU that errs now is asked again on the next pass
                log.warning(
                    "%s: attribution method unknown yet (%s)", zone_name(gpu.device.index), reason_of(err)[0]
                )
        self._node_j: dict[str, float] = {}
        self._power_w: dict[str, float] = {}
        self._pod_j: dict[str, dict[str, float]] = {}
        self._container_j: dict[str, dict[tuple[str, str], float]] = {}
        self._unattributed_j: dict[tuple[str, str], float] = {}
        self._seen_s: dict[str, float] = {}
        self.errors: Counter[str] = Counter()  # failed reads by NVML error kind

    def _detect(self, gpu: _Gpu) -> None:
        gpu.method = detect_method(self._nvml, gpu.device)
        log.info("%s (%s): attribution by %s", zone_name(gpu.device.index), gpu.device.name, gpu.method)

    def methods(self) -> dict[str, str]:
        return {zone: gpu.method for zone, gpu in self._gpus.items()}

    def step(self, now_s: float, snap: Snapshot) -> Snapshot:
        try:
            readings = self._source.read_uj()
        except SourceError as err:
            log.warning("GPU energy read failed: %s", err.reason)
            readings = {}
        self.errors.update(self._source.failures.values())
        for zone, cur_uj in readings.items():
            gpu = self._gpus[zone.name]
            try:
                self._advance(zone.name, gpu, cur_uj, now_s)
            except NvmlError as err:
                # The previous readings stay: the next good pass covers this interval too.
                log.warning("%s process read failed: %s", zone.name, reason_of(err)[0])
                self.errors[err.kind] += 1
        self._forget(now_s - self._grace_period_s)
        return self._merge(snap)

    def _advance(self, zone: str, gpu: _Gpu, cur_uj: int, now_s: float) -> None:
        if not gpu.method:
            self._detect(gpu)
        if gpu.prev_uj is None:  # the baseline: process counters start from here too
            self._busy_s(gpu, None)
            gpu.prev_uj, gpu.prev_s = cur_uj, now_s
            for totals in (self._pod_j, self._container_j):
                totals.setdefault(zone, {})
            self._node_j.setdefault(zone, 0.0)
            for kind in ("system", "idle"):
                self._unattributed_j.setdefault((zone, kind), 0.0)
            return
        elapsed_s = now_s - gpu.prev_s
        busy = self._busy_s(gpu, max(elapsed_s, 0.0))
        zone_j = delta_uj(gpu.prev_uj, cur_uj, None) / UJ_PER_J
        gpu.prev_uj, gpu.prev_s = cur_uj, now_s
        fractions = self._fractions(gpu, elapsed_s, busy, now_s)
        self._accumulate(zone, zone_j, fractions)
        self._power_w[zone] = zone_j / elapsed_s if elapsed_s > 0 else 0.0

    def _busy_s(self, gpu: _Gpu, elapsed_s: float | None) -> dict[int, float]:
        """GPU-seconds per pid over the interval (read and discarded on the baseline pass)."""
        index = gpu.device.index
        if gpu.method == "process-utilization":
            samples = self._nvml.process_samples(index, gpu.since_us)
            gpu.since_us = max([gpu.since_us, *(s.timestamp_us for s in samples)])
            if elapsed_s is None:
                return {}
            util: dict[int, list[int]] = {}
            for s in samples:
                util.setdefault(s.pid, []).append(s.sm_util_pct)
            return {pid: sum(u) / len(u) / 100.0 * elapsed_s for pid, u in util.items()}
        if gpu.method == "accounting":
            busy: dict[int, float] = {}
            previous, gpu.accounting_ms = gpu.accounting_ms, {}
            for entry in self._nvml.accounting(index):
                total_ms = entry.gpu_util_pct / 100.0 * entry.time_ms
                gpu.accounting_ms[entry.pid] = total_ms
                before = previous.get(entry.pid)
                if elapsed_s is None:
                    continue
                if before is not None and total_ms >= before:
                    busy[entry.pid] = (total_ms - before) / MS_PER_S
                elif total_ms <= elapsed_s * MS_PER_S:
                    # New (or a reused pid counting from 0): what it used counts if it fits the
                    # interval; more means it predates the last pass, as for cgroups.
                    busy[entry.pid] = total_ms / MS_PER_S
            return busy
        if gpu.method == "memory":
            processes = self._nvml.compute_processes(index)
            if elapsed_s is None or not processes:
                return {}
            try:
                busy_s = self._nvml.utilization_pct(index) / 100.0 * elapsed_s
            except NvmlError as err:
                if err.kind != "not_supported":
                    raise
                busy_s = elapsed_s  # MIG: no busy figure; the processes share the whole interval
            memory = {p.pid: p.used_bytes or 0 for p in processes}
            total = sum(memory.values())
            if total == 0:
                return {pid: busy_s / len(memory) for pid in memory}
            return {pid: busy_s * used / total for pid, used in memory.items()}
        return {}

    def _fractions(
        self, gpu: _Gpu, elapsed_s: float, busy: Mapping[int, float], now_s: float
    ) -> Shares[str, str]:
        pods: dict[str, tuple[float, dict[str, float]]] = {}
        # A pid's pod is read once while the pid keeps showing up on this GPU: a process does
        # not change pods, and a pid reused between two passes would need the whole pid space
        # (pid_max, 4M on current kernels) to cycle within one interval.
        owners, gpu.owners = gpu.owners, {}
        for pid, gpu_s in busy.items():
            owner = owners[pid] if pid in owners else pod_of_pid(self._procfs, pid)
            gpu.owners[pid] = owner
            if owner is None:
                continue  # outside pods: part of busy, so it lands in system
            uid, cid = owner
            pod_s, containers = pods.setdefault(uid, (0.0, {}))
            if cid is not None and self._containers:
                containers[cid] = containers.get(cid, 0.0) + gpu_s
            pods[uid] = (pod_s + gpu_s, containers)
            self._seen_s[uid] = now_s
        return shares(elapsed_s, sum(busy.values()), {uid: PodCpu(s, c) for uid, (s, c) in pods.items()})

    def _accumulate(self, zone: str, zone_j: float, fractions: Shares[str, str]) -> None:
        att = attribute(zone_j, fractions)
        self._node_j[zone] = self._node_j.get(zone, 0.0) + zone_j
        pod_j = self._pod_j.setdefault(zone, {})
        for uid, j in att.pods_j.items():
            pod_j[uid] = pod_j.get(uid, 0.0) + j
        container_j = self._container_j.setdefault(zone, {})
        for key, j in att.containers_j.items():
            container_j[key] = container_j.get(key, 0.0) + j
        for kind, j in (("system", att.system_j), ("idle", att.idle_j)):
            self._unattributed_j[(zone, kind)] = self._unattributed_j.get((zone, kind), 0.0) + j

    def _forget(self, unseen_since_s: float) -> None:
        for uid in [u for u, t in self._seen_s.items() if t < unseen_since_s]:
            del self._seen_s[uid]
            for per_zone in self._pod_j.values():
                per_zone.pop(uid, None)
            for per_zone_c in self._container_j.values():
                for key in [k for k in per_zone_c if k[0] == uid]:
                    del per_zone_c[key]

    def _merge(self, snap: Snapshot) -> Snapshot:
        lookup = self._names.lookup
        gpu_uids = {uid for per_zone in self._pod_j.values() for uid in per_zone}
        extra_meta = {
            uid: meta for uid in gpu_uids - snap.pod_meta.keys() if (meta := lookup(uid)) is not None
        }
        errors = {**snap.read_errors, **{("nvml", kind): n for kind, n in self.errors.items()}}
        return replace(
            snap,
            node_energy_j={**snap.node_energy_j, **self._node_j},
            in_node_total={**snap.in_node_total, **dict.fromkeys(self._node_j, True)},
            node_power_w={**snap.node_power_w, **self._power_w},
            pod_energy_j={**snap.pod_energy_j, **{z: dict(j) for z, j in self._pod_j.items()}},
            container_energy_j={
                **snap.container_energy_j,
                **{z: dict(j) for z, j in self._container_j.items()},
            },
            unattributed_j={**snap.unattributed_j, **self._unattributed_j},
            pod_meta={**snap.pod_meta, **extra_meta},
            read_errors=errors,
            zone_source={**snap.zone_source, **dict.fromkeys(self._node_j, self._source.name)},
            gpu_info={
                **snap.gpu_info,
                **{
                    zone: {
                        "uuid": gpu.device.uuid,
                        "model": gpu.device.name,
                        "attribution": gpu.method or "unknown",
                        "mig": "true" if gpu.device.mig_enabled else "false",
                    }
                    for zone, gpu in self._gpus.items()
                },
            },
        )

    def close(self) -> None:
        self._source.close()


def probe_gpu(nvml: Nvml) -> GpuProbe:
    """Opens NVML, reads every GPU once and says how each would be attributed; never raises."""
    try:
        source = GpuSource(nvml)
    except SourceError as err:
        return GpuProbe(False, err.reason, err.fix)
    try:
        lines = [f"driver {source.driver_version}"]
        for device in source.devices:
            try:
                method = detect_method(nvml, device)
            except NvmlError as err:
                method = f"none ({reason_of(err)[0]})"
            mig = ", MIG on: one zone for the whole board" if device.mig_enabled else ""
            lines.append(
                f"{zone_name(device.index)}: {device.name} {device.uuid}; attribution by {method}{mig}"
            )
        for index, reason in source.passed_over.items():
            lines.append(f"{zone_name(index)}: not read: {reason}")
        return GpuProbe(True, "", "", tuple(lines))
    finally:
        source.close()
