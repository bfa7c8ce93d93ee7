"""Prometheus view of the latest Snapshot: metric families built fresh on every scrape."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from energyd.sampler import Snapshot


class SnapshotCollector(Collector):
    """Exports whatever `latest()` returns; nothing before the first snapshot."""

    def __init__(self, latest: Callable[[], Snapshot | None]) -> None:
        self._latest = latest

    def collect(self) -> Iterator[Metric]:
        snap = self._latest()
        if snap is None:
            return
        # The zones overlap (core inside package, psys around packages and dram), so each series
        # says whether its zone is one of those that sum to the node without double counting.
        total = {zone: "true" if t else "false" for zone, t in snap.in_node_total.items()}
        node = CounterMetricFamily(
            "energyd_node_energy_joules",
            "Energy of the node per RAPL zone since energyd started.",
            labels=["zone", "node_total", "source"],
        )
        for zone, j in sorted(snap.node_energy_j.items()):
            node.add_metric([zone, total.get(zone, "false"), snap.zone_source.get(zone, snap.source)], j)
        yield node

        power = GaugeMetricFamily(
            "energyd_node_power_watts",
            "Mean power per zone over the last sampling interval.",
            labels=["zone", "node_total"],
        )
        for zone, w in sorted(snap.node_power_w.items()):
            power.add_metric([zone, total.get(zone, "false")], w)
        yield power

        pods = CounterMetricFamily(
            "energyd_pod_energy_joules",
            "Energy attributed to a pod by its share of CPU time.",
            labels=["namespace", "pod", "pod_uid", "zone", "node_total"],
        )
        meta = snap.pod_meta
        for zone, per_pod in sorted(snap.pod_energy_j.items()):
            in_total = total.get(zone, "false")
            for uid, j in per_pod.items():
                m = meta.get(uid)
                pods.add_metric(
                    [m.namespace, m.name, uid, zone, in_total] if m else ["", uid, uid, zone, in_total], j
                )
        yield pods

        containers = CounterMetricFamily(
            "energyd_container_energy_joules",
            "Energy attributed to a container by its share of CPU time.",
            labels=["namespace", "pod", "pod_uid", "container", "zone", "node_total"],
        )
        for zone, per_container in sorted(snap.container_energy_j.items()):
            in_total = total.get(zone, "false")
            for (uid, cid), j in per_container.items():
                m = meta.get(uid)
                if m is None:
                    containers.add_metric(["", uid, uid, cid, zone, in_total], j)
                else:
                    name = m.containers.get(cid, cid)
                    containers.add_metric([m.namespace, m.name, uid, name, zone, in_total], j)
        yield containers

        unattributed = CounterMetricFamily(
            "energyd_unattributed_energy_joules",
            "Energy not attributed to pods: system (busy outside pods) and idle.",
            labels=["zone", "node_total", "kind"],
        )
        for (zone, kind), j in sorted(snap.unattributed_j.items()):
            unattributed.add_metric([zone, total.get(zone, "false"), kind], j)
        yield unattributed

        info = GaugeMetricFamily(
            "energyd_source_info",
            'Energy sources tried: reason="selected" for the one in use, else why it was passed over.',
            labels=["source", "reason", "measured"],
        )
        for s in snap.sources:
            info.add_metric([s.source, "selected" if s.selected else s.reason, str(s.measured).lower()], 1.0)
        yield info

        gpus = GaugeMetricFamily(
            "energyd_gpu_info",
            "One series per GPU zone: its UUID, model, how its energy is split between pods, and MIG mode.",
            labels=["zone", "uuid", "model", "attribution", "mig"],
        )
        for zone, gpu in sorted(snap.gpu_info.items()):
            gpus.add_metric([zone, gpu["uuid"], gpu["model"], gpu["attribution"], gpu["mig"]], 1.0)
        yield gpus

        errors = CounterMetricFamily(
            "energyd_read_errors",
            "Failed or rejected reads per reader (the energy source by name, procstat, cgroup) and reason.",
            labels=["reader", "reason"],
        )
        always = ((snap.source, "read_failed"), ("procstat", "unreadable"), ("cgroup", "unreadable"))
        for reader, reason in sorted({*always, *snap.read_errors}):
            errors.add_metric([reader, reason], snap.read_errors.get((reader, reason), 0))
        yield errors

        yield GaugeMetricFamily(
            "energyd_sample_duration_seconds",
            "Time the last sampling pass took.",
            value=snap.sample_duration_s,
        )
        yield GaugeMetricFamily(
            "energyd_pods", "Pod cgroups found in the last pass.", value=snap.pods_present
        )
        yield GaugeMetricFamily(
            "energyd_last_sample_timestamp_seconds",
            "When the last pass ran (Unix time).",
            value=snap.timestamp_s,
        )


def serve(latest: Callable[[], Snapshot | None], host: str, port: int) -> WSGIServer:
    """Serve /metrics from a registry of our own (never the global one); returns the server."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(latest))
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server
