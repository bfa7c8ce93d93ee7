"""Configuration of the node daemon: frozen, built once by the CLI and passed down."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

SOURCE_CHOICES = ("auto", "powercap", "perf", "estimate")


@dataclass(frozen=True)
class Roots:
    """Where the host's files are. Tests point these at fixture trees; the code path is the same.

    `sysfs` holds class/powercap and bus/event_source (default /sys); `procfs` holds stat
    (default /proc); `cgroup` is the cgroup mount (default /sys/fs/cgroup).
    """

    sysfs: Path = Path("/sys")
    procfs: Path = Path("/proc")
    cgroup: Path = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Config:
    roots: Roots = field(default_factory=Roots)
    source: str = "auto"
    interval_s: float = 1.0
    port: int = 9102
    host: str = "0.0.0.0"
