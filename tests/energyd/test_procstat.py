"""/proc/stat parsing: a real capture and generated files, through read_cpu_times's own path."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from energyd.procstat import USER_HZ, ProcStatError, online_cpus, read_cpu_times, read_proc_stat
from tests.energyd import fixture_trees as ft

FIXTURES = Path(__file__).parent / "fixtures"


def test_user_hz_is_linux_100() -> None:
    assert USER_HZ == 100


def test_real_capture_of_a_2_cpu_vm() -> None:
    # Captured on this project's 2-vCPU build VM (Linux 6.18): cpu 62696 0 7390 195049 863 0 141 51 0 0
    stat = read_proc_stat(FIXTURES / "vm-2cpu" / "proc")
    assert stat.online_cpus == 2
    cpu = stat.cpu
    assert cpu.user_s == pytest.approx(626.96)
    assert cpu.total_s == pytest.approx((62696 + 7390 + 195049 + 863 + 141 + 51) / 100)
    assert cpu.busy_s == pytest.approx((62696 + 7390 + 141 + 51) / 100)


def test_guest_time_is_not_counted_twice(tmp_path: Path) -> None:
    # guest 300 is already inside user 1000, guest_nice 20 inside nice 50.
    ft.write_proc_stat(tmp_path, 1000, 50, 200, 5000, 100, 10, 20, 30, 300, 20, cpus=4)
    cpu = read_cpu_times(tmp_path)
    assert cpu.guest_s == pytest.approx(3.0)
    assert cpu.total_s == pytest.approx((1000 + 50 + 200 + 5000 + 100 + 10 + 20 + 30) / 100)
    assert cpu.busy_s == pytest.approx((1000 + 50 + 200 + 10 + 20 + 30) / 100)
    assert online_cpus(tmp_path) == 4


def test_old_kernel_with_four_columns(tmp_path: Path) -> None:
    (tmp_path / "stat").write_text("cpu  100 2 30 400\ncpu0 100 2 30 400\nintr 5\n")
    cpu = read_cpu_times(tmp_path)
    assert (cpu.iowait_s, cpu.steal_s) == (0.0, 0.0)
    assert math.isclose(cpu.busy_s, 1.32)


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ProcStatError, match=str(tmp_path / "stat")):
        read_cpu_times(tmp_path)


@pytest.mark.parametrize(
    "text, message",
    [
        ("intr 5\n", "no aggregate 'cpu' line"),
        ("cpu  1 2\n", "expected at least 4"),
        ("cpu  1 2 x 4\n", "not integers"),
    ],
)
def test_malformed_file_is_refused(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "stat").write_text(text)
    with pytest.raises(ProcStatError, match=message):
        read_cpu_times(tmp_path)
