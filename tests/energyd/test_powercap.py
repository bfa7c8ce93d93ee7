"""The powercap source over fixture sysfs trees, and delta_uj's wrap arithmetic."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from energyd.sources.base import Delta, SourceError, Zone, delta_uj, zone_delta
from energyd.sources.powercap import PowercapSource
from tests.energyd import fixture_trees as ft

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def sysfs(tmp_path: Path) -> Path:
    return tmp_path / "sys"


def by_name(source: PowercapSource) -> dict[str, tuple[Zone, int]]:
    return {zone.name: (zone, value) for zone, value in source.read_uj().items()}


def test_intel_2s_labels_by_name_not_index_and_keeps_each_range(sysfs: Path) -> None:
    ft.intel_2s(sysfs)
    source = PowercapSource(sysfs)
    zones = by_name(source)
    source.close()
    assert sorted(zones) == ["core-0", "core-1", "dram-0", "dram-1", "package-0", "package-1"]
    # intel-rapl:0 is package-1 in this tree; its value must follow the name.
    assert zones["package-1"][1] == 176399656753
    assert zones["package-0"][1] == 147773556513
    assert zones["core-1"][0] == Zone("core-1", "package-1", False, ft.PACKAGE_RANGE_UJ)
    # dram is a separate domain: in the node total although sysfs nests it in the package.
    assert zones["dram-0"][0] == Zone("dram-0", None, True, ft.DRAM_RANGE_UJ)
    total = {name for name, (zone, _) in zones.items() if zone.in_node_total}
    assert total == {"package-0", "package-1", "dram-0", "dram-1"}


def test_amd_has_package_and_core_with_its_own_range(sysfs: Path) -> None:
    ft.amd(sysfs)
    source = PowercapSource(sysfs)
    zones = {z.name: z for z in source.zones()}
    source.close()
    assert zones == {
        "package-0": Zone("package-0", None, True, ft.AMD_RANGE_UJ),
        "core-0": Zone("core-0", "package-0", False, ft.AMD_RANGE_UJ),
    }


def test_psys_alone_is_the_node_total(sysfs: Path) -> None:
    ft.client_psys(sysfs)
    source = PowercapSource(sysfs)
    zones = {z.name: z for z in source.zones()}
    source.close()
    assert sorted(zones) == ["core-0", "package-0", "psys", "uncore-0"]
    assert [name for name, z in zones.items() if z.in_node_total] == ["psys"]
    assert zones["uncore-0"].parent == "package-0"


def test_psys_between_packages_on_a_server(sysfs: Path) -> None:
    ft.server_psys_between(sysfs)
    source = PowercapSource(sysfs)
    zones = by_name(source)
    source.close()
    assert sorted(zones) == ["dram-0", "dram-1", "package-0", "package-1", "psys"]
    assert zones["package-1"][1] == 35231629289  # at intel-rapl:2, not 1
    assert [name for name, (z, _) in zones.items() if z.in_node_total] == ["psys"]


def test_mmio_duplicate_is_read_but_not_counted_twice(sysfs: Path) -> None:
    ft.mmio_duplicate(sysfs)
    source = PowercapSource(sysfs)
    zones = by_name(source)
    source.close()
    assert zones["package-0"][0].in_node_total
    assert zones["package-0-mmio"] == (Zone("package-0-mmio", None, False, ft.PACKAGE_RANGE_UJ), 240422301234)
    assert not zones["core-0"][0].in_node_total


def test_four_sockets_in_reverse_index_order(sysfs: Path) -> None:
    ft.four_socket_reverse(sysfs)
    source = PowercapSource(sysfs)
    values = {zone.name: value for zone, value in source.read_uj().items()}
    source.close()
    for socket in range(4):
        assert values[f"package-{socket}"] == 100_000_000_000 + socket
        assert values[f"dram-{socket}"] == 30_000_000_000 + socket


def test_multi_die_duplicates_count_once(sysfs: Path) -> None:
    ft.write_powercap_zone(sysfs, 0, "package-0-die-0", 5_000_000, ft.AMD_RANGE_UJ)
    ft.write_powercap_zone(sysfs, 1, "package-0-die-1", 5_000_000, ft.AMD_RANGE_UJ)
    ft.write_powercap_zone(sysfs, 2, "package-1-die-0", 7_000_000, ft.AMD_RANGE_UJ)
    ft.write_powercap_zone(sysfs, 3, "package-1-die-1", 9_000_000, ft.AMD_RANGE_UJ)
    source = PowercapSource(sysfs)
    total = sorted(z.name for z in source.zones() if z.in_node_total)
    source.close()
    # package-1's dies read differently: separate counters (Intel multi-die), both count.
    assert total == ["package-0-die-0", "package-1-die-0", "package-1-die-1"]


def test_hex_indexes_are_read_and_every_skip_says_why(sysfs: Path) -> None:
    # 12 packages: the kernel names the 11th and 12th intel-rapl:a and intel-rapl:b ("%x").
    for socket in range(12):
        ft.write_powercap_zone(sysfs, socket, f"package-{socket}", 1_000 + socket)
    ft.write_powercap_zone(sysfs, "a:0", "dram", 7_000, ft.DRAM_RANGE_UJ)
    assert ft.zone_dir(sysfs, 10).name == "intel-rapl:a"
    # A zone whose link dangles (its target was not mounted) and a directory that is no zone.
    (sysfs / "class" / "powercap" / "intel-rapl:c").symlink_to(
        "../../devices/virtual/powercap/intel-rapl/gone"
    )
    (sysfs / "class" / "powercap" / "intel-rapl:d").mkdir()
    source = PowercapSource(sysfs)
    values = {zone.name: value for zone, value in source.read_uj().items()}
    read_from = source.read_from()
    skipped = {Path(s.where).name: s for s in source.skipped()}
    source.close()
    assert values["package-10"] == 1_010 and values["package-11"] == 1_011 and values["dram-10"] == 7_000
    assert len(values) == 13
    assert read_from["package-10"].endswith("intel-rapl:a/energy_uj")
    assert skipped["intel-rapl"].reason == "not_a_zone"
    assert skipped["intel-rapl:c"].reason == "dangling_link"
    assert "mount the host's /sys/devices" in skipped["intel-rapl:c"].why
    assert skipped["intel-rapl:d"].reason == "no_counter"
    assert not any(s.read_error for s in skipped.values())


def test_only_the_class_directory_mounted_leaves_every_link_dangling(sysfs: Path, tmp_path: Path) -> None:
    ft.intel_2s(sysfs)
    container = tmp_path / "container" / "sys" / "class"
    container.mkdir(parents=True)
    shutil.copytree(sysfs / "class" / "powercap", container / "powercap", symlinks=True)
    with pytest.raises(SourceError) as err:
        PowercapSource(container.parent)
    assert "dangling link" in err.value.reason and "intel-rapl:0" in err.value.reason
    assert "/sys/devices" in err.value.fix


def test_reads_follow_the_files_and_a_wrap_is_a_small_delta(sysfs: Path) -> None:
    range_uj = ft.DRAM_RANGE_UJ
    ft.write_powercap_zone(sysfs, 0, "package-0", 1_000)
    ft.write_powercap_zone(sysfs, "0:0", "dram", range_uj - 400, range_uj)
    source = PowercapSource(sysfs)
    first = by_name(source)
    ft.set_energy(sysfs, 0, 51_000)
    ft.set_energy(sysfs, "0:0", 600)  # wrapped past its own range, not the package's
    second = by_name(source)
    source.close()
    assert second["package-0"][1] == 51_000
    dram = second["dram-0"][0]
    assert delta_uj(first["dram-0"][1], second["dram-0"][1], dram.max_energy_range_uj) == 1_000
    assert delta_uj(first["package-0"][1], second["package-0"][1], None) == 50_000


def test_no_powercap_says_why_and_how_to_fix(sysfs: Path) -> None:
    sysfs.mkdir()
    with pytest.raises(SourceError) as err:
        PowercapSource(sysfs)
    assert "class/powercap does not exist" in err.value.reason
    assert "modprobe intel_rapl_msr" in err.value.fix


@pytest.mark.parametrize("garbage", ["\n", "-5\n", "12abc\n", "9" * 21 + "\n", "1" * 200 + "\n"])
def test_a_zone_holding_no_counter_is_skipped_by_name_and_the_others_read(sysfs: Path, garbage: str) -> None:
    ft.amd(sysfs)
    source = PowercapSource(sysfs)
    (ft.zone_dir(sysfs, "0:0") / "energy_uj").write_text(garbage)
    zones = by_name(source)
    assert sorted(zones) == ["package-0"]  # core-0 skipped, package-0 still read
    [skip] = [s for s in source.skipped() if s.read_error]
    assert skip.reason == "not_a_counter" and "intel-rapl:0:0/energy_uj holds" in skip.why
    assert source.read_errors()["not_a_counter"] >= 1
    ft.set_energy(sysfs, "0:0", 17890399999)
    assert by_name(source)["core-0"][1] == 17890399999  # skipped zones are tried again
    assert [s for s in source.skipped() if s.read_error] == []
    source.close()


def test_an_unreadable_zone_is_skipped_and_named_at_open(sysfs: Path) -> None:
    ft.intel_2s(sysfs)
    energy = ft.zone_dir(sysfs, 1) / "energy_uj"
    energy.unlink()
    energy.mkdir()  # opens, but every read fails (EISDIR), as a file gone bad would
    source = PowercapSource(sysfs)
    zones = by_name(source)
    [skip] = [s for s in source.skipped() if s.read_error]
    source.close()
    assert "package-0" not in zones and {"package-1", "dram-1", "core-1"} <= set(zones)
    assert skip.reason == "unreadable" and skip.where.endswith("intel-rapl:1/energy_uj")
    # Its sub-zones are not read without it: they would be labelled as orphans.
    assert "dram-0" not in zones


def test_a_range_of_zero_or_below_the_counter_is_unknown(
    sysfs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ft.write_powercap_zone(sysfs, 0, "package-0", 5_000, 0)
    ft.write_powercap_zone(sysfs, 1, "package-1", 5_000, 4_000)
    source = PowercapSource(sysfs)
    zones = {z.name: z for z in source.read_uj()}
    source.close()
    assert zones["package-0"].max_energy_range_uj is None
    assert zones["package-1"].max_energy_range_uj is None
    assert "max_energy_range_uj is 0" in caplog.text and "above its max_energy_range_uj 4000" in caplog.text


def test_a_zone_that_vanishes_and_returns_is_followed(sysfs: Path) -> None:
    ft.client_psys(sysfs)
    now = [0.0]
    source = PowercapSource(sysfs, rescan_interval_s=30.0, clock=lambda: now[0])
    assert {z.name for z in source.read_uj() if z.in_node_total} == {"psys"}
    psys_device = (ft.zone_dir(sysfs, 1)).resolve()
    moved = sysfs / "psys-away"
    psys_device.rename(moved)  # the driver unregistered psys: its files go
    # (On sysfs the open file would now fail to read, which rescans at once; a fixture file
    # stays readable, so this is the periodic rescan.)
    now[0] += 30.0
    zones = {z.name: z for z in source.read_uj()}
    assert "psys" not in zones and zones["package-0"].in_node_total
    moved.rename(psys_device)
    assert "psys" not in {z.name for z in source.read_uj()}  # not listed again until the rescan
    now[0] += 30.0
    zones = {z.name: z for z in source.read_uj()}
    source.close()
    assert zones["psys"].in_node_total and not zones["package-0"].in_node_total
    assert zones["package-0"].covered_by == "psys"


@pytest.fixture
def world_readable_tmp() -> Iterator[Path]:
    # pytest's tmp_path sits under a 0700 directory that the unprivileged user cannot enter.
    path = Path(tempfile.mkdtemp(prefix="energyd-perm-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def test_root_only_energy_uj_is_refused_with_the_fix(world_readable_tmp: Path) -> None:
    sysfs = world_readable_tmp / "sys"
    ft.amd(sysfs)
    for energy in sysfs.rglob("energy_uj"):
        energy.chmod(0o400)  # the mode the kernel has used since 5.10
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from energyd.sources.base import SourceError\n"
        "from energyd.sources.powercap import PowercapSource\n"
        "try:\n"
        "    PowercapSource(Path(sys.argv[1]))\n"
        "except SourceError as e:\n"
        "    print(e.reason); print(e.fix); sys.exit(3)\n"
    )
    # Root reads a 0400 file regardless, so the source runs as nobody, as energyd would without
    # runAsUser: 0. Run unprivileged, the test owns the files: mode 000 denies the owner too.
    if os.geteuid() == 0:
        as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    else:
        as_nobody = []
        for energy in sysfs.rglob("energy_uj"):
            energy.chmod(0o000)
    done = subprocess.run(
        [*as_nobody, sys.executable, "-c", script, str(sysfs)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3, done.stderr
    reason, fix = done.stdout.splitlines()
    assert reason.startswith("permission denied reading ")
    assert "CVE-2020-8694" in reason
    assert "runAsUser: 0" in fix


@settings(max_examples=200, deadline=None)
@given(
    range_uj=st.integers(1_000, 2**40),
    prev_frac=st.floats(0, 1),
    delta_frac=st.floats(0, 0.5, exclude_max=True),
)
def test_delta_across_at_most_one_wrap_is_the_true_delta(
    range_uj: int, prev_frac: float, delta_frac: float
) -> None:
    prev = min(int(prev_frac * range_uj), range_uj - 1)
    true_delta = int(delta_frac * range_uj)
    cur = (prev + true_delta) % range_uj
    assert zone_delta(prev, cur, range_uj, true_delta) == Delta(true_delta)
    assert delta_uj(prev, cur, range_uj) == true_delta


@settings(max_examples=300, deadline=None)
@given(
    prev=st.integers(0, 2**64),
    cur=st.integers(0, 2**64),
    range_uj=st.none() | st.integers(0, 2**64),
    max_delta_uj=st.integers(0, 2**40),
)
def test_a_delta_is_never_negative_nor_above_the_ceiling(
    prev: int, cur: int, range_uj: int | None, max_delta_uj: int
) -> None:
    d = zone_delta(prev, cur, range_uj, max_delta_uj)
    assert 0 <= d.uj <= max_delta_uj
    assert (d.uj == 0) == (d.rejected is not None) or cur == prev
    if prev <= cur <= prev + max_delta_uj:
        assert d == Delta(cur - prev)


def test_a_step_back_is_a_wrap_only_from_near_the_range() -> None:
    package = ft.PACKAGE_RANGE_UJ
    ceiling = 1_000 * 1_000_000  # 1 kW over 1 s
    # 10 J back from 100 J (driver reload): not a wrap of 262 kJ but a reset.
    assert zone_delta(100_000_000, 90_000_000, package, ceiling) == Delta(0, "reset")
    assert zone_delta(100_000_000, 0, package, ceiling) == Delta(0, "reset")
    # 300 J below the range, then 200 J: a wrap of 500 J.
    assert zone_delta(package - 300_000_000, 200_000_000, package, ceiling) == Delta(500_000_000)
    # Without a range (or with 0) a step back is always a reset.
    assert zone_delta(10_000, 300, None, ceiling) == Delta(0, "reset")
    assert zone_delta(10_000, 300, 0, ceiling) == Delta(0, "reset")
    # Forward, but more than the ceiling allows: implausible.
    assert zone_delta(0, 2 * ceiling, package, ceiling) == Delta(0, "implausible")
    # The profiler's form, without a ceiling: a reset counts 0, a wrap from the upper half counts.
    assert delta_uj(10_000, 300, None) == 0
    assert delta_uj(100_000_000, 90_000_000, package) == 0
    assert delta_uj(package - 300, 200, package) == 500
