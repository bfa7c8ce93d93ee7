"""Cost of one energy read per source, per zone, on generated sysfs/procfs trees.

powercap keeps each energy_uj open and preads it; the naive way opens, reads and closes each
file per sample. Both are timed on the same tree (a 2-socket Xeon: 6 zones; a 4-socket box with
package, core and dram: 12 zones), with /proc/stat parsing and the estimate beside them. The
trees are ordinary local files, not sysfs, so these are the Python costs: on real sysfs each
read adds the kernel's MSR read, not measured here. Prints os.cpu_count(). Run by `make bench`.

GPUs: energyd's nvml source over the recorded NVML interface (ReplayNvml, 8 GPUs), per read and
per GPU, beside the RAPL rows, and a whole GPU attribution pass (energy, process samples,
/proc/<pid>/cgroup, the split) per GPU. These are energyd's own costs around NVML; a real NVML
call adds the driver's (scripts/gpu-measure.sh times it on a real GPU).
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

from energyd.cgroups.names import NoNames  # noqa: E402
from energyd.gpu import GpuSource  # noqa: E402
from energyd.gpu_attribution import GpuSampler  # noqa: E402
from energyd.procstat import read_cpu_times  # noqa: E402
from energyd.sampler import Snapshot  # noqa: E402
from energyd.sources.estimate import EstimateSource  # noqa: E402
from energyd.sources.nvml_replay import FORMAT, ReplayNvml  # noqa: E402
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


GPUS = 8


def recorded_gpus(rounds: int) -> ReplayNvml:
    """8 GPUs, each with two pod processes sampled every pass, answering `rounds` passes."""
    answers: dict[str, list[object]] = {
        "init": [None],
        "driver_version": ["580.159.04"],
        "device_count": [GPUS],
    }
    for i in range(GPUS):
        answers[f"device/{i}"] = [{"uuid": f"GPU-{i:08x}", "name": "NVIDIA H200", "mig_enabled": False}]
        answers[f"total_energy_mj/{i}"] = [1000 * k for k in range(rounds + 2)]
        answers[f"process_samples/{i}"] = [
            [
                {"pid": 100 + i, "timestamp_us": 10**15 + k * 10**6, "sm_util_pct": 70},
                {"pid": 200 + i, "timestamp_us": 10**15 + k * 10**6, "sm_util_pct": 20},
            ]
            for k in range(rounds + 2)
        ]
    return ReplayNvml({"format": FORMAT, "answers": answers})


def gpu_rows(tmp: Path) -> None:
    source = GpuSource(recorded_gpus(ROUNDS + 1))
    read = per_call_us(source.read_uj)
    print(f"nvml     recorded  {GPUS:2} GPUs:  read_uj {read:7.1f} µs ({read / GPUS:5.2f} µs/GPU)")
    procfs = tmp / "gpu-proc"
    for i in range(GPUS):
        for pid in (100 + i, 200 + i):
            (procfs / str(pid)).mkdir(parents=True)
            uid = f"{pid:08x}_0000_4000_8000_{pid:012x}"
            (procfs / str(pid) / "cgroup").write_text(
                f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid}.slice/"
                f"cri-containerd-{pid:064x}.scope\n"
            )
    sampler = GpuSampler(GpuSource(recorded_gpus(ROUNDS + 1)), procfs, NoNames())
    empty = Snapshot(0.0, "estimate", False, (), {}, {}, {}, {}, {}, {}, {}, {}, 0.0, 0)
    ticks = iter(range(ROUNDS + 2))
    step = per_call_us(lambda: sampler.step(float(next(ticks)), empty))
    print(
        f"nvml     recorded  {GPUS:2} GPUs:  attribution pass {step:7.1f} µs ({step / GPUS:5.2f} µs/GPU,"
        " 2 pod processes each)"
    )


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
        gpu_rows(Path(tmp))
        real = Path("/proc")
        print(f"this machine's /proc/stat:            {per_call_us(lambda: read_cpu_times(real)):7.1f} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
