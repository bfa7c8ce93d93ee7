"""`adapter profile --device cuda` without a GPU or torch: the measuring loop of the CLI on a
simulated node whose GPU answers through a replayed NVML recording, with exact expected figures
(idle power measured apart, energy per request above idle), the measured_on words, and the
refusals (no CUDA device, CUDA and NVML numbering GPUs differently)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from adapter.profiler.cli import measure_pipeline, open_gpu
from adapter.profiler.gpu import GpuEnergy, clocks_policy, describe_gpu, describe_gpu_run
from adapter.profiler.measure import EnergyMeter, Settings
from adapter.profiler.models import StageSpec, VariantSpec
from adapter.profiler.writer import build_profile, write_profile
from adapter.profiles import load_profile
from energyd.gpu import GpuSource
from energyd.sources.base import SourceError
from energyd.sources.nvml import Clocks
from energyd.sources.nvml_replay import FORMAT, ReplayNvml
from tests.adapter.test_profiler import SimulatedNode

REPO = Path(__file__).resolve().parents[2]
UUID = "GPU-5f3c2a10-0000-4000-8000-000000000000"
IDLE_W, BUSY_W = 80.0, 320.0


def gpu_recording(energy_mj: list[int]) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "recorded_on": "test",
        "answers": {
            "init": [None],
            "driver_version": ["580.159.04"],
            "device_count": [1],
            "device/0": [{"uuid": UUID, "name": "NVIDIA H200", "mig_enabled": False}],
            "total_energy_mj/0": energy_mj,
            "clocks/0": [
                {"sm_max_mhz": 1980, "sm_app_mhz": 1980, "sm_app_default_mhz": 1980, "persistence": True}
            ],
        },
    }


def counter_at(t_s: float) -> int:
    """The GPU's counter (mJ) at time t on the simulated node: 80 W always, 320 W more while a
    batch runs, and batches run back to back from t = 2 s (after the first idle window) to 5.9 s."""
    busy_s = min(max(t_s - 2.0, 0.0), 3.9)
    return round((IDLE_W * t_s + BUSY_W * busy_s) * 1000)


def test_the_cuda_path_measures_energy_above_idle_per_request(tmp_path: Path) -> None:
    node = SimulatedNode(tmp_path / "proc")
    # The meter's marks fall at these times (idle window, three sizes, idle window); the first
    # answer is the GPU source's opening read.
    marks = [0.0, 0.0, 2.0, 2.1, 3.1, 3.3, 4.3, 4.7, 5.9, 5.9, 7.9]
    source = GpuSource(ReplayNvml(gpu_recording([counter_at(t) for t in marks])))
    meter = EnergyMeter(source, procfs=node.procfs, clock=node.clock, sleep=node.sleep)
    spec = VariantSpec("toy", 50.0, "made up for the test", lambda device: node.prepare, "nothing")
    opts = Settings(repeats=3, duration_s=1.0, max_batch_latency_s=5.0)
    measured, windows, dropped = measure_pipeline(
        [StageSpec("spin", (spec,))], [1, 2, 4], meter, opts, 1, 2.0, "cuda:0", node.clock, node.cpu_clock
    )
    _, gpu_words = describe_gpu(source, 0)
    source.close()
    assert dropped == {}
    assert [w.duration_s for w in windows] == pytest.approx([2.0, 1.0, 1.0, 1.2, 2.0])
    energy = GpuEnergy.from_idle([windows[0], windows[-1]])
    assert energy.idle_w == pytest.approx(IDLE_W)
    measured_on = describe_gpu_run(gpu_words, energy, 2.0, "median", "host test")
    profile = build_profile("toy", measured_on, measured, energy, "median", "nvml")
    path = tmp_path / "toy-gpu.yaml"
    write_profile(profile, path)
    assert load_profile(path).energy_source == "nvml"
    variant = load_profile(path).stages[0].variant("toy")
    assert variant.idle_power_w == pytest.approx(IDLE_W)  # the whole GPU is one replica
    for batch in variant.batches:
        # 0.1 s of the 320 W above idle per request, whatever the batch size.
        assert batch.energy_per_request_j == pytest.approx(BUSY_W * 0.1, rel=1e-3)
        assert batch.throughput_rps == pytest.approx(10.0)
    assert profile.measured_on is not None
    for words in (
        f"GPU NVIDIA H200 ({UUID}), NVIDIA driver 580.159.04",
        "default clocks (GPU Boost, SM up to 1980 MHz), persistence mode on",
        "energy measured by NVML (nvmlDeviceGetTotalEnergyConsumption",
        "idle_power_w = the GPU's idle power, 80.0 W",
    ):
        assert words in profile.measured_on


def test_a_point_below_idle_costs_nothing_rather_than_negative_joules() -> None:
    from adapter.profiler.measure import Point
    from adapter.profiler.stats import Window

    energy = GpuEnergy(idle_w=100.0)
    point = Point(4, (0.1,), wall_s=1.0, cpu_s=1.0, window=Window(1.0, 90.0, 1.0))
    assert energy.energy_per_request_j(point) == 0.0
    with pytest.raises(ValueError, match="idle window"):
        GpuEnergy.from_idle([])


def test_clocks_policy_says_how_clocks_were_set() -> None:
    assert clocks_policy(Clocks(1980, 1500, 1755, False)) == (
        "application clocks set to SM 1500 MHz (default 1755 MHz), persistence mode off"
    )
    assert clocks_policy(Clocks(None, None, None, None)) == "default clocks (GPU Boost)"


def fake_torch(available: bool, uuid: str | None) -> Any:
    props = SimpleNamespace(uuid=uuid) if uuid is not None else SimpleNamespace()
    return SimpleNamespace(
        cuda=SimpleNamespace(is_available=lambda: available, get_device_properties=lambda i: props)
    )


def test_open_gpu_refuses_without_cuda_or_when_numbering_differs() -> None:
    def replay() -> ReplayNvml:
        return ReplayNvml(gpu_recording([0]))

    with pytest.raises(SourceError, match="torch sees no CUDA device"):
        open_gpu(fake_torch(False, None), 0, replay())
    with pytest.raises(SourceError) as differs:
        open_gpu(fake_torch(True, "11111111-0000-4000-8000-000000000000"), 0, replay())
    assert "CUDA_DEVICE_ORDER=PCI_BUS_ID" in differs.value.fix
    source = open_gpu(fake_torch(True, UUID.removeprefix("GPU-")), 0, replay())
    assert [z.name for z in source.zones()] == ["gpu-0"]
    source.close()
