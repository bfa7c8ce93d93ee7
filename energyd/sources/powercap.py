"""RAPL energy counters from the powercap sysfs class (<sysfs>/class/powercap).

Every zone directory named ``<control>:<N>`` or ``<control>:<N>:<M>`` (the kernel writes the
indexes with ``%x``: the 11th package is ``intel-rapl:a``) that has ``name`` and ``energy_uj``
is read (``intel-rapl`` covers Intel and AMD, whose kernel driver registers its package and
core domains under the same names; ``intel-rapl-mmio`` is the MMIO interface of recent Intel
clients). Anything else is skipped and listed with why (`skipped()`, shown by probe): the
control type directories, links that dangle because only the class directory was mounted
(the entries are relative links into <sysfs>/devices/virtual/powercap), zones whose file
cannot be opened or holds no counter. One bad zone never disables the others. The path index
is not the socket: labels come from ``name``.

Labels and what counts toward the node total (so that summing the zones with in_node_total
never counts a joule twice):

- a top-level zone is labelled by its name: ``package-0``, ``psys``, ``package-0-die-1``;
- a sub-zone is labelled ``<name>-<socket>`` (``core-0``, ``uncore-1``, ``dram-0``) when its
  parent is ``package-<socket>``, else ``<parent>/<name>``;
- core, uncore (and gpu) sub-zones are inside their package: parent set, not in the total;
- dram, though a sysfs child of the package, is a separate domain (the package domain does not
  meter memory): parent None, in the total;
- an ``intel-rapl-mmio`` zone whose name an ``intel-rapl`` zone also has repeats that counter:
  labelled ``<name>-mmio``, not in the total;
- multi-die packages (``package-P-die-D``) whose dies read the same value at open repeat one
  counter per die (AMD): only die 0 is in the total;
- when a readable ``psys`` zone exists it meters the whole platform, packages and dram
  included: psys alone is in the total, and the others are `covered_by` it (they count again
  if the sampler finds psys flat, or psys goes).

Reads keep each ``energy_uj`` open and pread it at offset 0 (sysfs regenerates the value on a
read from 0), so a sample costs one syscall per zone and no directory walk. The tree is listed
again every `rescan_interval_s` and right after any read fails, so zones that come, go or come
back (driver reload, hotplug) are followed: a zone missing from a reading has no series, and
one that returns starts from its new reading. While a zone fails to read, every read lists the
tree again (and counts the failure), so it is back as soon as it reads.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from energyd.sources.base import Skipped, SourceError, Zone

log = logging.getLogger(__name__)

ZONE_DIR = re.compile(r"^(?P<control>[a-z][a-z0-9-]*):(?P<index>[0-9a-f]+)(?::(?P<sub>[0-9a-f]+))?$")
ZONE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
DIE = re.compile(r"^package-(?P<package>\d+)-die-(?P<die>\d+)$")
INSIDE_PACKAGE = frozenset({"core", "uncore", "gpu"})
# energy_uj is a u64 in decimal: at most 20 digits. A read of READ_BYTES that fills the buffer
# holds more than any counter, so it is refused rather than cut to a plausible-looking prefix.
MAX_DIGITS = 20
READ_BYTES = 64

ROOT_FIX = (
    "run energyd as root: energy_uj is mode 0400 since Linux 5.10 (CVE-2020-8694); in Kubernetes "
    "the DaemonSet's securityContext needs runAsUser: 0 (no privileged, no capabilities), see "
    "deploy/base/energyd/daemonset.yaml"
)
MOUNT_FIX = (
    "mount the host's /sys/devices read-only beside /sys/class (the class entries are relative links "
    "into it), as deploy/base/energyd/daemonset.yaml does"
)


@dataclass(frozen=True)
class _Found:
    dir_name: str
    control: str
    name: str
    parent_dir: str | None
    path: Path
    max_energy_range_uj: int | None


@dataclass
class _Open:
    fd: int
    path: Path


class PowercapSource:
    name = "powercap"
    measured = True

    def __init__(
        self,
        sysfs_root: Path = Path("/sys"),
        *,
        rescan_interval_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._class_dir = sysfs_root / "class" / "powercap"
        self._rescan_interval_s = rescan_interval_s
        self._clock = clock
        self._open_zones: dict[Zone, _Open] = {}
        self._scan_skipped: list[Skipped] = []
        self._read_skipped: list[Skipped] = []
        self._warned: set[tuple[str, str]] = set()
        self._errors: Counter[str] = Counter()
        self._rescan_at = 0.0
        self._rescan()

    def zones(self) -> Sequence[Zone]:
        return list(self._open_zones)

    def read_from(self) -> Mapping[str, str]:
        return {zone.name: str(o.path) for zone, o in self._open_zones.items()}

    def skipped(self) -> Sequence[Skipped]:
        return [*self._scan_skipped, *self._read_skipped]

    def read_errors(self) -> Mapping[str, int]:
        return dict(self._errors)

    def read_uj(self) -> Mapping[Zone, int]:
        # While a zone is skipped for a failed read every pass lists the tree again: it is
        # counted as an error each time, and read as soon as it reads.
        if not self._open_zones or self._read_skipped or self._clock() >= self._rescan_at:
            return self._rescan()
        values, failed = self._read_all()
        if failed:
            # A zone went or broke: list the tree again, in case the labels changed (psys gone).
            self._errors.update(s.reason for s in failed)
            return self._rescan(counted={s.where for s in failed})
        return values

    def close(self) -> None:
        for o in self._open_zones.values():
            os.close(o.fd)
        self._open_zones.clear()

    def _read_all(self) -> tuple[dict[Zone, int], list[Skipped]]:
        values: dict[Zone, int] = {}
        failed: list[Skipped] = []
        for zone, o in list(self._open_zones.items()):
            try:
                value = _parse_counter(os.pread(o.fd, READ_BYTES, 0), o.path)
            except OSError as err:
                failed.append(_read_failure(o.path, err))
                os.close(o.fd)
                del self._open_zones[zone]
                continue
            values[self._in_range(zone, value)] = value
        return values, failed

    def _in_range(self, zone: Zone, value: int) -> Zone:
        """The zone, with its range dropped (unknown) when the counter reads above it."""
        if zone.max_energy_range_uj is None or value <= zone.max_energy_range_uj:
            return zone
        o = self._open_zones.pop(zone)
        log.warning(
            "%s reads %d, above its max_energy_range_uj %d: the range is unknown from now on "
            "(a step back counts as a reset, never as a wrap)",
            o.path,
            value,
            zone.max_energy_range_uj,
        )
        zone = replace(zone, max_energy_range_uj=None)
        self._open_zones[zone] = o
        return zone

    def _rescan(self, counted: frozenset[str] | set[str] = frozenset()) -> dict[Zone, int]:
        """Lists the tree, opens and reads every zone; raises SourceError when none is readable.

        Labels are given after the reads, so that a psys that cannot be read leaves the packages
        it would have covered in the node total. Failed reads count as errors, except those of
        the files in `counted` (the read that triggered this rescan counted them already).
        """
        self.close()
        self._rescan_at = self._clock() + self._rescan_interval_s
        try:
            found, scan_skipped = _scan(self._class_dir)
        except OSError as err:  # the class directory vanished or turned unreadable while listed
            raise SourceError(f"cannot list RAPL zones under {self._class_dir}: {err}") from err
        readable: list[_Found] = []
        opened: dict[Path, tuple[_Open, int]] = {}
        failed: list[Skipped] = []
        for f in found:
            path = f.path / "energy_uj"
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as err:
                failed.append(_read_failure(path, err))
                continue
            try:
                value = _parse_counter(os.pread(fd, READ_BYTES, 0), path)
            except OSError as err:
                failed.append(_read_failure(path, err))
                os.close(fd)
                continue
            readable.append(f)
            opened[f.path] = (_Open(fd, path), value)
        labelled, orphans = _label(readable)
        for f in orphans:
            os.close(opened[f.path][0].fd)
            why = f"{f.path}: its parent zone {f.parent_dir} is not read"
            scan_skipped.append(Skipped(str(f.path), "parent_missing", why))
        self._scan_skipped, self._read_skipped = scan_skipped, failed
        self._errors.update(s.reason for s in failed if s.where not in counted)
        self._open_zones = {zone: opened[f.path][0] for zone, f in labelled}
        first = {self._in_range(zone, opened[f.path][1]): opened[f.path][1] for zone, f in labelled}
        self._warn_new()
        if not first:
            raise self._refusal()
        log.debug("powercap zones: %s", ", ".join(z.name for z in self._open_zones))
        return self._mark_die_duplicates(first)

    def _refusal(self) -> SourceError:
        problems = [s for s in self.skipped() if s.reason != "not_a_zone"]
        denied = [s for s in problems if s.reason == "permission_denied"]
        if denied:
            return SourceError(
                f"permission denied reading {denied[0].where}: RAPL energy_uj is readable by root only "
                "since Linux 5.10 (CVE-2020-8694)",
                ROOT_FIX,
            )
        if problems and all(s.reason == "dangling_link" for s in problems):
            names = ", ".join(Path(s.where).name for s in problems)
            return SourceError(
                f"every entry under {self._class_dir} is a dangling link ({names}), e.g. {problems[-1].why}",
                MOUNT_FIX,
            )
        detail = "; ".join(s.why for s in problems[:4]) or "no zone directories"
        return SourceError(
            f"{self._class_dir} has no readable RAPL zone ({detail})",
            "modprobe intel_rapl_msr (and intel_rapl_common); check dmesg for 'RAPL' errors",
        )

    def _warn_new(self) -> None:
        for s in self.skipped():
            key = (s.where, s.reason)
            if s.reason != "not_a_zone" and key not in self._warned:
                log.warning("powercap: skipping %s", s.why)
                self._warned.add(key)

    def _mark_die_duplicates(self, first: Mapping[Zone, int]) -> dict[Zone, int]:
        die0: dict[str, int] = {}
        for zone, value in first.items():
            m = DIE.match(zone.name)
            if m and m["die"] == "0":
                die0[m["package"]] = value
        marked: dict[Zone, int] = {}
        for zone, value in first.items():
            m = DIE.match(zone.name)
            if m and m["die"] != "0" and zone.in_node_total and die0.get(m["package"]) == value:
                o = self._open_zones.pop(zone)
                zone = replace(zone, in_node_total=False, covered_by=None)
                self._open_zones[zone] = o
            marked[zone] = value
        return marked


def _parse_counter(raw: bytes, path: Path) -> int:
    """A sysfs counter: 1 to 20 decimal digits and a newline; anything else is refused."""
    text = raw.removesuffix(b"\n")
    if len(text) <= MAX_DIGITS and text.isdigit() and (value := int(text)) < 2**64:
        return value
    shown = raw[:24] + (b"..." if len(raw) > 24 else b"")
    raise OSError(errno.EIO, f"{path} holds {shown!r}, not a counter")


def _read_failure(path: Path, err: OSError) -> Skipped:
    if isinstance(err, PermissionError):
        return Skipped(
            str(path), "permission_denied", f"{path}: permission denied (root only since Linux 5.10)", True
        )
    if err.errno == errno.EIO and err.strerror and "not a counter" in err.strerror:
        return Skipped(str(path), "not_a_counter", err.strerror, True)
    return Skipped(str(path), "unreadable", f"{path}: {err.strerror or err}", True)


def _scan(class_dir: Path) -> tuple[list[_Found], list[Skipped]]:
    if not class_dir.is_dir():
        raise SourceError(
            f"{class_dir} does not exist: no powercap driver (a VM, or the intel_rapl_msr module is not loaded)",
            "on bare metal: modprobe intel_rapl_msr (Intel; AMD Zen on recent kernels) and mount the host's "
            "/sys/class and /sys/devices into the container; a VM exposes no RAPL at all: the estimate is "
            "what is left",
        )
    found: list[_Found] = []
    skipped: list[Skipped] = []
    for entry in sorted(class_dir.iterdir()):
        m = ZONE_DIR.match(entry.name)
        if entry.is_symlink() and not entry.exists():
            why = f"{entry} links to {os.readlink(entry)}, which is not there: {MOUNT_FIX}"
            skipped.append(Skipped(str(entry), "dangling_link", why))
            continue
        if m is None:
            why = f"{entry}: not a zone (<control>:<hex index>[:<hex index>]), e.g. a control type"
            skipped.append(Skipped(str(entry), "not_a_zone", why))
            continue
        name = _read_name(entry)
        if name is None or not (entry / "energy_uj").exists():
            skipped.append(Skipped(str(entry), "no_counter", f"{entry}: no readable name or no energy_uj"))
            continue
        parent = f"{m['control']}:{m['index']}" if m["sub"] is not None else None
        found.append(
            _Found(
                dir_name=entry.name,
                control=m["control"],
                name=name,
                parent_dir=parent,
                path=entry,
                max_energy_range_uj=_read_range(entry),
            )
        )
    return found, skipped


def _read_name(zone_dir: Path) -> str | None:
    try:
        with open(zone_dir / "name", "rb") as f:
            name = f.read(READ_BYTES).decode("ascii", "replace").strip()
    except OSError:
        return None
    return name if ZONE_NAME.match(name) else None


def _read_range(zone_dir: Path) -> int | None:
    path = zone_dir / "max_energy_range_uj"
    try:
        with open(path, "rb") as f:
            range_uj = _parse_counter(f.read(READ_BYTES), path)
    except OSError as err:
        # Without a range a decrease reads as a reset, not a wrap: that loses energy at a wrap
        # but never makes it up (codecarbon's negative-energy bug, #1309).
        log.warning("%s unreadable (%s): the range is unknown, wraps will count as resets", path, err)
        return None
    if range_uj == 0:
        log.warning("%s is 0: the range is unknown, wraps will count as resets", path)
        return None
    return range_uj


def _label(found: list[_Found]) -> tuple[list[tuple[Zone, _Found]], list[_Found]]:
    """Each zone's label and place in the node total; and the sub-zones whose parent is not read."""
    msr_names = {f.name for f in found if f.control == "intel-rapl" and f.parent_dir is None}
    psys = "psys" if any(f.name == "psys" and f.parent_dir is None for f in found) else None
    top: dict[str, tuple[Zone, _Found]] = {}
    labelled: list[tuple[Zone, _Found]] = []
    orphans: list[_Found] = []
    taken: set[str] = set()
    for f in sorted(found, key=lambda f: f.parent_dir is not None):
        if f.parent_dir is None:
            duplicate = f.control != "intel-rapl" and f.name in msr_names
            label = f"{f.name}-{_suffix(f.control)}" if duplicate else f.name
            covered_by = psys if not duplicate and f.name != "psys" else None
            in_total = not duplicate and covered_by is None
            zone = Zone(label, None, in_total, f.max_energy_range_uj, covered_by)
        elif f.parent_dir in top:
            parent, parent_found = top[f.parent_dir]
            socket = parent_found.name.removeprefix("package-")
            label = f"{f.name}-{socket}" if socket != parent_found.name else f"{parent.name}/{f.name}"
            if parent.name == f"{parent_found.name}-{_suffix(parent_found.control)}":
                label += "-" + _suffix(f.control)  # a sub-zone of an MMIO duplicate
            if f.name in INSIDE_PACKAGE:
                zone = Zone(label, parent.name, False, f.max_energy_range_uj)
            else:
                zone = Zone(label, None, parent.in_node_total, f.max_energy_range_uj, parent.covered_by)
        else:
            orphans.append(f)
            continue
        if zone.name in taken:
            zone = replace(zone, name=f"{zone.name}/{f.dir_name}")
        taken.add(zone.name)
        if f.parent_dir is None:
            top[f.dir_name] = (zone, f)
        labelled.append((zone, f))
    return labelled, orphans


def _suffix(control: str) -> str:
    return control.rsplit("-", 1)[-1]
