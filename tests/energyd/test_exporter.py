"""The exposition served on /metrics for a given Snapshot, parsed back as Prometheus would; the
cache it is served from; the series per pod."""

from __future__ import annotations

import functools
import gzip
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from energyd import __version__
from energyd.cgroups import PodUsageReader
from energyd.cgroups.names import NoNames, PodMeta
from energyd.exporter import Exposition, SnapshotRenderer
from energyd.procstat import read_cpu_times
from energyd.sampler import Sampler, Snapshot, SourceStatus
from energyd.server import serve
from energyd.sources.select import open_source
from tests.energyd.cgroup_trees import NodeTree, container_id, pod_uid
from tests.energyd.fixture_trees import set_energy, write_powercap_zone

SNAP = Snapshot(
    timestamp_s=1700000000.0,
    source="perf",
    measured=True,
    sources=(
        SourceStatus("powercap", "energy_uj is readable only by root", True, False),
        SourceStatus("perf", "", True, True),
    ),
    node_energy_j={"package-0": 100.0, "dram-0": 10.0},
    in_node_total={"package-0": True, "dram-0": True},
    node_power_w={"package-0": 50.0, "dram-0": 5.0},
    pod_energy_j={"package-0": {"uid-1": 30.0, "uid-2": 1.0}, "dram-0": {"uid-1": 3.0, "uid-2": 0.1}},
    container_energy_j={
        "package-0": {("uid-1", "c1"): 25.0},
        "dram-0": {("uid-1", "c1"): 2.5, ("uid-2", "c9"): 0.1},
    },
    pod_meta={"uid-1": PodMeta("ml", "detect-0", {"c1": "app"})},
    unattributed_j={("package-0", "system"): 20.0, ("package-0", "idle"): 50.0},
    read_errors={("cgroup", "unreadable"): 2, ("perf", "implausible"): 1},
    sample_duration_s=0.004,
    pods_present=1,
)


Labels = tuple[tuple[str, str], ...]


Samples = dict[tuple[str, Labels], float]


