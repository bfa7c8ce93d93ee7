"""The NVML interface: NVIDIA's real binding (names, signatures, its error classes, and what it
does on this GPU-less machine), the replay of recordings, the recorder, and the GPU source's
reasons for every way NVML can fail."""

from __future__ import annotations

import importlib
import inspect
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from energyd.gpu import GpuSource
from energyd.sources.base import SourceError
from energyd.sources.nvml import (
    NVML_ERROR_KINDS,
    PYNVML_NAMES,
    REASONS,
    AccountingEntry,
    Clocks,
    Device,
    NvmlError,
    ProcessMemory,
    ProcessSample,
    PynvmlNvml,
)
from energyd.sources.nvml_replay import FORMAT, RecordingNvml, ReplayNvml

FIXTURES = Path(__file__).parent / "fixtures" / "nvml"
SYNTHETIC = FIXTURES / "synthetic-2gpu-mig.json"
pynvml: Any = importlib.import_module("pynvml")


def replay(**answers: list[Any]) -> ReplayNvml:
    base: dict[str, list[Any]] = {
        "init": [None],
        "driver_version": ["580.159.04"],
        "device_count": [1],
        "device/0": [{"uuid": "GPU-a", "name": "NVIDIA H200", "mig_enabled": False}],
        "total_energy_mj/0": [1000],
    }
    base.update(answers)
    return ReplayNvml({"format": FORMAT, "answers": base})


def test_every_pynvml_name_used_exists_with_the_arity_called() -> None:
    assert [n for n in PYNVML_NAMES if not hasattr(pynvml, n)] == []
    for name in NVML_ERROR_KINDS:
        assert issubclass(getattr(pynvml, name), pynvml.NVMLError), name
    arity = {
        "nvmlDeviceGetTotalEnergyConsumption": 1,
        "nvmlDeviceGetProcessUtilization": 2,
        "nvmlDeviceGetAccountingStats": 2,
        "nvmlDeviceGetComputeRunningProcesses": 1,
        "nvmlDeviceGetClock": 3,
        "nvmlDeviceGetMaxClockInfo": 2,
        "nvmlDeviceGetHandleByIndex": 1,
    }
    for name, n in arity.items():
        assert len(inspect.signature(getattr(pynvml, name)).parameters) == n, name
    # The fields read from pynvml's structures exist on them.
    assert {"pid", "timeStamp", "smUtil"} <= {f[0] for f in pynvml.c_nvmlProcessUtilizationSample_t._fields_}
    assert {"gpuUtilization", "time", "isRunning"} <= {f[0] for f in pynvml.c_nvmlAccountingStats_t._fields_}
    assert {"pid", "usedGpuMemory"} <= {f[0] for f in pynvml.c_nvmlProcessInfo_t._fields_}
    assert "gpu" in {f[0] for f in pynvml.c_nvmlUtilization_t._fields_}


def test_the_real_binding_on_a_machine_without_a_driver_says_so() -> None:
    # This machine has pynvml but no NVIDIA driver: nvmlInit raises NVMLError_LibraryNotFound.
    nvml = PynvmlNvml()
    with pytest.raises(NvmlError) as caught:
        nvml.init()
    assert caught.value.kind == "library_not_found"
    with pytest.raises(SourceError) as refused:
        GpuSource(PynvmlNvml())
    assert "libnvidia-ml.so.1" in refused.value.reason and "NVIDIA_DRIVER_CAPABILITIES" in refused.value.fix


def fake_pynvml(**functions: Any) -> SimpleNamespace:
    """pynvml's own constants and exception classes, with functions that answer as a GPU would."""
    names = [n for n in PYNVML_NAMES if not n.startswith("nvml")]
    module = SimpleNamespace(**{n: getattr(pynvml, n) for n in names})
    defaults: dict[str, Any] = {
        "nvmlInit": lambda: None,
        "nvmlShutdown": lambda: None,
        "nvmlDeviceGetHandleByIndex": lambda i: f"handle-{i}",
    }
    for name, fn in {**defaults, **functions}.items():
        setattr(module, name, fn)
    return module


