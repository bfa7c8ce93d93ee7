"""The utilisation-based estimate over generated /proc/stat files and an injected clock."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from energyd.sources.base import SourceError
from energyd.sources.estimate import ZONE, EstimateSource, LinearPowerModel
from tests.clock import Clock
from tests.energyd import fixture_trees as ft


def test_half_busy_node_for_one_second(tmp_path: Path) -> None:
    model = LinearPowerModel()
    clock = Clock()
    ft.write_proc_stat(tmp_path, user=1000, idle=1000, cpus=2)
    source = EstimateSource(tmp_path, clock=clock)
    assert not source.measured
    assert list(source.zones()) == [ZONE]
    # One second on 2 CPUs = 200 ticks: 100 busy (user 60 + system 40), 80 idle, 20 iowait.
    ft.write_proc_stat(tmp_path, user=1060, system=40, idle=1080, iowait=20, cpus=2)
    clock.now_s = 1.0
    expected_j = 2 * (model.idle_w_per_cpu + (model.max_w_per_cpu - model.idle_w_per_cpu) * 0.5) * 1.0
    assert source.read_uj() == {ZONE: round(expected_j * 1_000_000)}


def test_online_cpus_scale_and_cpus_override(tmp_path: Path) -> None:
    model = LinearPowerModel(idle_w_per_cpu=1.0, max_w_per_cpu=5.0)
    ft.write_proc_stat(tmp_path, idle=0, cpus=8)
    clock = Clock()
    per_node = EstimateSource(tmp_path, model=model, clock=clock)
    pinned = EstimateSource(tmp_path, model=model, clock=clock, cpus=2)
    ft.write_proc_stat(tmp_path, idle=1600, cpus=8)  # 2 s on 8 CPUs, all idle
    clock.now_s = 2.0
    assert per_node.read_uj()[ZONE] == 8 * 1.0 * 2.0 * 1_000_000
    assert pinned.read_uj()[ZONE] == 2 * 1.0 * 2.0 * 1_000_000


def test_reads_within_one_tick_keep_the_last_utilisation(tmp_path: Path) -> None:
    model = LinearPowerModel(idle_w_per_cpu=0.0, max_w_per_cpu=10.0)
    clock = Clock()
    ft.write_proc_stat(tmp_path, user=0, cpus=1)
    source = EstimateSource(tmp_path, model=model, clock=clock)
    ft.write_proc_stat(tmp_path, user=100, cpus=1)  # fully busy for 1 s
    clock.now_s = 1.0
    first = source.read_uj()[ZONE]
    clock.now_s = 1.005  # no tick in 5 ms
    assert source.read_uj()[ZONE] - first == pytest.approx(10.0 * 0.005 * 1_000_000, abs=1)


def test_unreadable_proc_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as err:
        EstimateSource(tmp_path)
    assert str(tmp_path / "stat") in err.value.reason
    assert "--procfs-root" in err.value.fix


def test_model_refuses_idle_above_max() -> None:
    with pytest.raises(ValueError, match="idle_w_per_cpu"):
        LinearPowerModel(idle_w_per_cpu=5.0, max_w_per_cpu=1.0)


steps = st.lists(
    st.tuples(st.integers(0, 400), st.integers(0, 400), st.floats(0.0, 5.0, allow_nan=False)),
    min_size=1,
    max_size=8,
)


@settings(max_examples=50, deadline=None)
@given(steps=steps, cpus=st.integers(1, 64))
def test_energy_grows_between_idle_and_max_power(steps: list[tuple[int, int, float]], cpus: int) -> None:
    model = LinearPowerModel()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        clock = Clock()
        busy = idle = 0
        ft.write_proc_stat(root, user=busy, idle=idle, cpus=cpus)
        source = EstimateSource(root, model=model, clock=clock)
        previous = 0
        for busy_ticks, idle_ticks, elapsed_s in steps:
            busy, idle = busy + busy_ticks, idle + idle_ticks
            ft.write_proc_stat(root, user=busy, idle=idle, cpus=cpus)
            clock.now_s += elapsed_s
            energy_uj = source.read_uj()[ZONE]
            assert energy_uj >= previous
            previous = energy_uj
        elapsed = clock.now_s
        assert cpus * model.idle_w_per_cpu * elapsed * 1e6 - len(steps) <= previous
        assert previous <= cpus * model.max_w_per_cpu * elapsed * 1e6 + 1
