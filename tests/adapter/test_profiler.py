"""The profiler without torch: statistics, the power fit, the meter, the measuring loop driven by
pure-Python models, the writer's output through load_profile, and the CLI's --help."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapter.profiler.measure import EnergyMeter, Point, Settings, background_cores, measure_variant
from adapter.profiler.models import PIPELINES
from adapter.profiler.stats import Window, fit_power_model, latency_statistic, percentile
from adapter.profiler.writer import (
    CpuEnergy,
    MeasuredStage,
    MeasuredVariant,
    build_profile,
    describe_run,
    write_profile,
)
from adapter.profiles import load_profile
from energyd.procstat import USER_HZ, online_cpus
from energyd.sources.estimate import EstimateSource, LinearPowerModel
from energyd.sources.powercap import PowercapSource
from tests.energyd.fixture_trees import PACKAGE_RANGE_UJ, mmio_duplicate, set_energy, write_proc_stat

REPO = Path(__file__).resolve().parents[2]


def test_statistics_on_known_values() -> None:
    latencies = [0.30, 0.10, 0.20, 0.90]
    assert latency_statistic(latencies, "median") == pytest.approx(0.25)
    assert latency_statistic(latencies, "mean") == pytest.approx(0.375)
    assert latency_statistic(latencies, "p99") == 0.90
    assert percentile(list(range(1, 101)), 99) == 99
    assert percentile([5.0], 0) == 5.0
    with pytest.raises(ValueError):
        latency_statistic(latencies, "p50")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0.001, 10.0), min_size=1, max_size=50), st.floats(0, 100), st.floats(0, 100))
def test_percentile_is_observed_and_monotone(values: list[float], q1: float, q2: float) -> None:
    lo, hi = sorted((q1, q2))
    assert percentile(values, lo) in values
    assert percentile(values, lo) <= percentile(values, hi)


@settings(max_examples=100, deadline=None)
@given(
    st.floats(0.0, 200.0),
    st.floats(0.0, 50.0),
    st.lists(st.floats(0.0, 16.0), min_size=2, max_size=30).filter(lambda xs: max(xs) - min(xs) > 0.5),
    st.lists(st.floats(0.1, 10.0), min_size=30, max_size=30),
)
def test_fit_recovers_a_linear_node(
    idle_w: float, busy_core_w: float, busy: list[float], durations: list[float]
) -> None:
    windows = [
        Window(d, (idle_w + busy_core_w * b) * d, b * d) for b, d in zip(busy, durations, strict=False)
    ]
    model = fit_power_model(windows)
    assert model.idle_w == pytest.approx(idle_w, abs=1e-6 * (1 + idle_w + busy_core_w * 16))
    assert model.busy_core_w == pytest.approx(busy_core_w, abs=1e-6 * (1 + idle_w + busy_core_w))


def test_fit_without_load_spread_claims_no_dynamic_power() -> None:
    model = fit_power_model([Window(1.0, 10.0, 1.0), Window(2.0, 20.4, 2.02)])
    assert model.busy_core_w == 0.0
    assert model.idle_w == pytest.approx(10.1)


def test_meter_sums_node_zones_through_a_wrap(tmp_path: Path) -> None:
    sysfs, procfs = tmp_path / "sys", tmp_path / "proc"
    mmio_duplicate(sysfs)  # package-0 with a core sub-zone, and an MMIO copy of package-0
    set_energy(sysfs, 0, PACKAGE_RANGE_UJ - 100_000)
    write_proc_stat(procfs, user=100, idle=100)
    ticks = iter([10.0, 12.0])
    source = PowercapSource(sysfs)
    try:
        meter = EnergyMeter(source, procfs=procfs, clock=lambda: next(ticks))
        start = meter.mark()
        set_energy(sysfs, 0, 100_000)  # wrapped
        set_energy(sysfs, "0:0", 5 * 10**9)  # sub-zone: inside package-0 already
        set_energy(sysfs, 0, 10**11, control="intel-rapl-mmio")  # duplicate: never counted
        write_proc_stat(procfs, user=100 + USER_HZ, system=USER_HZ, idle=100 + 2 * USER_HZ)
        window = meter.window(start)
    finally:
        source.close()
    assert window.duration_s == 2.0
    assert window.node_energy_j == pytest.approx(0.2)
    assert window.busy_cores == pytest.approx(1.0)


class SimulatedNode:
    """A 2-CPU node on a fixture procfs whose clock moves only when its work runs or sleeps: a
    batch of `size` keeps one core busy for 0.1 s per request, so every figure has an exact answer."""

    def __init__(self, procfs: Path) -> None:
        self.procfs = procfs
        self.now_s = 0.0
        self.busy_s = 0.0
        self.user_ticks = 0
        self.idle_ticks = 0
        write_proc_stat(procfs, cpus=2)

    def clock(self) -> float:
        return self.now_s

    def cpu_clock(self) -> float:
        return self.busy_s

    def advance(self, seconds: float, busy_cores: int) -> None:
        self.now_s += seconds
        self.busy_s += seconds * busy_cores
        self.user_ticks += round(seconds * busy_cores * USER_HZ)
        self.idle_ticks += round(seconds * (2 - busy_cores) * USER_HZ)
        write_proc_stat(self.procfs, user=self.user_ticks, idle=self.idle_ticks, cpus=2)

    def sleep(self, seconds: float) -> None:
        self.advance(seconds, 0)

    def prepare(self, size: int) -> Callable[[], object]:
        def run() -> object:
            self.advance(0.1 * size, 1)
            return None

        return run


def test_measured_profile_has_the_exact_figures_and_loads(tmp_path: Path) -> None:
    node = SimulatedNode(tmp_path / "proc")
    # energyd's estimate source: 2 CPUs x 20 W idle, 24 W busy -> 40 W + 4 W per busy core.
    source = EstimateSource(node.procfs, model=LinearPowerModel(20.0, 24.0), clock=node.clock)
    meter = EnergyMeter(source, procfs=node.procfs, clock=node.clock, sleep=node.sleep)
    opts = Settings(repeats=3, duration_s=1.0, max_batch_latency_s=5.0, latency_statistic="p99")
    windows = [meter.idle_window(2.0)]
    result = measure_variant(node.prepare, [4, 1, 2], meter, opts, clock=node.clock, cpu_clock=node.cpu_clock)
    windows += [p.window for p in result.points] + [meter.idle_window(2.0)]
    model = fit_power_model(windows)
    assert model.idle_w == pytest.approx(40.0)
    assert model.busy_core_w == pytest.approx(4.0)

    stage = MeasuredStage("spin", (MeasuredVariant("py", 50.0, "made up for the test", 1, result),))
    measured_on = describe_run(2, "test CPU", source.name, source.measured, model, "p99")
    profile = build_profile("toy", measured_on, [stage], CpuEnergy(model, 2), "p99", source.name)
    path = tmp_path / "toy.yaml"
    write_profile(profile, path)
    loaded = load_profile(path)
    assert loaded == profile
    assert loaded.energy_source == source.name
    variant = loaded.stages[0].variant("py")
    assert variant.idle_power_w == pytest.approx(20.0)  # half the node's idle power per core
    assert [b.size for b in variant.batches] == [1, 2, 4]
    for batch, runs in zip(variant.batches, (10, 5, 3), strict=True):  # >= 1 s and >= 3 batches
        assert batch.latency_s == pytest.approx(0.1 * batch.size)
        assert batch.throughput_rps == pytest.approx(10.0)
        assert batch.energy_per_request_j == pytest.approx(0.4)  # 4 W x 0.1 CPU-s
        assert len(result.points[[1, 2, 4].index(batch.size)].latencies_s) == runs
    assert "{size: 1, latency_s:" in path.read_text()
    assert loaded.measured_on is not None and "estimate source, an ESTIMATE" in loaded.measured_on


def test_real_clocks_and_real_proc(tmp_path: Path) -> None:
    """The same path on this machine's /proc and clocks, with a pure-Python model: the loop's
    rules hold and the written profile loads (the figures depend on the machine's load)."""

    def spin(size: int) -> Callable[[], object]:
        return lambda: sum(i * i for i in range(size * 20000))

    meter = EnergyMeter(EstimateSource())
    opts = Settings(repeats=3, duration_s=0.2, max_batch_latency_s=5.0)
    result = measure_variant(spin, [1, 2], meter, opts)
    model = fit_power_model([meter.idle_window(0.2), *(p.window for p in result.points)])
    stage = MeasuredStage("spin", (MeasuredVariant("py", 50.0, "made up for the test", 1, result),))
    path = tmp_path / "real.yaml"
    write_profile(build_profile("real", "here", [stage], CpuEnergy(model, online_cpus()), "median", "powercap"), path)
    variant = load_profile(path).stages[0].variant("py")
    for point, batch in zip(result.points, variant.batches, strict=True):
        assert len(point.latencies_s) >= 3
        assert point.wall_s >= opts.duration_s or len(point.latencies_s) == opts.max_repeats
        assert point.cpu_s > 0 and point.window.node_busy_cpu_s >= 0
        assert batch.throughput_rps == pytest.approx(point.requests / point.wall_s, rel=1e-3)
        assert batch.energy_per_request_j >= 0


def test_sizes_past_the_latency_cap_are_dropped(tmp_path: Path) -> None:
    node = SimulatedNode(tmp_path / "proc")
    meter = EnergyMeter(EstimateSource(node.procfs, clock=node.clock), procfs=node.procfs, clock=node.clock)
    opts = Settings(repeats=2, duration_s=0.0, max_batch_latency_s=1.0)
    result = measure_variant(node.prepare, [16, 1, 2, 4, 8, 32], meter, opts, clock=node.clock)
    assert [p.size for p in result.points] == [1, 2, 4, 8]
    assert result.dropped_sizes == [16, 32]
    for point in result.points:
        assert point.latencies_s == pytest.approx((0.1 * point.size,) * 2)
        assert point.throughput_rps == pytest.approx(10.0)


def test_background_load_is_node_busy_time_not_ours() -> None:
    points = [
        Point(1, (0.1,), wall_s=1.0, cpu_s=1.0, window=Window(1.0, 5.0, node_busy_cpu_s=1.5)),
        Point(2, (0.2,), wall_s=3.0, cpu_s=3.0, window=Window(3.0, 9.0, node_busy_cpu_s=3.0)),
    ]
    assert background_cores(points) == pytest.approx(0.5 / 4.0)
    assert background_cores([]) == 0.0


def test_catalogue_cites_every_accuracy() -> None:
    assert {"video", "nlp"} <= set(PIPELINES)
    for stages in PIPELINES.values():
        assert len(stages) >= 2
        for stage in stages:
            assert len(stage.variants) >= 3
            for variant in stage.variants:
                assert 0 < variant.accuracy <= 100 and len(variant.accuracy_source) > 20
    detect, classify = PIPELINES["video"]
    assert [v.name for v in detect.variants] == [f"yolov5{s}" for s in "nsmlx"]
    assert [v.name for v in classify.variants] == [f"resnet{d}" for d in (18, 34, 50, 101, 152)]


def test_help_works_and_nothing_imports_torch() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "adapter.profiler", "profile", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    for flag in (
        *("--pipeline", "--batch-sizes", "--duration-s", "--repeats", "--out", "--energy-source"),
        *("--device", "--gpu-index", "--max-repeats", "--warmup-s"),
    ):
        assert flag in out
    probe = "import sys, adapter.profiler.cli, adapter.profiler.models; print('torch' in sys.modules)"
    imported = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert imported.stdout.strip() == "False"
