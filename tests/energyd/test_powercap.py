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

from energyd.sources.base import SourceError, Zone, delta_uj
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


def test_odd_entries_are_skipped(sysfs: Path) -> None:
    ft.amd(sysfs)
    # The control type directory and a zone name Kepler's fixture carries ("intel-rapl:a").
    control = sysfs / "class" / "powercap" / "intel-rapl"
    control.mkdir()
    (control / "enabled").write_text("1\n")
    odd = sysfs / "class" / "powercap" / "intel-rapl:a"
    odd.mkdir()
    (odd / "name").write_text("package-10\n")
    (odd / "energy_uj").write_text("1\n")
    source = PowercapSource(sysfs)
    names = sorted(z.name for z in source.zones())
    source.close()
    assert names == ["core-0", "package-0"]


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


def test_garbage_in_energy_uj_names_the_file_and_a_later_read_recovers(sysfs: Path) -> None:
    ft.amd(sysfs)
    source = PowercapSource(sysfs)
    (ft.zone_dir(sysfs, "0:0") / "energy_uj").write_text("\n")
    with pytest.raises(SourceError, match=r"intel-rapl:0:0/energy_uj holds"):
        source.read_uj()
    ft.set_energy(sysfs, "0:0", 17890399999)
    assert by_name(source)["core-0"][1] == 17890399999
    source.close()


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
    range_uj=st.integers(1, 2**40),
    prev_frac=st.floats(0, 1),
    delta_frac=st.floats(0, 1, exclude_max=True),
)
def test_delta_across_at_most_one_wrap_is_the_true_delta(
    range_uj: int, prev_frac: float, delta_frac: float
) -> None:
    prev = min(int(prev_frac * range_uj), range_uj - 1)
    true_delta = min(int(delta_frac * range_uj), range_uj - 1)
    cur = (prev + true_delta) % range_uj
    assert delta_uj(prev, cur, range_uj) == true_delta


@settings(max_examples=200, deadline=None)
@given(prev=st.integers(0, 2**64), cur=st.integers(0, 2**64), range_uj=st.none() | st.integers(1, 2**64))
def test_delta_is_never_negative(prev: int, cur: int, range_uj: int | None) -> None:
    d = delta_uj(prev, cur, range_uj)
    assert d >= 0
    if cur >= prev:
        assert d == cur - prev


def test_decrease_without_range_is_a_reset_counting_from_zero() -> None:
    assert delta_uj(10_000, 300, None) == 300
    # Above the range it cannot be this counter wrapping either.
    assert delta_uj(10_000, 300, 5_000) == 300
