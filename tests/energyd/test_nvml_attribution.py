"""GPU energy split between pods, system and idle: the recorded fixture end to end with exact
figures, conservation per GPU zone over generated recordings (hypothesis), process -> pod from
/proc/<pid>/cgroup, and the daemon wired with a GPU (exporter, probe, --gpu off)."""

from __future__ import annotations

import json
import math
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from energyd.cgroups.names import NoNames
from energyd.cli import build, main
from energyd.config import Config
from energyd.gpu import GpuSource, format_gpu_probe
from energyd.gpu_attribution import GpuSampler, pod_of_pid, probe_gpu
from energyd.sampler import Snapshot
from energyd.sources.base import delta_uj
from energyd.sources.nvml_replay import FORMAT, ReplayNvml
from tests.energyd.cgroup_trees import NodeTree, container_id, pod_uid

SYNTHETIC = Path(__file__).parent / "fixtures" / "nvml" / "synthetic-2gpu-mig.json"
A, B = pod_uid(1), pod_uid(2)
CA, CB = container_id(1), container_id(2)


def write_cgroup(procfs: Path, pid: int, text: str) -> None:
    (procfs / str(pid)).mkdir(parents=True, exist_ok=True)
    (procfs / str(pid) / "cgroup").write_text(text)


def systemd_v2(uid: str, cid: str) -> str:
    unit = uid.replace("-", "_")
    return (
        "0::/kubepods.slice/kubepods-burstable.slice/"
        f"kubepods-burstable-pod{unit}.slice/cri-containerd-{cid}.scope\n"
    )


def cgroupfs_v1(uid: str, cid: str) -> str:
    return "".join(
        f"{n}:{ctrl}:/kubepods/besteffort/pod{uid}/{cid}\n"
        for n, ctrl in ((12, "memory"), (4, "cpu,cpuacct"))
    )


@pytest.fixture
def procfs(tmp_path: Path) -> Path:
    root = tmp_path / "proc"
    write_cgroup(root, 4242, systemd_v2(A, CA))
    write_cgroup(root, 5151, cgroupfs_v1(B, CB))
    write_cgroup(root, 777, "0::/system.slice/nvidia-persistenced.service\n")
    return root  # pid 6000 has no entry: it exited, or is not visible


def empty_snapshot() -> Snapshot:
    return Snapshot(0.0, "estimate", False, (), {}, {}, {}, {}, {}, {}, {}, {}, 0.0, 0)


def assert_conserved(snap: Snapshot, zone: str) -> None:
    parts = [*snap.pod_energy_j[zone].values(), *(snap.unattributed_j[(zone, k)] for k in ("system", "idle"))]
    assert math.isclose(math.fsum(parts), snap.node_energy_j[zone], rel_tol=1e-9, abs_tol=1e-9)
    assert min(parts, default=0.0) >= 0.0


def test_pod_of_pid_reads_both_cgroup_versions_and_drivers(procfs: Path) -> None:
    assert pod_of_pid(procfs, 4242) == (A, CA)
    assert pod_of_pid(procfs, 5151) == (B, CB)
    assert pod_of_pid(procfs, 777) is None
    assert pod_of_pid(procfs, 6000) is None
    write_cgroup(procfs, 9, f"0::/kubepods.slice/kubepods-pod{A.replace('-', '_')}.slice\n")
    assert pod_of_pid(procfs, 9) == (A, None)  # the pod's own cgroup (a guaranteed pod's sandbox)


