"""The fallback walk over fixture machines: which source it opens and why it passed others over."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from energyd.config import Roots
from energyd.sources.base import SourceError
from energyd.sources.select import PassedOver, open_source
from tests.energyd import fixture_trees as ft

REPLAY = Path(__file__).parent / "fixtures" / "replay_perf.py"
RECORDING = Path(__file__).parent / "fixtures" / "perf-intel-2s" / "perf-stat-I1000-pkg-ram.csv"
PERF = (sys.executable, str(REPLAY), str(RECORDING))


@pytest.fixture
def roots(tmp_path: Path) -> Roots:
    (tmp_path / "sys").mkdir()
    ft.write_proc_stat(tmp_path / "proc", user=10, idle=90)
    return Roots(sysfs=tmp_path / "sys", procfs=tmp_path / "proc", cgroup=tmp_path / "cgroup")


def test_auto_takes_powercap_when_it_works(roots: Roots) -> None:
    ft.intel_2s(roots.sysfs)
    ft.write_power_events(roots.sysfs)
    source, passed_over = open_source("auto", roots, perf_command=PERF)
    source.close()
    assert (source.name, source.measured, passed_over) == ("powercap", True, [])


def test_auto_falls_back_to_perf_and_says_why(roots: Roots) -> None:
    ft.write_power_events(roots.sysfs)
    source, passed_over = open_source("auto", roots, interval_s=0.05, perf_command=PERF)
    source.close()
    assert source.name == "perf"
    assert [p.source for p in passed_over] == ["powercap"]
    assert "class/powercap does not exist" in passed_over[0].reason
    assert "modprobe intel_rapl_msr" in passed_over[0].fix


def test_auto_ends_at_the_estimate_with_every_reason(roots: Roots) -> None:
    source, passed_over = open_source("auto", roots, perf_command=PERF)
    source.close()
    assert (source.name, source.measured) == ("estimate", False)
    assert [p.source for p in passed_over] == ["powercap", "perf"]
    assert all(isinstance(p, PassedOver) and p.reason and p.fix for p in passed_over)
    assert "no RAPL perf PMU" in passed_over[1].reason


def test_explicit_choice_is_not_walked_past(roots: Roots) -> None:
    ft.write_power_events(roots.sysfs)
    with pytest.raises(SourceError) as err:
        open_source("powercap", roots, perf_command=PERF)
    assert "class/powercap does not exist" in err.value.reason
    assert err.value.fix
    ft.amd(roots.sysfs)
    source, passed_over = open_source("estimate", roots)
    source.close()
    assert (source.name, passed_over) == ("estimate", [])


def test_nothing_works(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"no energy source works: powercap: .*; perf: .*; estimate: "):
        open_source("auto", Roots(sysfs=tmp_path, procfs=tmp_path))


def test_unknown_source(roots: Roots) -> None:
    with pytest.raises(SourceError, match="unknown energy source 'rapl'") as err:
        open_source("rapl", roots)
    assert "powercap" in err.value.fix