def raises(error_class: str) -> Any:
    def fn(*_args: Any) -> Any:
        raise getattr(pynvml, error_class)()

    return fn


@pytest.mark.parametrize(("error_class", "kind"), sorted(NVML_ERROR_KINDS.items()))
def test_each_pynvml_error_class_maps_to_its_kind(error_class: str, kind: str) -> None:
    nvml = PynvmlNvml(fake_pynvml(nvmlDeviceGetTotalEnergyConsumption=raises(error_class)))
    nvml.init()
    with pytest.raises(NvmlError) as caught:
        nvml.total_energy_mj(0)
    assert caught.value.kind == kind


def test_the_real_binding_reads_pynvml_shaped_answers() -> None:
    sample = SimpleNamespace(pid=42, timeStamp=1_700_000_000_000_000, smUtil=130, memUtil=5)
    nvml = PynvmlNvml(
        fake_pynvml(
            nvmlSystemGetDriverVersion=lambda: "580.159.04",
            nvmlDeviceGetCount=lambda: 1,
            nvmlDeviceGetMigMode=raises("NVMLError_NotSupported"),
            nvmlDeviceGetUUID=lambda h: "GPU-x",
            nvmlDeviceGetName=lambda h: "NVIDIA H200\x07",
            nvmlDeviceGetTotalEnergyConsumption=lambda h: 123_456,
            nvmlDeviceGetProcessUtilization=lambda h, since: [sample] if since < sample.timeStamp else [],
            nvmlDeviceGetComputeRunningProcesses=lambda h: [SimpleNamespace(pid=42, usedGpuMemory=None)],
            nvmlDeviceGetUtilizationRates=lambda h: SimpleNamespace(gpu=37, memory=3),
            nvmlDeviceGetAccountingMode=lambda h: pynvml.NVML_FEATURE_DISABLED,
            nvmlDeviceGetPersistenceMode=lambda h: pynvml.NVML_FEATURE_ENABLED,
            nvmlDeviceGetMaxClockInfo=lambda h, clock: 1980,
            nvmlDeviceGetClock=raises("NVMLError_NotSupported"),
        )
    )
    nvml.init()
    assert nvml.driver_version() == "580.159.04" and nvml.device_count() == 1
    assert nvml.device(0) == Device(0, "GPU-x", "NVIDIA H200", False)  # control character dropped
    assert nvml.total_energy_mj(0) == 123_456
    assert nvml.process_samples(0, 0) == [ProcessSample(42, sample.timeStamp, 100)]  # clamped to 100
    assert nvml.compute_processes(0) == [ProcessMemory(42, None)]
    assert nvml.utilization_pct(0) == 37
    assert nvml.clocks(0) == Clocks(1980, None, None, True)
    with pytest.raises(NvmlError) as off:
        nvml.accounting(0)
    assert off.value.kind == "not_supported" and "nvidia-smi -am 1" in off.value.detail


def test_the_real_binding_reads_accounting_stats() -> None:
    stats = {
        7: SimpleNamespace(gpuUtilization=50, time=2000, isRunning=1),
        9: SimpleNamespace(gpuUtilization=10, time=100, isRunning=0),
    }

    def accounting_stats(h: str, pid: int) -> Any:
        if pid not in stats:
            raise pynvml.NVMLError_NotFound()
        return stats[pid]

    nvml = PynvmlNvml(
        fake_pynvml(
            nvmlDeviceGetAccountingMode=lambda h: pynvml.NVML_FEATURE_ENABLED,
            nvmlDeviceGetAccountingPids=lambda h: [7, 8, 9],  # 8 left the buffer meanwhile
            nvmlDeviceGetAccountingStats=accounting_stats,
        )
    )
    nvml.init()
    assert nvml.accounting(0) == [AccountingEntry(7, 50, 2000, True), AccountingEntry(9, 10, 100, False)]


def test_no_samples_is_an_empty_list_not_an_error() -> None:
    nvml = PynvmlNvml(fake_pynvml(nvmlDeviceGetProcessUtilization=raises("NVMLError_NotFound")))
    nvml.init()
    assert nvml.process_samples(0, 0) == []


