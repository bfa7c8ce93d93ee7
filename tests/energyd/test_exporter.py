"""The exposition served on /metrics for a given Snapshot, parsed back as Prometheus would."""

from __future__ import annotations

import functools
import urllib.request
from collections import defaultdict
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from energyd.cgroups import PodUsageReader
from energyd.cgroups.names import NoNames, PodMeta
from energyd.exporter import serve
from energyd.procstat import read_cpu_times
from energyd.sampler import Sampler, Snapshot, SourceStatus
from energyd.sources.select import open_source
from tests.energyd.cgroup_trees import NodeTree, container_id, pod_uid
from tests.energyd.fixture_trees import set_energy, write_powercap_zone
from tests.prom import free_port

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


def scrape(port: int) -> dict[tuple[str, Labels], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_show_the_snapshot() -> None:
    port = free_port()
    server = serve(lambda: SNAP, "127.0.0.1", port)
    try:
        got = scrape(port)
    finally:
        server.shutdown()
        server.server_close()
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
    # Only our registry is served: nothing from the process-wide default collectors.
    assert not any(name.startswith(("python_", "process_")) for name, _ in got)


def test_nothing_before_the_first_snapshot() -> None:
    port = free_port()
    server = serve(lambda: None, "127.0.0.1", port)
    try:
        assert scrape(port) == {}
    finally:
        server.shutdown()
        server.server_close()


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
    port = free_port()
    server = serve(lambda: snap, "127.0.0.1", port)
    try:
        got = scrape(port)
    finally:
        server.shutdown()
        server.server_close()

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
