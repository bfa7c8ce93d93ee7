"""Writers of fake sysfs and procfs trees for tests and bench (B's bench imports these too).

They follow the real layout, symlinks included, so that a reader (or a container that mounts
only part of /sys) meets what it would on a host: /sys/class/powercap holds relative symlinks
into /sys/devices/virtual/powercap/<control>/... (``intel-rapl:0 ->
../../devices/virtual/powercap/intel-rapl/intel-rapl:0``), where a sub-zone directory is nested
inside its package and the control type has its own link; /sys/bus/event_source/devices/power
is a link to ../../../devices/power, where the RAPL PMU's events are. Zone indexes are hex, as
the kernel writes them (``intel-rapl:a`` is the 11th). The machine presets mirror real listings
(a Xeon's dram range 65712999613, AMD's 65532610987, psys between packages, intel-rapl:0 =
package-3 on a 4-socket box, the MMIO duplicate of package-0). Values are rewritten in place,
so a reader that keeps files open sees the update as it would on sysfs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

PACKAGE_RANGE_UJ = 262143328850
DRAM_RANGE_UJ = 65712999613
AMD_RANGE_UJ = 65532610987
RAPL_SCALE = "2.3283064365386962890625e-10"
PERF_EVENT_CODES = {"energy-cores": 1, "energy-pkg": 2, "energy-ram": 3, "energy-gpu": 4, "energy-psys": 5}


def zone_dir(sysfs_root: Path, index: str | int, control: str = "intel-rapl") -> Path:
    """The class/powercap entry of zone `index` ("0", 1, "a" or "0:1"; an int is written in hex)."""
    return sysfs_root / "class" / "powercap" / f"{control}:{_hex(index)}"


def _hex(index: str | int) -> str:
    return f"{index:x}" if isinstance(index, int) else index


def _link(link: Path, target: Path) -> None:
    """A relative symlink, as sysfs has them."""
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink():
        link.symlink_to(os.path.relpath(target, link.parent))


def write_powercap_zone(
    sysfs_root: Path,
    index: str | int,
    name: str,
    energy_uj: int,
    max_range_uj: int | None = PACKAGE_RANGE_UJ,
    *,
    control: str = "intel-rapl",
    enabled: int = 1,
) -> Path:
    """One zone (`index` "N" or "N:M"), its device directory and its class/powercap symlink."""
    parts = _hex(index).split(":")
    control_dir = sysfs_root / "devices" / "virtual" / "powercap" / control
    control_dir.mkdir(parents=True, exist_ok=True)
    (control_dir / "enabled").write_text("1\n")
    _link(sysfs_root / "class" / "powercap" / control, control_dir)
    device = control_dir
    for depth in range(1, len(parts) + 1):
        device = device / f"{control}:{':'.join(parts[:depth])}"
    device.mkdir(parents=True, exist_ok=True)
    (device / "name").write_text(f"{name}\n")
    (device / "enabled").write_text(f"{enabled}\n")
    if max_range_uj is not None:
        (device / "max_energy_range_uj").write_text(f"{max_range_uj}\n")
    (device / "energy_uj").write_text(f"{energy_uj}\n")
    link = zone_dir(sysfs_root, index, control)
    _link(link, device)
    return link


def set_energy(sysfs_root: Path, index: str | int, energy_uj: int, control: str = "intel-rapl") -> None:
    with open(zone_dir(sysfs_root, index, control) / "energy_uj", "r+") as f:
        f.truncate(0)
        f.write(f"{energy_uj}\n")


def write_power_events(sysfs_root: Path, events: Iterable[str] = ("energy-pkg", "energy-ram")) -> Path:
    """The RAPL perf PMU's event files, as arch/x86/events/rapl.c exposes them, under
    devices/power, and the bus/event_source link to it; returns the events directory as seen
    through the link (the path the perf source reads)."""
    pmu = sysfs_root / "devices" / "power"
    (pmu / "events").mkdir(parents=True, exist_ok=True)
    (pmu / "cpumask").write_text("0\n")
    _link(sysfs_root / "bus" / "event_source" / "devices" / "power", pmu)
    events_dir = sysfs_root / "bus" / "event_source" / "devices" / "power" / "events"
    (events_dir.parent / "type").write_text("23\n")
    for event in events:
        (events_dir / event).write_text(f"event=0x{PERF_EVENT_CODES[event]:02x}\n")
        (events_dir / f"{event}.scale").write_text(f"{RAPL_SCALE}\n")
        (events_dir / f"{event}.unit").write_text("Joules\n")
    return events_dir


def write_proc_stat(
    procfs_root: Path,
    user: int = 0,
    nice: int = 0,
    system: int = 0,
    idle: int = 0,
    iowait: int = 0,
    irq: int = 0,
    softirq: int = 0,
    steal: int = 0,
    guest: int = 0,
    guest_nice: int = 0,
    *,
    cpus: int = 2,
) -> Path:
    """A /proc/stat whose aggregate line has these ticks, spread over `cpus` per-CPU lines."""
    ticks = [user, nice, system, idle, iowait, irq, softirq, steal, guest, guest_nice]
    lines = ["cpu  " + " ".join(map(str, ticks))]
    for n in range(cpus):
        share = [t // cpus + (1 if n < t % cpus else 0) for t in ticks]
        lines.append(f"cpu{n} " + " ".join(map(str, share)))
    lines += ["intr 1234567 " + " ".join(["0"] * 300), "ctxt 987654", "btime 1764067200"]
    lines += ["processes 4321", "procs_running 1", "procs_blocked 0", "softirq 5 0 1 0 1 0 0 1 1 0 1"]
    procfs_root.mkdir(parents=True, exist_ok=True)
    path = procfs_root / "stat"
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


# Machines, after the real listings named in the module docstring.


def intel_2s(sysfs_root: Path) -> None:
    """A 2-socket Xeon: packages with core and dram sub-zones; intel-rapl:0 is package-1."""
    for index, socket, base in ((0, 1, 176399656753), (1, 0, 147773556513)):
        write_powercap_zone(sysfs_root, index, f"package-{socket}", base)
        write_powercap_zone(sysfs_root, f"{index}:0", "core", base // 3)
        write_powercap_zone(sysfs_root, f"{index}:1", "dram", base // 5 % DRAM_RANGE_UJ, DRAM_RANGE_UJ)


def amd(sysfs_root: Path) -> None:
    """AMD EPYC: the kernel registers package and core only, with a 15.26 µJ unit."""
    write_powercap_zone(sysfs_root, 0, "package-0", 5597181429, AMD_RANGE_UJ)
    write_powercap_zone(sysfs_root, "0:0", "core", 17890384969, AMD_RANGE_UJ)


def client_psys(sysfs_root: Path) -> None:
    """An Intel laptop: package-0 with core and uncore sub-zones, psys beside it."""
    write_powercap_zone(sysfs_root, 0, "package-0", 26963529117, enabled=1)
    write_powercap_zone(sysfs_root, "0:0", "core", 7980278886, enabled=0)
    write_powercap_zone(sysfs_root, "0:1", "uncore", 6564982278, enabled=0)
    write_powercap_zone(sysfs_root, 1, "psys", 61212345678)


def mmio_duplicate(sysfs_root: Path) -> None:
    """A recent Intel client: intel-rapl-mmio:0 repeats package-0 through MMIO."""
    write_powercap_zone(sysfs_root, 0, "package-0", 240422366267)
    write_powercap_zone(sysfs_root, "0:0", "core", 80422366267, enabled=0)
    write_powercap_zone(sysfs_root, 0, "package-0", 240422301234, control="intel-rapl-mmio")


def four_socket_reverse(sysfs_root: Path) -> None:
    """A 4-socket box where intel-rapl:0 is package-3 and intel-rapl:3 is package-0."""
    for index in range(4):
        socket = 3 - index
        write_powercap_zone(sysfs_root, index, f"package-{socket}", 100_000_000_000 + socket)
        write_powercap_zone(sysfs_root, f"{index}:0", "dram", 30_000_000_000 + socket, DRAM_RANGE_UJ)


def server_psys_between(sysfs_root: Path) -> None:
    """A Sapphire Rapids-like server: psys at intel-rapl:1, between the two packages."""
    write_powercap_zone(sysfs_root, 0, "package-0", 226618687799)
    write_powercap_zone(sysfs_root, "0:0", "dram", 60279115781, DRAM_RANGE_UJ)
    write_powercap_zone(sysfs_root, 1, "psys", 181795825861)
    write_powercap_zone(sysfs_root, 2, "package-1", 35231629289)
    write_powercap_zone(sysfs_root, "2:0", "dram", 32651449214, DRAM_RANGE_UJ)