def test_the_fixture_end_to_end_with_exact_figures(procfs: Path) -> None:
    sampler = GpuSampler(GpuSource(ReplayNvml.load(SYNTHETIC)), procfs, NoNames())
    assert sampler.methods() == {"gpu-0": "process-utilization", "gpu-1": "memory"}
    snaps = [sampler.step(100.0 + t, empty_snapshot()) for t in range(5)]
    last = snaps[-1]
    # gpu-0: +450 J (A at 70 % SM, a host process at 10 %), +450 J (A at 50 %), a driver reload,
    # +80 J (A at 25 %).
    reload_j = delta_uj(5_900_000_000, 2_000_000, None) / 1e6
    assert last.node_energy_j["gpu-0"] == pytest.approx(980.0 + reload_j)
    assert last.pod_energy_j["gpu-0"] == {A: pytest.approx(0.7 * 450 + 0.5 * 450 + 0.25 * 80)}
    assert last.container_energy_j["gpu-0"] == {(A, CA): pytest.approx(560.0)}
    assert last.unattributed_j[("gpu-0", "system")] == pytest.approx(45.0)
    assert last.unattributed_j[("gpu-0", "idle")] == pytest.approx(980.0 + reload_j - 560.0 - 45.0)
    # gpu-1 (MIG: memory share of the whole interval): B holds 30 of the 40 GiB, pid 6000 the
    # rest (no cgroup: system). Its third pass failed (GPU lost): the fourth covers both seconds.
    assert last.node_energy_j["gpu-1"] == pytest.approx(400.0)
    assert last.pod_energy_j["gpu-1"] == {B: pytest.approx(300.0)}
    assert last.unattributed_j[("gpu-1", "system")] == pytest.approx(100.0)
    assert snaps[2].node_energy_j["gpu-1"] == pytest.approx(200.0)
    assert snaps[3].node_power_w["gpu-1"] == pytest.approx(100.0)  # 200 J over 2 s
    assert snaps[1].node_power_w["gpu-0"] == pytest.approx(450.0)
    assert sum(n for (reader, _), n in last.read_errors.items() if reader == "nvml") == 1
    assert last.in_node_total == {"gpu-0": True, "gpu-1": True}
    assert last.zone_source == {"gpu-0": "nvml", "gpu-1": "nvml"}
    assert last.gpu_info["gpu-1"] == {
        "uuid": "GPU-5f3c2a10-0000-4000-8000-000000000001",
        "model": "NVIDIA H200",
        "attribution": "memory",
        "mig": "true",
    }
    for snap in snaps:
        for zone in snap.node_energy_j:
            assert_conserved(snap, zone)
    totals = [s.node_energy_j["gpu-0"] for s in snaps]
    assert totals == sorted(totals)  # counters never decrease, through the reload


def test_a_pod_gone_for_the_grace_period_is_dropped(procfs: Path) -> None:
    sampler = GpuSampler(GpuSource(ReplayNvml.load(SYNTHETIC)), procfs, NoNames(), grace_period_s=2.0)
    for t in range(3):
        snap = sampler.step(100.0 + t, empty_snapshot())
    assert A in snap.pod_energy_j["gpu-0"]
    snap = sampler.step(110.0, empty_snapshot())  # A's last sample was at t=102
    assert A not in snap.pod_energy_j["gpu-0"]
    assert (A, CA) not in snap.container_energy_j["gpu-0"]


PIDS = (4242, 5151, 777, 6000)


@st.composite
def recordings(draw: st.DrawFn) -> tuple[dict[str, Any], str, int]:
    method = draw(st.sampled_from(["process-utilization", "accounting", "memory"]))
    passes = draw(st.integers(2, 8))
    energy = [draw(st.integers(0, 10**9))]
    for _ in range(passes):
        if draw(st.booleans()) and draw(st.integers(0, 5)) == 0:
            energy.append(draw(st.integers(0, 10**6)))  # a driver reload
        else:
            energy.append(energy[-1] + draw(st.integers(0, 2_000_000)))
    energy_answers: list[Any] = [energy[0], *energy]
    lost = draw(st.integers(1, passes + 1))
    if draw(st.booleans()):
        energy_answers[lost] = {"error": "gpu_lost"}
    answers: dict[str, list[Any]] = {
        "init": [None],
        "driver_version": ["580.159.04"],
        "device_count": [1],
        "device/0": [{"uuid": "GPU-p", "name": "NVIDIA H200", "mig_enabled": method == "memory"}],
        "total_energy_mj/0": energy_answers,
    }
    pid_st = st.sampled_from(PIDS)
    if method == "process-utilization":
        samples: list[Any] = [[]]
        for k in range(passes + 1):
            drawn = draw(st.lists(st.tuples(pid_st, st.integers(0, 150)), max_size=6))
            samples.append(
                [
                    {"pid": p, "timestamp_us": 10**15 + k * 10**6 + i, "sm_util_pct": u}
                    for i, (p, u) in enumerate(drawn)
                ]
            )
        answers["process_samples/0"] = samples
    elif method == "accounting":
        answers["process_samples/0"] = [{"error": "not_supported"}]
        rows = []
        for _ in range(passes + 2):
            stats = draw(
                st.dictionaries(pid_st, st.tuples(st.integers(0, 100), st.integers(0, 10**7)), max_size=4)
            )
            rows.append(
                [{"pid": p, "gpu_util_pct": u, "time_ms": t, "running": True} for p, (u, t) in stats.items()]
            )
        answers["accounting/0"] = rows
    else:
        answers["process_samples/0"] = [{"error": "not_supported"}]
        procs = draw(st.dictionaries(pid_st, st.one_of(st.none(), st.integers(0, 2**40)), max_size=4))
        answers["compute_processes/0"] = [[{"pid": p, "used_bytes": m} for p, m in procs.items()]]
        if draw(st.booleans()):
            answers["utilization_pct/0"] = [draw(st.integers(0, 100))]
    return {"format": FORMAT, "answers": answers}, method, passes