@pytest.mark.parametrize(
    ("answer", "field"),
    [
        (-5, "total_energy_mj"),
        (2**64, "total_energy_mj"),
        ("12", "total_energy_mj"),
        (True, "total_energy_mj"),
    ],
)
def test_hostile_answers_are_refused_naming_the_field(answer: object, field: str) -> None:
    nvml = replay(**{"total_energy_mj/0": [answer]})
    with pytest.raises(NvmlError) as caught:
        nvml.total_energy_mj(0)
    assert caught.value.kind == "invalid_answer" and field in str(caught.value)


def test_too_many_processes_are_refused_not_looped_over() -> None:
    many = [{"pid": i, "used_bytes": 1} for i in range(5000)]
    with pytest.raises(NvmlError, match="more than 4096"):
        replay(**{"compute_processes/0": [many]}).compute_processes(0)


def test_replay_answers_in_order_repeats_the_last_and_raises_recorded_errors() -> None:
    nvml = replay(**{"total_energy_mj/0": [1, {"error": "gpu_lost"}, 3]})
    assert nvml.total_energy_mj(0) == 1
    with pytest.raises(NvmlError) as lost:
        nvml.total_energy_mj(0)
    assert lost.value.kind == "gpu_lost"
    assert [nvml.total_energy_mj(0) for _ in range(3)] == [3, 3, 3]
    with pytest.raises(NvmlError) as absent:
        nvml.accounting(0)
    assert absent.value.kind == "not_supported"


def test_replay_refuses_a_malformed_recording(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="format"):
        ReplayNvml({"format": "other", "answers": {}})
    with pytest.raises(ValueError, match="non-empty list"):
        ReplayNvml({"format": FORMAT, "answers": {"init": []}})
    path = tmp_path / "r.json"
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a JSON object"):
        ReplayNvml.load(path)


def test_the_synthetic_fixture_says_it_is_synthetic() -> None:
    data = json.loads(SYNTHETIC.read_text())
    assert data["format"] == FORMAT and data["recorded_on"].startswith("SYNTHETIC")
    assert "scripts/gpu-measure.sh" in data["recorded_on"]


@pytest.mark.parametrize(
    ("answers", "reason"),
    [
        ({"init": [{"error": "library_not_found"}]}, "libnvidia-ml.so.1 was not found"),
        ({"init": [{"error": "driver_not_loaded"}]}, "kernel driver is not loaded"),
        ({"device_count": [0]}, "lists no GPU"),
        ({"total_energy_mj/0": [{"error": "not_supported"}]}, "needs Volta or later"),
        ({"total_energy_mj/0": [{"error": "gpu_lost"}]}, "fell off the bus"),
        ({"device_count": [{"error": "no_permission"}]}, "insufficient permissions"),
    ],
)
def test_the_source_refuses_with_a_reason(answers: dict[str, list[Any]], reason: str) -> None:
    with pytest.raises(SourceError) as refused:
        GpuSource(replay(**answers))
    assert reason in refused.value.reason


def test_a_gpu_without_a_counter_is_passed_over_the_others_are_read() -> None:
    answers: dict[str, list[Any]] = {
        "device_count": [2],
        "device/1": [{"uuid": "GPU-b", "name": "Tesla P100", "mig_enabled": False}],
        "total_energy_mj/1": [{"error": "not_supported"}],
        "total_energy_mj/0": [1000, 1500],
    }
    nvml = replay(**answers)
    source = GpuSource(nvml)
    assert [z.name for z in source.zones()] == ["gpu-0"]
    assert all(z.in_node_total and z.parent is None and z.max_energy_range_uj is None for z in source.zones())
    assert "Volta" in source.passed_over[1]
    assert {z.name: uj for z, uj in source.read_uj().items()} == {"gpu-0": 1_500_000}  # mJ -> µJ


