"""Prometheus view of the latest Snapshot, rendered once per sample and served from that cache.

A scrape used to rebuild every series through prometheus_client (~40 ms of CPU at 1,000 pods,
more per zone): here the text is rendered once, right after each sampling pass, and every scrape
until the next pass gets those bytes (gzipped at most once per pass, on the first scrape that
asks for it). The per-pod series dominate the exposition, so their label text is kept between
passes: a pass only formats their values. energyd's own metrics (build info, the process
collector) come from a registry of energyd's own, never the process-wide default one.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, Gauge, ProcessCollector, generate_latest
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from energyd import __version__
from energyd.sampler import Snapshot

# The text format this module writes (what every Prometheus accepts); OpenMetrics is not offered,
# as the Go client does by default, so one rendering serves every scraper.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# gzip level 1: a twelfth of the size for a fifth of the CPU of level 9 (which prometheus_client
# uses), and only ~12 % more bytes (bench/bench_exporter.py's exposition).
GZIP_LEVEL = 1

_go_float: Callable[[float], str] = floatToGoString  # Go's formatting (+Inf, 1e+16), as Prometheus
Series = Iterable[tuple[str, float]]  # (label text with braces, or "", value)


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _labels(pairs: Mapping[str, str]) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs.items()) + "}"


def _family(out: list[str], name: str, kind: str, help_text: str, series: Series) -> None:
    out.append(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n")
    out.extend(f"{name}{labels} {_go_float(value)}\n" for labels, value in series)


class SnapshotRenderer:
    """The text exposition of a Snapshot.

    Per-pod and per-container series exist only for the zones in the node total unless
    `all_pod_zones`: sub-zones (core, uncore), MMIO repeats of a package, and the packages and
    dram where psys covers them would multiply the series per pod without adding a joule to the
    node's sum.
    """

    POD = "energyd_pod_energy_joules_total"
    CONTAINER = "energyd_container_energy_joules_total"

    def __init__(self, all_pod_zones: bool = False) -> None:
        self._all_pod_zones = all_pod_zones
        # (pod uid, container id or "", zone) -> (the PodMeta it was made from, label text):
        # rebuilt each pass from the series present, so vanished pods leave it.
        self._label_text: dict[tuple[str, str, str], tuple[object, str]] = {}

    def render(self, snap: Snapshot | None) -> str:
        if snap is None:
            return ""
        # The zones overlap (core inside package, psys around packages and dram), so each series
        # says whether its zone is one of those that sum to the node without double counting.
        total = {zone: "true" if t else "false" for zone, t in snap.in_node_total.items()}
        out: list[str] = []
        _family(
            out,
            "energyd_node_energy_joules_total",
            "counter",
            "Energy of the node per RAPL zone since energyd started.",
            (
                (
                    _labels(
                        {"zone": z, "node_total": total.get(z, "false"), "source": snap.zone_source.get(z, snap.source)}
                    ),
                    j,
                )
                for z, j in sorted(snap.node_energy_j.items())
            ),
        )
        _family(
            out,
            "energyd_node_power_watts",
            "gauge",
            "Mean power per zone over the last sampling interval.",
            (
                (_labels({"zone": z, "node_total": total.get(z, "false")}), w)
                for z, w in sorted(snap.node_power_w.items())
            ),
        )
        label_text: dict[tuple[str, str, str], tuple[object, str]] = {}
        zones = [z for z in sorted(snap.pod_energy_j) if self._exported(snap, z)]
        _family(
            out,
            self.POD,
            "counter",
            "Energy attributed to a pod by its share of CPU time.",
            (
                (self._pod_labels(label_text, snap, uid, "", zone, total), j)
                for zone in zones
                for uid, j in snap.pod_energy_j[zone].items()
            ),
        )
        zones = [z for z in sorted(snap.container_energy_j) if self._exported(snap, z)]
        _family(
            out,
            self.CONTAINER,
            "counter",
            "Energy attributed to a container by its share of CPU time.",
            (
                (self._pod_labels(label_text, snap, uid, cid, zone, total), j)
                for zone in zones
                for (uid, cid), j in snap.container_energy_j[zone].items()
            ),
        )
        self._label_text = label_text
        _family(
            out,
            "energyd_unattributed_energy_joules_total",
            "counter",
            "Energy not attributed to pods: system (busy outside pods) and idle.",
            (
                (_labels({"zone": z, "node_total": total.get(z, "false"), "kind": kind}), j)
                for (z, kind), j in sorted(snap.unattributed_j.items())
            ),
        )
        _family(
            out,
            "energyd_source_info",
            "gauge",
            'Energy sources tried: reason="selected" for the one in use, else why it was passed over.',
            (
                (
                    _labels(
                        {
                            "source": s.source,
                            "reason": "selected" if s.selected else s.reason,
                            "measured": str(s.measured).lower(),
                        }
                    ),
                    1.0,
                )
                for s in snap.sources
            ),
        )
        _family(
            out,
            "energyd_gpu_info",
            "gauge",
            "One series per GPU zone: its UUID, model, how its energy is split between pods, and MIG mode.",
            (
                (
                    _labels(
                        {
                            "attribution": gpu["attribution"],
                            "mig": gpu["mig"],
                            "model": gpu["model"],
                            "uuid": gpu["uuid"],
                            "zone": zone,
                        }
                    ),
                    1.0,
                )
                for zone, gpu in sorted(snap.gpu_info.items())
            ),
        )
        # Zero series from the start for the failures every node can have, so increase() sees the first.
        always = [(snap.source, "read_failed"), ("procstat", "unreadable"), ("cgroup", "unreadable")]
        if snap.gpu_info:
            always.append(("nvml", "gpu_lost"))
        _family(
            out,
            "energyd_read_errors_total",
            "counter",
            "Failed or rejected reads per reader (the energy source by name, procstat, cgroup) and reason.",
            (
                (_labels({"reader": reader, "reason": reason}), snap.read_errors.get((reader, reason), 0))
                for reader, reason in sorted({*always, *snap.read_errors})
            ),
        )
        for name, help_text, value in (
            ("energyd_sample_duration_seconds", "Time the last sampling pass took.", snap.sample_duration_s),
            ("energyd_pods", "Pod cgroups found in the last pass.", float(snap.pods_present)),
            (
                "energyd_last_sample_timestamp_seconds",
                "When the last pass ran (Unix time).",
                snap.timestamp_s,
            ),
        ):
            _family(out, name, "gauge", help_text, [("", value)])
        return "".join(out)

    def _exported(self, snap: Snapshot, zone: str) -> bool:
        return self._all_pod_zones or snap.in_node_total.get(zone, False)

    def _pod_labels(
        self,
        made: dict[tuple[str, str, str], tuple[object, str]],
        snap: Snapshot,
        uid: str,
        cid: str,
        zone: str,
        total: Mapping[str, str],
    ) -> str:
        """A pod's (cid "") or container's label text, reused while its PodMeta is the same."""
        key = (uid, cid, zone)
        meta = snap.pod_meta.get(uid)
        kept = self._label_text.get(key)
        if kept is not None and kept[0] is meta:
            made[key] = kept
            return kept[1]
        # A pod the API could not name is labelled by its uid (and its containers by their id).
        labels = {
            "namespace": meta.namespace if meta else "",
            "pod": meta.name if meta else uid,
            "pod_uid": uid,
        }
        if cid:
            labels["container"] = meta.containers.get(cid, cid) if meta else cid
        labels |= {"zone": zone, "node_total": total.get(zone, "false")}
        made[key] = (meta, _labels(labels))
        return made[key][1]


def own_registry() -> CollectorRegistry:
    """energyd's build info and its process metrics (CPU, memory, descriptors)."""
    registry = CollectorRegistry(auto_describe=False)
    info = Gauge("energyd_build_info", "energyd's version; always 1.", ["version"], registry=registry)
    info.labels(__version__).set(1)
    ProcessCollector(registry=registry)
    return registry


class Exposition:
    """The bytes every scrape is served: rendered by refresh() (after each pass), never per scrape."""

    def __init__(self, latest: Callable[[], Snapshot | None], all_pod_zones: bool = False) -> None:
        self._latest = latest
        self._renderer = SnapshotRenderer(all_pod_zones)
        self._registry = own_registry()
        self._lock = threading.Lock()
        self._plain = b""
        self._gzipped: bytes | None = None
        self.refresh()

    def register(self, collector: Collector) -> None:
        """Adds metrics of energyd's own (the HTTP server's counters) from the next refresh on."""
        self._registry.register(collector)

    def refresh(self) -> None:
        """Renders the latest snapshot and energyd's own metrics; scrapes see it from now on."""
        plain = self._renderer.render(self._latest()).encode() + generate_latest(self._registry)
        with self._lock:
            self._plain, self._gzipped = plain, None

    def body(self, gzipped: bool) -> bytes:
        with self._lock:
            if not gzipped:
                return self._plain
            if self._gzipped is None:
                self._gzipped = gzip.compress(self._plain, GZIP_LEVEL, mtime=0)
            return self._gzipped