@settings(max_examples=60, deadline=None)
@given(recordings(), st.lists(st.floats(0.0, 5.0), min_size=9, max_size=9))
def test_conservation_per_gpu_zone(generated: tuple[dict[str, Any], str, int], gaps_s: list[float]) -> None:
    recording, method, passes = generated
    procfs = Path(__file__).parent / "fixtures" / "nvml" / "proc"  # pids 4242 (A), 5151 (B), 777 (host)
    sampler = GpuSampler(GpuSource(ReplayNvml(recording)), procfs, NoNames())
    assert sampler.methods() == {"gpu-0": method}
    now_s = 1000.0
    for gap_s in gaps_s[: passes + 1]:
        now_s += gap_s
        snap = sampler.step(now_s, empty_snapshot())
        if "gpu-0" in snap.node_energy_j:
            assert_conserved(snap, "gpu-0")
            assert set(snap.pod_energy_j["gpu-0"]) <= {A, B}


def test_the_daemon_exports_gpu_zones_beside_the_cpu_ones(tmp_path: Path) -> None:
    node = NodeTree(tmp_path)
    node.cgroups.set_pod(A, 0)
    write_cgroup(node.roots.procfs, 4242, systemd_v2(A, CA))
    config = Config(roots=node.roots, source="powercap", host="127.0.0.1", port=0, gpu="auto")
    daemon = build(config, NoNames(), ReplayNvml.load(SYNTHETIC))
    try:
        daemon.step()
        node.set_energy_uj(2_000_000)
        node.set_cpu(busy_s=1.0, idle_s=1.0)
        snap = daemon.step()
        assert [(s.source, s.selected) for s in snap.sources] == [("powercap", True), ("nvml", True)]
        assert {"package-0", "gpu-0", "gpu-1"} <= set(snap.node_energy_j)
        port = daemon.serve()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            body = resp.read().decode()
    finally:
        daemon.close()
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }

    def value(name: str, **labels: str) -> float | None:
        return samples.get((name, frozenset(labels.items())))

    assert value("energyd_node_energy_joules_total", node_total="true", source="nvml", zone="gpu-0")
    assert value("energyd_node_energy_joules_total", node_total="true", source="powercap", zone="package-0")
    gpu_info = {
        "attribution": "process-utilization",
        "mig": "false",
        "model": "NVIDIA H200",
        "uuid": "GPU-5f3c2a10-0000-4000-8000-000000000000",
        "zone": "gpu-0",
    }
    assert value("energyd_gpu_info", **gpu_info) == 1.0
    assert value("energyd_source_info", measured="true", reason="selected", source="nvml") == 1.0
    assert value("energyd_read_errors_total", reader="nvml", reason="gpu_lost") == 0.0


def test_without_a_gpu_the_daemon_runs_on_and_says_why(tmp_path: Path) -> None:
    node = NodeTree(tmp_path)
    failing = ReplayNvml({"format": FORMAT, "answers": {"init": [{"error": "library_not_found"}]}})
    daemon = build(Config(roots=node.roots, source="powercap", gpu="auto"), NoNames(), failing)
    try:
        daemon.step()
        node.set_energy_uj(1_000_000)
        snap = daemon.step()
    finally:
        daemon.close()
    nvml = [s for s in snap.sources if s.source == "nvml"]
    assert len(nvml) == 1 and not nvml[0].selected and "libnvidia-ml.so.1" in nvml[0].reason
    assert set(snap.node_energy_j) == {"package-0"}
    off = build(Config(roots=node.roots, source="powercap", gpu="off"), NoNames(), failing)
    try:
        assert [s.source for s in off.step().sources] == ["powercap"]
    finally:
        off.close()


