"""`energyd probe`'s findings and text, on a machine like this one and on a RAPL server."""

from __future__ import annotations

import sys
from pathlib import Path

from energyd.config import Roots
from energyd.probe import ProbeResult, format_probe, probe
from tests.energyd import fixture_trees as ft

FIXTURES = Path(__file__).parent / "fixtures"
PERF = (
    sys.executable,
    str(FIXTURES / "replay_perf.py"),
    str(FIXTURES / "perf-intel-2s" / "perf-stat-I1000-pkg-ram.csv"),
)


def roots_for(tmp_path: Path) -> Roots:
    (tmp_path / "sys").mkdir(exist_ok=True)
    return Roots(sysfs=tmp_path / "sys", procfs=tmp_path / "proc")


def test_vm_without_rapl_gets_the_estimate_and_every_fix(tmp_path: Path) -> None:
    roots = roots_for(tmp_path)
    ft.write_proc_stat(roots.procfs, user=5, idle=95)
    results = probe(roots, PERF)
    assert [(r.source, r.works) for r in results] == [
        ("powercap", False),
        ("perf", False),
        ("estimate", True),
    ]
    assert results[2] == ProbeResult("estimate", True, False, "", "", ("estimate",), ("estimate",))
    text = format_probe(results)
    assert "powercap   no   " in text
    assert "fix: on bare metal: modprobe intel_rapl_msr" in text
    assert "no RAPL perf PMU" in " ".join(text.split())
    assert text.endswith(
        'will use: estimate (energyd_source_info says measured="false"; its joules are a model, not a meter)'
    )


def test_rapl_server_lists_zones_and_the_node_total(tmp_path: Path) -> None:
    roots = roots_for(tmp_path)
    ft.intel_2s(roots.sysfs)
    ft.write_power_events(roots.sysfs)
    ft.write_proc_stat(roots.procfs, user=5, idle=95)
    results = probe(roots, PERF, interval_s=0.05)
    assert all(r.works for r in results)
    powercap, perf = results[0], results[1]
    assert powercap.node_total == ("dram-0", "dram-1", "package-0", "package-1")
    assert set(powercap.zones) - set(powercap.node_total) == {"core-0", "core-1"}
    assert perf.zones == ("dram", "package")
    text = format_probe(results)
    assert "node total = dram-0 + dram-1 + package-0 + package-1" in " ".join(text.split())
    assert text.endswith("`--source auto` will use: powercap")


def test_nothing_works_says_run_would_exit(tmp_path: Path) -> None:
    results = probe(roots_for(tmp_path), PERF)
    assert not any(r.works for r in results)
    assert "stat" in results[2].reason
    assert format_probe(results).endswith("energyd run would exit.")


def test_probe_lists_every_zone_read_and_every_entry_skipped_with_why(tmp_path: Path) -> None:
    roots = roots_for(tmp_path)
    for socket in range(11):  # the 11th package is intel-rapl:a
        ft.write_powercap_zone(roots.sysfs, socket, f"package-{socket}", 1_000)
    broken = ft.write_powercap_zone(roots.sysfs, 11, "package-11", 1_000)  # intel-rapl:b
    (broken / "energy_uj").write_text("-1\n")
    ft.write_proc_stat(roots.procfs, user=5, idle=95)
    powercap = probe(roots, PERF)[0]
    assert powercap.works
    assert dict(powercap.read_from)["package-10"].endswith("/intel-rapl:a/energy_uj")
    assert "package-11" not in powercap.zones
    skipped = dict(powercap.skipped)
    assert "not a counter" in skipped[str(broken / "energy_uj")]
    assert "not a zone" in skipped[str(roots.sysfs / "class" / "powercap" / "intel-rapl")]
    text = " ".join(format_probe(probe(roots, PERF)).split())
    assert f"read package-10 from {roots.sysfs}/class/powercap/intel-rapl:a/energy_uj" in text
    assert f"skipped {broken}/energy_uj holds b'-1\\n', not a counter" in text
