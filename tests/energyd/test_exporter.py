"""The exposition served on /metrics for a given Snapshot, parsed back as Prometheus would."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from energyd.cgroups.names import PodMeta
from energyd.exporter import serve
from energyd.sampler import Snapshot, SourceStatus
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
    node_power_w={"package-0": 50.0, "dram-0": 5.0},
    pod_energy_j={"package-0": {"uid-1": 30.0, "uid-2": 1.0}, "dram-0": {"uid-1": 3.0, "uid-2": 0.1}},
    container_energy_j={
        "package-0": {("uid-1", "c1"): 25.0},
        "dram-0": {("uid-1", "c1"): 2.5, ("uid-2", "c9"): 0.1},
    },
    pod_meta={"uid-1": PodMeta("ml", "detect-0", {"c1": "app"})},
    unattributed_j={("package-0", "system"): 20.0, ("package-0", "idle"): 50.0},
    read_errors={"cgroup": 2},
    sample_duration_s=0.004,
    pods_present=1,
)


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
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
    assert got[("energyd_node_energy_joules_total", (("source", "perf"), ("zone", "package-0")))] == 100.0
    assert got[("energyd_node_power_watts", (("zone", "dram-0"),))] == 5.0
    pod = (("namespace", "ml"), ("pod", "detect-0"), ("pod_uid", "uid-1"), ("zone", "package-0"))
    assert got[("energyd_pod_energy_joules_total", pod)] == 30.0
    # A pod the API could not name is labelled by its uid.
    unnamed = (("namespace", ""), ("pod", "uid-2"), ("pod_uid", "uid-2"), ("zone", "dram-0"))
    assert got[("energyd_pod_energy_joules_total", unnamed)] == 0.1
    unnamed_c = (("container", "c9"), *unnamed[:3], ("zone", "dram-0"))
    assert got[("energyd_container_energy_joules_total", tuple(sorted(unnamed_c)))] == 0.1
    container = (
        ("container", "app"),
        ("namespace", "ml"),
        ("pod", "detect-0"),
        ("pod_uid", "uid-1"),
        ("zone", "dram-0"),
    )
    assert got[("energyd_container_energy_joules_total", container)] == 2.5
    assert (
        got[("energyd_unattributed_energy_joules_total", (("kind", "idle"), ("zone", "package-0")))] == 50.0
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
    assert got[("energyd_read_errors_total", (("reader", "cgroup"),))] == 2
    assert got[("energyd_read_errors_total", (("reader", "perf"),))] == 0
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