def test_probe_lists_the_gpus_and_how_each_is_attributed() -> None:
    text = format_gpu_probe(probe_gpu(ReplayNvml.load(SYNTHETIC)))
    assert max(len(line) for line in text.splitlines()) <= 100
    flat = " ".join(text.split())
    assert "nvml yes measured" in flat and "driver 580.159.04" in flat
    assert (
        "gpu-0: NVIDIA H200 GPU-5f3c2a10-0000-4000-8000-000000000000; attribution by process-utilization"
        in flat
    )
    assert "gpu-1: NVIDIA H200" in flat and "attribution by memory, MIG on" in flat


def test_probe_on_this_machine_says_there_is_no_driver(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    node = NodeTree(tmp_path)
    roots = ["--sysfs-root", str(node.roots.sysfs), "--procfs-root", str(node.roots.procfs)]
    assert main(["probe", *roots, "--cgroup-root", str(node.roots.cgroup)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "nvml no no NVIDIA driver here: libnvidia-ml.so.1 was not found" in out
    assert main(["probe", "--gpu", "off", *roots]) == 0
    assert "nvml" not in capsys.readouterr().out


@pytest.mark.parametrize("path", sorted(SYNTHETIC.parent.glob("*.json")), ids=lambda p: p.name)
def test_every_committed_recording_replays_conserved(path: Path, procfs: Path) -> None:
    """Each recording under fixtures/nvml (synthetic, and the real ones scripts/gpu-measure.sh
    takes) through the daemon's GPU path: GPU zones, counters that never fall, conservation."""
    nvml = ReplayNvml.load(path)
    sampler = GpuSampler(GpuSource(nvml), procfs, NoNames())
    passes = len(json.loads(path.read_text())["answers"]["total_energy_mj/0"])
    previous: dict[str, float] = {}
    for t in range(passes):
        snap = sampler.step(100.0 + t, empty_snapshot())
        assert all(zone.startswith("gpu-") for zone in snap.node_energy_j)
        for zone, j in snap.node_energy_j.items():
            assert_conserved(snap, zone)
            assert j >= previous.get(zone, 0.0)
        previous = dict(snap.node_energy_j)
    assert previous


def test_a_gpu_that_errs_at_start_is_asked_again_for_its_method(procfs: Path) -> None:
    answers: dict[str, list[Any]] = {
        "init": [None],
        "driver_version": ["580.159.04"],
        "device_count": [1],
        "device/0": [{"uuid": "GPU-a", "name": "NVIDIA H200", "mig_enabled": False}],
        "total_energy_mj/0": [0, 0, 100_000],
        "process_samples/0": [
            {"error": "gpu_lost"},
            [],
            [],
            [{"pid": 4242, "timestamp_us": 5, "sm_util_pct": 40}],
        ],
    }
    sampler = GpuSampler(GpuSource(ReplayNvml({"format": FORMAT, "answers": answers})), procfs, NoNames())
    assert sampler.methods() == {"gpu-0": ""}
    assert sampler.step(1.0, empty_snapshot()).gpu_info["gpu-0"]["attribution"] == "process-utilization"
    snap = sampler.step(2.0, empty_snapshot())
    assert snap.pod_energy_j["gpu-0"] == {A: pytest.approx(40.0)}


def test_a_pid_is_resolved_again_once_it_left_the_gpu(procfs: Path) -> None:
    def sample(ts: int) -> list[dict[str, int]]:
        return [{"pid": 4242, "timestamp_us": ts, "sm_util_pct": 100}]

    answers: dict[str, list[Any]] = {
        "init": [None],
        "driver_version": ["580.159.04"],
        "device_count": [1],
        "device/0": [{"uuid": "GPU-a", "name": "NVIDIA H200", "mig_enabled": False}],
        "total_energy_mj/0": [0, 0, 10_000, 20_000, 30_000, 40_000],
        "process_samples/0": [[], [], sample(1), sample(2), [], sample(4)],
    }
    sampler = GpuSampler(GpuSource(ReplayNvml({"format": FORMAT, "answers": answers})), procfs, NoNames())
    for t in range(3):
        snap = sampler.step(float(t), empty_snapshot())
    assert snap.pod_energy_j["gpu-0"] == {A: pytest.approx(20.0)}
    write_cgroup(procfs, 4242, systemd_v2(B, CB))  # the pid is reused by a process of pod B
    snap = sampler.step(3.0, empty_snapshot())  # no sample: the pid left the GPU
    assert snap.pod_energy_j["gpu-0"] == {A: pytest.approx(20.0)}
    snap = sampler.step(4.0, empty_snapshot())  # back: its pod is read again
    assert snap.pod_energy_j["gpu-0"] == {A: pytest.approx(20.0), B: pytest.approx(10.0)}
