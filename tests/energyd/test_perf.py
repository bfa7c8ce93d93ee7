"""The perf source, running a replay of a recorded `perf stat -I -x,` through its real subprocess path."""

from __future__ import annotations

import csv
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from energyd.sources.base import SourceError, Zone
from energyd.sources.perf import PERMISSION_FIX, PerfSource, parse_line, zones_for
from tests.energyd import fixture_trees as ft

FIXTURES = Path(__file__).parent / "fixtures"
RECORDING = FIXTURES / "perf-intel-2s" / "perf-stat-I1000-pkg-ram.csv"
REPLAY = FIXTURES / "replay_perf.py"


def recorded_uj() -> dict[str, int]:
    """Joules per event in the recording, summed with the csv module (not the source's parser)."""
    totals: dict[str, int] = {}
    with RECORDING.open() as f:
        for row in csv.reader(f):
            if not row[1].startswith("<"):
                totals[row[3]] = totals.get(row[3], 0) + round(float(row[1]) * 1_000_000)
    return totals


def replay(log: Path, *extra: str) -> tuple[str, ...]:
    return (sys.executable, str(REPLAY), str(RECORDING), "--log", str(log), *extra)


def wait_for(check: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def replay_children() -> list[psutil.Process]:
    running = []
    for child in psutil.Process().children(recursive=True):
        try:
            if str(REPLAY) in " ".join(child.cmdline()):
                running.append(child)
        except psutil.NoSuchProcess:
            pass  # ended while being looked at: not running
    return running


@pytest.fixture
def sysfs(tmp_path: Path) -> Path:
    root = tmp_path / "sys"
    ft.write_power_events(root, ("energy-pkg", "energy-ram"))
    return root


@pytest.fixture
def log(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "perf-args.log"
    assert replay_children() == [], "perf left running"


def test_replayed_recording_accumulates_to_its_sum(sysfs: Path, log: Path) -> None:
    expected = recorded_uj()
    source = PerfSource(sysfs, interval_s=0.05, perf_command=replay(log))
    try:
        package, dram = Zone("package", None, True, None), Zone("dram", None, True, None)
        assert list(source.zones()) == [package, dram]
        wait_for(lambda: source.read_uj().get(package) == expected["power/energy-pkg/"])
        wait_for(lambda: source.read_uj().get(dram) == expected["power/energy-ram/"])
    finally:
        source.close()
    # One perf, system-wide, at the interval asked, with only the events the kernel lists.
    assert log.read_text().splitlines() == ["stat -a -I 50 -x , -e power/energy-pkg/,power/energy-ram/"]


def test_perf_that_dies_is_restarted_and_totals_carry_on(sysfs: Path, log: Path) -> None:
    one_run = recorded_uj()["power/energy-pkg/"]
    source = PerfSource(
        sysfs, interval_s=0.05, perf_command=replay(log, "--then", "exit"), backoff_s=0.01, max_backoff_s=0.05
    )
    package = Zone("package", None, True, None)
    try:
        wait_for(lambda: source.read_uj().get(package, 0) >= 3 * one_run)
    finally:
        source.close()
    assert len(log.read_text().splitlines()) >= 3
    assert source.restarts >= 2


def test_silent_perf_is_a_read_error_and_is_restarted(sysfs: Path, log: Path) -> None:
    now = [100.0]
    source = PerfSource(
        sysfs, interval_s=0.05, perf_command=replay(log), clock=lambda: now[0], backoff_s=0.01
    )
    package = Zone("package", None, True, None)
    try:
        wait_for(lambda: source.read_uj().get(package) == recorded_uj()["power/energy-pkg/"])
        now[0] += 60.0  # the replay hangs after its last line: no sample for a minute
        with pytest.raises(SourceError, match="no sample for over"):
            source.read_uj()
        # The silent perf was terminated and a new one started.
        wait_for(lambda: len(log.read_text().splitlines()) == 2)
    finally:
        source.close()


def test_perf_refused_before_any_sample_says_why_and_the_fix(sysfs: Path, log: Path) -> None:
    message = "Error: Access to performance monitoring and observability operations is limited."
    with pytest.raises(SourceError) as err:
        PerfSource(sysfs, interval_s=0.05, perf_command=replay(log, "--fail", message))
    assert message in err.value.reason
    assert err.value.fix == PERMISSION_FIX
    assert len(log.read_text().splitlines()) == 1  # not restarted: it never worked


def test_no_power_pmu(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as err:
        PerfSource(tmp_path, perf_command=("true",))
    assert "no RAPL perf PMU" in err.value.reason


def test_missing_perf_binary(sysfs: Path) -> None:
    with pytest.raises(SourceError, match="is not installed") as err:
        PerfSource(sysfs, perf_command=("/nonexistent/perf",))
    assert "linux-perf" in err.value.fix


def test_parse_line_shapes() -> None:
    assert parse_line("     1.001048308,19.63,Joules,power/energy-pkg/,2002406532,100.00,,\n") == (
        "energy-pkg",
        19.63,
    )
    assert parse_line("2.0,<not supported>,Joules,power/energy-gpu/,0,100.00,,") == ("energy-gpu", None)
    assert parse_line("2.0,<not counted>,Joules,power/energy-ram/,0,0.00,,") == ("energy-ram", None)
    # Not samples: other events, perf's own messages, a line without -I's timestamp column.
    assert parse_line("1.0,7303786493,,instructions,450266015517,100.00,0.31,insn per cycle") is None
    assert parse_line("Error: some message") is None
    assert parse_line("120.40,Joules,power/energy-pkg/,20003876230,100.00,,") is None


def test_psys_is_the_total_and_core_sits_in_package() -> None:
    zones = zones_for(["energy-pkg", "energy-ram", "energy-cores", "energy-psys"])
    assert [z.name for z in zones.values() if z.in_node_total] == ["psys"]
    assert zones["energy-cores"] == Zone("core", "package", False, None)
    # package and dram count instead of psys when the sampler finds psys flat.
    assert zones["energy-pkg"].covered_by == zones["energy-ram"].covered_by == "psys"


def test_perf_runs_in_the_c_locale_whatever_the_node_says(
    sysfs: Path, log: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A German node: perf (the stand-in localises as perf does) would print `19,63` inside the
    # `-x,` CSV, which no parser can split back. energyd must start it with LC_ALL=C.
    monkeypatch.setenv("LANG", "de_DE.UTF-8")
    monkeypatch.setenv("LC_NUMERIC", "de_DE.UTF-8")
    monkeypatch.delenv("LC_ALL", raising=False)
    env_log = tmp_path / "env.log"
    source = PerfSource(
        sysfs, interval_s=0.05, perf_command=replay(log, "--localize", "--env-log", str(env_log))
    )
    package = Zone("package", None, True, None)
    try:
        wait_for(lambda: source.read_uj().get(package) == recorded_uj()["power/energy-pkg/"])
    finally:
        source.close()
    assert env_log.read_text().splitlines() == ["C"]


def test_an_event_perf_cannot_count_is_named_and_counted(log: Path, tmp_path: Path) -> None:
    sysfs = tmp_path / "client-sys"
    ft.write_power_events(sysfs, ("energy-pkg", "energy-gpu"))
    recording = tmp_path / "gpu-not-supported.csv"
    recording.write_text(
        "1.001,19.63,Joules,power/energy-pkg/,2002406532,100.00,,\n"
        "1.001,<not supported>,Joules,power/energy-gpu/,0,100.00,,\n"
        "2.002,20.01,Joules,power/energy-pkg/,2002406532,100.00,,\n"
        "2.002,<not supported>,Joules,power/energy-gpu/,0,100.00,,\n"
    )
    command = (sys.executable, str(REPLAY), str(recording), "--log", str(log))
    source = PerfSource(sysfs, interval_s=0.05, perf_command=command)
    package = Zone("package", None, True, None)
    try:
        # The second interval's gpu line follows its package line: wait for both to be parsed.
        wait_for(
            lambda: source.read_uj().get(package) == 39_640_000 and source.read_errors().get("not_counted") == 2
        )
        assert [z.name for z in source.read_uj()] == ["package"]
        [skip] = source.skipped()
        assert skip.where == "power/energy-gpu/" and skip.read_error
        assert source.read_errors() == {"not_counted": 2}
        assert source.read_from()["gpu"] == "perf event power/energy-gpu/"
    finally:
        source.close()


def test_a_pmu_that_counts_nothing_is_refused(log: Path, tmp_path: Path) -> None:
    # Recorded on this project's build VM (Firecracker, kernel 6.18, perf 6.1): the kernel lists
    # a RAPL PMU with energy-psys, and `perf stat -a -I 1000 -x, -e power/energy-psys/` reads
    # 0.00 J every second. Exporting that as a measured 0 W would be a lie.
    sysfs = tmp_path / "vm-sys"
    ft.write_power_events(sysfs, ("energy-psys",))
    recording = FIXTURES / "perf-vm-psys" / "perf-stat-I1000-psys.csv"
    command = (sys.executable, str(REPLAY), str(recording), "--log", str(log))
    with pytest.raises(SourceError, match="count nothing here: energy-psys read 0 J") as err:
        PerfSource(sysfs, interval_s=0.1, perf_command=command)
    assert "estimate" in err.value.fix
