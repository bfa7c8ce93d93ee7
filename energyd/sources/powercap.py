"""RAPL energy counters from the powercap sysfs class (<sysfs>/class/powercap).

Every zone directory named ``<control>:<N>`` or ``<control>:<N>:<M>`` that has ``name`` and
``energy_uj`` is read (``intel-rapl`` covers Intel and AMD, whose kernel driver registers its
package and core domains under the same names; ``intel-rapl-mmio`` is the MMIO interface of
recent Intel clients). Others (the ``intel-rapl`` control type itself, odd names such as
``intel-rapl:a``) are skipped. The path index is not the socket: labels come from ``name``.

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
- when a ``psys`` zone exists it meters the whole platform, packages and dram included: psys
  alone is in the total.

Reads keep each ``energy_uj`` open and pread it at offset 0 (sysfs regenerates the value on a
read from 0), so a sample costs one syscall per zone and no directory walk; a failed read
rescans the tree once, in case zones came or went.
"""

from __future__ import annotations

import errno
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from energyd.sources.base import SourceError, Zone

log = logging.getLogger(__name__)

ZONE_DIR = re.compile(r"^(?P<control>[a-z][a-z0-9-]*):(?P<index>\d+)(?::(?P<sub>\d+))?$")
DIE = re.compile(r"^package-(?P<package>\d+)-die-(?P<die>\d+)$")
INSIDE_PACKAGE = frozenset({"core", "uncore", "gpu"})

ROOT_FIX = (
    "run energyd as root: energy_uj is mode 0400 since Linux 5.10 (CVE-2020-8694); in Kubernetes "
    "the DaemonSet's securityContext needs runAsUser: 0 (no privileged, no capabilities), see "
    "deploy/base/energyd/daemonset.yaml"
)


@dataclass(frozen=True)
class _Found:
    dir_name: str
    control: str
    name: str
    parent_dir: str | None
    path: Path
    max_energy_range_uj: int | None


