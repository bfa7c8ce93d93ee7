"""Cost of one energy read per source, per zone, on generated sysfs/procfs trees.

powercap keeps each energy_uj open and preads it; the naive way opens, reads and closes each
file per sample. Both are timed on the same tree (a 2-socket Xeon: 6 zones; a 4-socket box with
package, core and dram: 12 zones), with /proc/stat parsing and the estimate beside them. The
trees are ordinary local files, not sysfs, so these are the Python costs: on real sysfs each
read adds the kernel's MSR read, not measured here. Prints os.cpu_count(). Run by `make bench`.
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # tests.energyd.fixture_trees writes the trees

from energyd.procstat import read_cpu_times  # noqa: E402
from energyd.sources.estimate import EstimateSource  # noqa: E402
from energyd.sources.powercap import PowercapSource  # noqa: E402
from tests.energyd import fixture_trees as ft  # noqa: E402

ROUNDS = 2000


def read_each(files: list[Path]) -> list[int]:
    """The naive read: open, read and close every file each time."""
    return [int(f.read_text()) for f in files]


def per_call_us(fn: Callable[[], object], rounds: int = ROUNDS) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(rounds):
        fn()
    return (time.perf_counter() - start) / rounds * 1e6


def four_socket_with_core(sysfs: Path) -> None:
    for i in range(4):
        ft.write_powercap_zone(sysfs, i, f"package-{i}", 10**10 + i)
        ft.write_powercap_zone(sysfs, f"{i}:0", "core", 10**9 + i)
        ft.write_powercap_zone(sysfs, f"{i}:1", "dram", 10**9 + i, ft.DRAM_RANGE_UJ)


def main() -> int:
    print(f"os.cpu_count() = {os.cpu_count()}; {ROUNDS} rounds each")
    with tempfile.TemporaryDirectory() as tmp:
        for label, build in (("intel-2s", ft.intel_2s), ("4-socket", four_socket_with_core)):
            sysfs = Path(tmp) / label / "sys"
            build(sysfs)
            source = PowercapSource(sysfs)
            zones = len(source.zones())
            kept = per_call_us(source.read_uj)
            source.close()
            files = sorted(p / "energy_uj" for p in (sysfs / "class" / "powercap").glob("*:*"))
            naive = per_call_us(functools.partial(read_each, files))
            print(
                f"powercap {label:9} {zones:2} zones: read_uj {kept:7.1f} µs ({kept / zones:5.2f} µs/zone); "
                f"open+read+close per file {naive:7.1f} µs ({naive / kept:4.1f}x)"
            )
        procfs = Path(tmp) / "proc"
        ft.write_proc_stat(procfs, 1000, 0, 200, 5000, cpus=64)
        print(f"/proc/stat (64 CPUs) read_cpu_times: {per_call_us(lambda: read_cpu_times(procfs)):7.1f} µs")
        estimate = EstimateSource(procfs)
        print(f"estimate read_uj (64 CPUs):           {per_call_us(estimate.read_uj):7.1f} µs")
        real = Path("/proc")
        print(f"this machine's /proc/stat:            {per_call_us(lambda: read_cpu_times(real)):7.1f} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