def parse(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def get(port: int, encoding: str | None = None) -> tuple[bytes, dict[str, str]]:
    """The body of GET /metrics as sent, and the response's headers."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics")
    if encoding is not None:
        request.add_header("Accept-Encoding", encoding)
    with urllib.request.urlopen(request, timeout=5) as resp:
        return resp.read(), dict(resp.headers)


@contextmanager
def serving(exposition: Exposition) -> Iterator[int]:
    server = serve(exposition, "127.0.0.1", 0, timeout_s=5, max_connections=8)
    try:
        yield server.server_port
    finally:
        server.close()


def scrape(latest: Callable[[], Snapshot | None], all_pod_zones: bool = False) -> Samples:
    with serving(Exposition(latest, all_pod_zones)) as port:
        return parse(get(port)[0].decode())


def test_metrics_show_the_snapshot() -> None:
    got = scrape(lambda: SNAP)
    assert (
        got[
            (
                "energyd_node_energy_joules_total",
                (("node_total", "true"), ("source", "perf"), ("zone", "package-0")),
            )
        ]
        == 100.0
    )
    assert got[("energyd_node_power_watts", (("node_total", "true"), ("zone", "dram-0")))] == 5.0
    pod = (
        ("namespace", "ml"),
        ("node_total", "true"),
        ("pod", "detect-0"),
        ("pod_uid", "uid-1"),
        ("zone", "package-0"),
    )
    assert got[("energyd_pod_energy_joules_total", pod)] == 30.0
    # A pod the API could not name is labelled by its uid.
    unnamed: Labels = (("namespace", ""), ("node_total", "true"), ("pod", "uid-2"), ("pod_uid", "uid-2"))
    unnamed += (("zone", "dram-0"),)
    assert got[("energyd_pod_energy_joules_total", unnamed)] == 0.1
    unnamed_c = (("container", "c9"), *unnamed)
    assert got[("energyd_container_energy_joules_total", tuple(sorted(unnamed_c)))] == 0.1
    container = (
        ("container", "app"),
        ("namespace", "ml"),
        ("node_total", "true"),
        ("pod", "detect-0"),
        ("pod_uid", "uid-1"),
        ("zone", "dram-0"),
    )
    assert got[("energyd_container_energy_joules_total", container)] == 2.5
    assert (
        got[
            (
                "energyd_unattributed_energy_joules_total",
                (("kind", "idle"), ("node_total", "true"), ("zone", "package-0")),
            )
        ]
        == 50.0
    )
    passed_over = (
        ("measured", "true"),
        ("reason", "energy_uj is readable only by root"),
        ("source", "powercap"),
    )
    assert got[("energyd_source_info", passed_over)] == 1.0
    assert (
        got[("energyd_source_info", (("measured", "true"), ("reason", "selected"), ("source", "perf")))]
        == 1.0
    )
    assert got[("energyd_read_errors_total", (("reader", "cgroup"), ("reason", "unreadable")))] == 2
    assert got[("energyd_read_errors_total", (("reader", "perf"), ("reason", "read_failed")))] == 0
    assert got[("energyd_read_errors_total", (("reader", "perf"), ("reason", "implausible")))] == 1
    assert got[("energyd_sample_duration_seconds", ())] == 0.004
    assert got[("energyd_pods", ())] == 1


def test_build_info_and_process_metrics_come_from_energyds_own_registry() -> None:
    got = scrape(lambda: SNAP)
    assert got[("energyd_build_info", (("version", __version__),))] == 1.0
    assert got[("process_resident_memory_bytes", ())] > 0
    assert got[("process_open_fds", ())] >= 3
    # Only our registry is served: nothing from the process-wide default one (its GC collector).
    assert not any(name.startswith("python_") for name, _ in got)


def test_no_energy_series_before_the_first_snapshot() -> None:
    got = scrape(lambda: None)
    assert not any(name.startswith("energyd_") and name != "energyd_build_info" for name, _ in got)
    assert ("energyd_build_info", (("version", __version__),)) in got


def test_the_cache_is_rendered_once_per_sample_never_per_scrape() -> None:
    calls: list[Snapshot | None] = []
    current: list[Snapshot | None] = [SNAP]

    def latest() -> Snapshot | None:
        calls.append(current[0])
        return current[0]

    exposition = Exposition(latest)
    with serving(exposition) as port:
        first = [get(port)[0] for _ in range(3)]
        assert len(calls) == 1  # the constructor's render; the three scrapes rendered nothing
        assert first[0] == first[1] == first[2] == exposition.body(gzipped=False)
        # A new sample: refresh() renders it once, and from then on scrapes serve it.
        current[0] = replace(
            SNAP, node_energy_j={"package-0": 200.0, "dram-0": 20.0}, timestamp_s=1700000001.0
        )
        exposition.refresh()
        served, headers = get(port)
        assert len(calls) == 2
    fresh = SnapshotRenderer().render(current[0])
    text = served.decode()
    assert text.startswith(fresh)  # the snapshot's part, byte for byte; then energyd's own metrics
    assert 'energyd_node_energy_joules_total{zone="package-0",node_total="true",source="perf"} 200.0' in text
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert int(headers["Content-Length"]) == len(served)


def test_gzip_when_the_client_accepts_it() -> None:
    exposition = Exposition(lambda: SNAP)
    with serving(exposition) as port:
        plain, plain_headers = get(port, "identity")
        zipped, headers = get(port, "gzip, deflate")
        refused, refused_headers = get(port, "gzip;q=0, identity")
    assert "Content-Encoding" not in plain_headers and "Content-Encoding" not in refused_headers
    assert headers["Content-Encoding"] == "gzip" and int(headers["Content-Length"]) == len(zipped)
    assert gzip.decompress(zipped) == plain == refused == exposition.body(gzipped=False)
    assert len(zipped) < len(plain) / 3


def many_pods(pods: int, zones: int, node_total_zones: int) -> Snapshot:
    """A snapshot of `pods` named pods, each with energy in every one of `zones` zones (the
    first `node_total_zones` of them in the node total) and one container."""
    names = [f"zone-{z}" for z in range(zones)]
    uids = [f"uid-{p}" for p in range(pods)]
    return replace(
        SNAP,
        node_energy_j=dict.fromkeys(names, 1.0),
        in_node_total={zone: z < node_total_zones for z, zone in enumerate(names)},
        node_power_w=dict.fromkeys(names, 1.0),
        pod_energy_j={zone: dict.fromkeys(uids, 1.0) for zone in names},
        container_energy_j={zone: {(uid, "c"): 1.0 for uid in uids} for zone in names},
        pod_meta={uid: PodMeta("ml", f"pod-{p}", {"c": "app"}) for p, uid in enumerate(uids)},
        pods_present=pods,
    )


def series_per_pod(got: Samples, metric: str) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for name, labels in got:
        if name == metric:
            counts[dict(labels)["pod"]] += 1
    return dict(counts)


def test_per_pod_series_only_for_the_node_total_zones_by_default() -> None:
    # 12 zones of which 4 make up the node (2 packages, 2 dram): 4 series per pod, not 12.
    snap = many_pods(pods=50, zones=12, node_total_zones=4)
    got = scrape(lambda: snap)
    assert series_per_pod(got, "energyd_pod_energy_joules_total") == {f"pod-{p}": 4 for p in range(50)}
    assert series_per_pod(got, "energyd_container_energy_joules_total") == {f"pod-{p}": 4 for p in range(50)}
    assert all(
        dict(labels)["node_total"] == "true"
        for name, labels in got
        if name == "energyd_pod_energy_joules_total"
    )
    # The node and unattributed figures keep every zone.
    assert sum(name == "energyd_node_energy_joules_total" for name, _ in got) == 12
    everything = scrape(lambda: snap, all_pod_zones=True)
    assert series_per_pod(everything, "energyd_pod_energy_joules_total") == {
        f"pod-{p}": 12 for p in range(50)
    }


def test_label_text_follows_a_pod_named_later() -> None:
    # A pod first seen by uid, then named by the API: its series take the name at once.
    renderer = SnapshotRenderer()
    unnamed = replace(SNAP, pod_meta={})
    assert 'pod="uid-1"' in renderer.render(unnamed)
    named = renderer.render(SNAP)
    assert 'pod="uid-1"' not in named and 'namespace="ml",pod="detect-0",pod_uid="uid-1"' in named
    assert 'pod_uid="uid-2"' in named
    gone = replace(SNAP, pod_energy_j={"package-0": {"uid-1": 1.0}}, container_energy_j={})
    assert 'pod_uid="uid-2"' not in renderer.render(gone)


def test_node_total_marks_the_zones_that_sum_to_the_node(tmp_path: Path) -> None:
    # A laptop-like node: package-0 with its core sub-zone, and psys, which meters the whole
    # platform (package included): psys alone makes up the node, so summing every zone would
    # count the package's joules two or three times.
    node = NodeTree(tmp_path)
    sysfs = node.roots.sysfs
    write_powercap_zone(sysfs, "0:0", "core", 0)
    write_powercap_zone(sysfs, 1, "psys", 0)
    uid = pod_uid(1)
    node.cgroups.set_pod(uid, 0)
    node.cgroups.set_container(uid, container_id(1), 0)
    node.cgroups.set_container(uid, container_id(1, 1), 0)
    source, _ = open_source("powercap", node.roots)
    sampler = Sampler(
        source,
        functools.partial(read_cpu_times, node.roots.procfs),
        PodUsageReader(node.roots.cgroup),
        NoNames(),
        all_pod_zones=True,  # as `--pod-zones all` wires it: the default renderer shows a subset
    )
    sampler.step(100.0)
    # 1 s on 4 CPUs, the pod busy on one: psys 50 J, package 30 J, core 20 J.
    node.set_energy_uj(30_000_000)
    set_energy(sysfs, "0:0", 20_000_000)
    set_energy(sysfs, 1, 50_000_000)
    node.set_cpu(busy_s=2.0, idle_s=2.0)
    node.cgroups.set_pod(uid, 1_000_000)
    node.cgroups.set_container(uid, container_id(1), 600_000)
    node.cgroups.set_container(uid, container_id(1, 1), 400_000)
    snap = sampler.step(101.0)
    source.close()
    got = scrape(lambda: snap, all_pod_zones=True)
    default = scrape(lambda: snap)

    def by_total(metric: str) -> dict[str, float]:
        """The metric summed per node_total value, as `sum by (node_total)` would."""
        sums: dict[str, float] = defaultdict(float)
        for (name, labels), value in got.items():
            if name == metric:
                sums[dict(labels)["node_total"]] += value
        return dict(sums)

    flags = {
        dict(labels)["zone"]: dict(labels)["node_total"]
        for name, labels in got
        if name == "energyd_node_power_watts"
    }
    assert flags == {"psys": "true", "package-0": "false", "core-0": "false"}
    assert by_total("energyd_node_power_watts") == pytest.approx({"true": 50.0, "false": 50.0})
    assert by_total("energyd_node_energy_joules_total") == pytest.approx({"true": 50.0, "false": 50.0})
    # The pod had a quarter of the CPU time: a quarter of psys is its node total.
    assert by_total("energyd_pod_energy_joules_total") == pytest.approx({"true": 12.5, "false": 12.5})
    assert by_total("energyd_unattributed_energy_joules_total") == pytest.approx(
        {"true": 37.5, "false": 37.5}
    )
    assert by_total("energyd_container_energy_joules_total") == pytest.approx({"true": 12.5, "false": 12.5})
    for name, labels in got:
        if name.startswith(("energyd_node_", "energyd_pod_", "energyd_container_", "energyd_unattributed_")):
            labels_d = dict(labels)
            assert labels_d["node_total"] == flags[labels_d["zone"]], (name, labels)
    # By default pods and containers have series for psys alone: the same node total.
    for name in ("energyd_pod_energy_joules_total", "energyd_container_energy_joules_total"):
        zones = {dict(labels)["zone"] for n, labels in default if n == name}
        assert zones == {"psys"}, name
        assert sum(v for (n, _), v in default.items() if n == name) == pytest.approx(12.5)