def test_a_lost_gpu_is_left_out_of_the_pass_and_named() -> None:
    answers: dict[str, list[Any]] = {
        "device_count": [2],
        "device/1": [{"uuid": "GPU-b", "name": "NVIDIA H200", "mig_enabled": False}],
        "total_energy_mj/0": [1000, 2000],
        "total_energy_mj/1": [5000, {"error": "gpu_lost"}],
    }
    nvml = replay(**answers)
    source = GpuSource(nvml)
    assert {z.name for z in source.read_uj()} == {"gpu-0"}
    assert source.failures == {"gpu-1": "gpu_lost"}


def test_every_error_kind_with_a_reason_names_a_fix_or_is_hardware() -> None:
    for kind, (reason, fix) in REASONS.items():
        assert reason and (fix or kind == "not_supported"), kind


def test_recording_then_replaying_gives_the_same_answers(tmp_path: Path) -> None:
    recorder = RecordingNvml(ReplayNvml.load(SYNTHETIC), "test")
    source = GpuSource(recorder)
    first = [dict(source.read_uj()) for _ in range(4)]
    samples = recorder.process_samples(0, 0)
    source.close()
    path = tmp_path / "recorded.json"
    recorder.write(path)
    again = GpuSource(ReplayNvml.load(path))
    assert [dict(again.read_uj()) for _ in range(4)] == first
    assert again.nvml.process_samples(0, 0) == samples
    assert json.loads(path.read_text())["answers"]["total_energy_mj/1"][3] == {"error": "gpu_lost"}


def test_the_recorder_on_this_machine_records_the_missing_driver(tmp_path: Path) -> None:
    from energyd.gpu_record import main

    out, summary = tmp_path / "rec.json", tmp_path / "summary.json"
    assert main(["--out", str(out), "--summary", str(summary), "--seconds", "0", "--load-s", "0"]) == 2
    assert "libnvidia-ml.so.1" in json.loads(summary.read_text())["error"]
    # The recording replays into the same refusal.
    with pytest.raises(SourceError, match=r"libnvidia-ml\.so\.1"):
        GpuSource(ReplayNvml.load(out))


def test_the_recorder_writes_a_recording_that_replays_the_same_passes(tmp_path: Path) -> None:
    from energyd.gpu_record import parser, record

    out, summary = tmp_path / "rec.json", tmp_path / "summary.json"
    argv = ["--out", str(out), "--summary", str(summary), "--seconds", "0.05", "--interval", "0.01"]
    args = parser().parse_args([*argv, "--load-s", "0", "--cadence-s", "0.02"])
    assert record(args, ReplayNvml.load(SYNTHETIC)) == 0
    figures = json.loads(summary.read_text())
    assert figures["methods"] == {"gpu-0": "process-utilization", "gpu-1": "memory"}
    assert len(figures["passes"]) >= 2 and set(figures["real_call_us"]) >= {"total_energy_mj"}
    answers = json.loads(out.read_text())["answers"]
    assert answers["device/1"] == [
        {"uuid": "GPU-5f3c2a10-0000-4000-8000-000000000001", "name": "NVIDIA H200", "mig_enabled": True}
    ]
    assert answers["total_energy_mj/0"][:3] == [5000000, 5000000, 5450000]
    assert "clocks/0" in answers


def test_a_driver_older_than_the_binding_is_not_supported_not_a_crash() -> None:
    def mismatch(*_args: Any) -> Any:
        raise pynvml.NVMLLibraryMismatchError("Unversioned function called")

    nvml = PynvmlNvml(fake_pynvml(nvmlDeviceGetComputeRunningProcesses=mismatch))
    nvml.init()
    with pytest.raises(NvmlError) as caught:
        nvml.compute_processes(0)
    assert caught.value.kind == "not_supported"


def test_pynvml_raising_success_means_no_samples() -> None:
    # pynvml's nvmlDeviceGetProcessUtilization raises NVMLError(ret) for any ret but
    # INSUFFICIENT_SIZE, NVML_SUCCESS (nothing to size) included.
    def success(*_args: Any) -> Any:
        raise pynvml.NVMLError(pynvml.NVML_SUCCESS)

    nvml = PynvmlNvml(fake_pynvml(nvmlDeviceGetProcessUtilization=success))
    nvml.init()
    assert nvml.process_samples(0, 0) == []
