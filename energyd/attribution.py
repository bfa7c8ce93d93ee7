"""Pure attribution of one interval's energy to pods, containers, system and idle. No I/O.

The model: over an interval the node spent ``total_s`` CPU-seconds (all CPUs, busy or not),
``busy_s`` of them busy. A pod gets the fraction ``pod_s / total_s`` of each zone's energy, the
busy time outside pods is ``system`` and the rest is ``idle``. The fractions sum to one, so
pods + system + idle == node for every zone (conservation). Cgroup and /proc/stat counters are
read at slightly different instants, so pods may appear to use more than the node's busy time:
then pods are scaled down to busy_s and system is zero, so no share is ever negative.
A container gets its pod's energy in proportion to its CPU time within the pod. A zone whose
per-pod figures nobody shows is split into the pods' total, system and idle only (per_pod False):
a thousand pods make a thousand products and dict entries per zone and pass otherwise.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Generic, NamedTuple, TypeVar

K = TypeVar("K", bound=Hashable)
C = TypeVar("C", bound=Hashable)


class PodCpu(NamedTuple, Generic[C]):  # a tuple: a thousand are built per pass
    """One pod's CPU time over the interval, and its containers'. Negative deltas count as 0."""

    cpu_s: float
    containers_cpu_s: Mapping[C, float]


@dataclass(frozen=True)
class Shares(Generic[K, C]):
    """Fractions of the node's energy, the same for every zone; they sum to 1."""

    pods: Mapping[K, float]
    containers: Mapping[tuple[K, C], float]
    system: float
    idle: float
    pods_total: float  # the sum of `pods`


@dataclass(frozen=True)
class ZoneAttribution(Generic[K, C]):
    pods_j: Mapping[K, float]  # empty unless per pod
    containers_j: Mapping[tuple[K, C], float]  # empty unless per pod
    pods_total_j: float  # every pod's together: pods_total_j + system_j + idle_j == the zone's
    system_j: float
    idle_j: float


def shares(node_total_s: float, node_busy_s: float, pods: Mapping[K, PodCpu[C]]) -> Shares[K, C]:
    """The interval's fractions. With no CPU time elapsed everything is idle."""
    total_s = max(node_total_s, 0.0)
    if total_s <= 0.0:
        return Shares(pods=dict.fromkeys(pods, 0.0), containers={}, system=0.0, idle=1.0, pods_total=0.0)
    busy = min(max(node_busy_s, 0.0) / total_s, 1.0)
    pods_cpu_s = {uid: max(p.cpu_s, 0.0) for uid, p in pods.items()}
    in_pods_s = sum(pods_cpu_s.values())
    if in_pods_s / total_s > busy:
        pod_shares = {uid: cpu_s / in_pods_s * busy for uid, cpu_s in pods_cpu_s.items()}
    else:
        pod_shares = {uid: cpu_s / total_s for uid, cpu_s in pods_cpu_s.items()}
    container_shares: dict[tuple[K, C], float] = {}
    for uid, pod in pods.items():
        containers_s = pod.containers_cpu_s
        if not containers_s:
            continue
        # Containers never get more than their pod: the pod counter also holds the sandbox.
        denominator = max(pods_cpu_s[uid], sum(s for s in containers_s.values() if s > 0.0))
        per_s = pod_shares[uid] / denominator if denominator > 0.0 else 0.0
        for cid, cpu_s in containers_s.items():
            container_shares[(uid, cid)] = per_s * cpu_s if cpu_s > 0.0 else 0.0
    attributed = sum(pod_shares.values())
    system = max(busy - attributed, 0.0)
    idle = max(1.0 - attributed - system, 0.0)
    return Shares(
        pods=pod_shares, containers=container_shares, system=system, idle=idle, pods_total=attributed
    )


def attribute(energy_j: float, fractions: Shares[K, C], per_pod: bool = True) -> ZoneAttribution[K, C]:
    """One zone's energy over the interval, split by the interval's fractions; per pod and
    container only if `per_pod` (the totals are the same either way)."""
    system_j = energy_j * fractions.system
    if not per_pod:
        pods_total_j = energy_j * fractions.pods_total
        idle_j = max(energy_j - pods_total_j - system_j, 0.0)
        return ZoneAttribution(
            pods_j={}, containers_j={}, pods_total_j=pods_total_j, system_j=system_j, idle_j=idle_j
        )
    pods_j = {uid: energy_j * f for uid, f in fractions.pods.items()}
    pods_total_j = sum(pods_j.values())
    # Idle takes the remainder so the parts add up to the zone's energy to the last bit that
    # float addition allows; clamped because rounding may leave -1e-16 of a joule.
    idle_j = max(energy_j - pods_total_j - system_j, 0.0)
    containers_j = {key: energy_j * f for key, f in fractions.containers.items()}
    return ZoneAttribution(
        pods_j=pods_j, containers_j=containers_j, pods_total_j=pods_total_j, system_j=system_j, idle_j=idle_j
    )