class PowercapSource:
    name = "powercap"
    measured = True

    def __init__(self, sysfs_root: Path = Path("/sys")) -> None:
        self._class_dir = sysfs_root / "class" / "powercap"
        self._fds: dict[Zone, int] = {}
        self._paths: dict[Zone, Path] = {}
        self._open()

    def zones(self) -> Sequence[Zone]:
        return list(self._fds)

    def read_uj(self) -> Mapping[Zone, int]:
        if self._fds:
            try:
                return self._read_all()
            except OSError as err:
                log.info("powercap read failed (%s); rescanning %s", err, self._class_dir)
            self._close_fds()
        # After a failed read (or a failed rescan) every read rescans until the tree is readable.
        return self._open()

    def close(self) -> None:
        self._close_fds()

    def _read_all(self) -> dict[Zone, int]:
        values: dict[Zone, int] = {}
        for zone, fd in self._fds.items():
            raw = os.pread(fd, 32, 0)
            try:
                values[zone] = int(raw)
            except ValueError:
                raise OSError(errno.EIO, f"{self._paths[zone]} holds {raw!r}, not an integer") from None
        return values

    def _close_fds(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        self._paths.clear()

    def _open(self) -> dict[Zone, int]:
        try:
            zones = _label(_scan(self._class_dir))
        except OSError as err:  # a zone vanished or turned unreadable while being listed
            raise SourceError(f"cannot list RAPL zones under {self._class_dir}: {err}") from err
        for zone, f in zones:
            path = f.path / "energy_uj"
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except PermissionError as err:
                self._close_fds()
                raise SourceError(
                    f"permission denied reading {path}: RAPL energy_uj is readable by root only "
                    "since Linux 5.10 (CVE-2020-8694)",
                    ROOT_FIX,
                ) from err
            except OSError as err:
                self._close_fds()
                raise SourceError(f"cannot open {path}: {err.strerror}") from err
            self._fds[zone] = fd
            self._paths[zone] = path
        try:
            first = self._read_all()
        except OSError as err:
            self._close_fds()
            raise SourceError(f"cannot read RAPL energy under {self._class_dir}: {err}") from err
        log.debug("powercap zones: %s", ", ".join(z.name for z in self._fds))
        return self._mark_die_duplicates(first)

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
                fd, path = self._fds.pop(zone), self._paths.pop(zone)
                zone = replace(zone, in_node_total=False)
                self._fds[zone], self._paths[zone] = fd, path
            marked[zone] = value
        return marked


def _scan(class_dir: Path) -> list[_Found]:
    if not class_dir.is_dir():
        raise SourceError(
            f"{class_dir} does not exist: no powercap driver (a VM, or the intel_rapl_msr module is not loaded)",
            "on bare metal: modprobe intel_rapl_msr (Intel; AMD Zen on recent kernels) and mount the host's "
            "/sys/class/powercap into the container; a VM exposes no RAPL at all: the estimate is what is left",
        )
    found: list[_Found] = []
    for entry in sorted(class_dir.iterdir()):
        m = ZONE_DIR.match(entry.name)
        if m is None:
            continue
        if not (entry / "energy_uj").exists() or not (entry / "name").is_file():
            log.debug("skipping %s: no name or energy_uj", entry)
            continue
        parent = f"{m['control']}:{m['index']}" if m["sub"] is not None else None
        found.append(
            _Found(
                dir_name=entry.name,
                control=m["control"],
                name=(entry / "name").read_text().strip(),
                parent_dir=parent,
                path=entry,
                max_energy_range_uj=_read_range(entry),
            )
        )
    if not found:
        raise SourceError(
            f"{class_dir} has no RAPL zones with energy_uj (the powercap class exists, but no RAPL driver "
            "registered zones)",
            "modprobe intel_rapl_msr (and intel_rapl_common); check dmesg for 'RAPL' errors",
        )
    return found


def _read_range(zone_dir: Path) -> int | None:
    try:
        return int((zone_dir / "max_energy_range_uj").read_text())
    except (OSError, ValueError) as err:
        # Without a range a decrease reads as a reset, not a wrap: that loses energy at a wrap
        # but never makes it up (codecarbon's negative-energy bug, #1309).
        log.warning("%s/max_energy_range_uj unreadable (%s): wraps will read as resets", zone_dir, err)
        return None


def _label(found: list[_Found]) -> list[tuple[Zone, _Found]]:
    msr_names = {f.name for f in found if f.control == "intel-rapl" and f.parent_dir is None}
    has_psys = any(f.name == "psys" and f.parent_dir is None for f in found)
    top: dict[str, tuple[Zone, _Found]] = {}
    labelled: list[tuple[Zone, _Found]] = []
    taken: set[str] = set()
    for f in sorted(found, key=lambda f: f.parent_dir is not None):
        if f.parent_dir is None:
            duplicate = f.control != "intel-rapl" and f.name in msr_names
            label = f"{f.name}-{_suffix(f.control)}" if duplicate else f.name
            zone = Zone(
                label, None, not duplicate and (not has_psys or f.name == "psys"), f.max_energy_range_uj
            )
        elif f.parent_dir in top:
            parent, parent_found = top[f.parent_dir]
            socket = parent_found.name.removeprefix("package-")
            label = f"{f.name}-{socket}" if socket != parent_found.name else f"{parent.name}/{f.name}"
            if parent.name == f"{parent_found.name}-{_suffix(parent_found.control)}":
                label += "-" + _suffix(f.control)  # a sub-zone of an MMIO duplicate
            if f.name in INSIDE_PACKAGE:
                zone = Zone(label, parent.name, False, f.max_energy_range_uj)
            else:
                zone = Zone(label, None, parent.in_node_total, f.max_energy_range_uj)
        else:
            log.warning("skipping %s: its parent zone %s is missing", f.path, f.parent_dir)
            continue
        if zone.name in taken:
            zone = replace(zone, name=f"{zone.name}/{f.dir_name}")
        taken.add(zone.name)
        if f.parent_dir is None:
            top[f.dir_name] = (zone, f)
        labelled.append((zone, f))
    return labelled


def _suffix(control: str) -> str:
    return control.rsplit("-", 1)[-1]
