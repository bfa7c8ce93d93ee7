"""cgroup v1: CPU time of one cgroup from the cpuacct controller (``cpuacct.usage``, in ns)."""

from __future__ import annotations

import os
from pathlib import Path

# cpuacct is mounted on its own or joined with cpu; distributions link one name to the other.
CPUACCT_MOUNTS = ("cpuacct", "cpu,cpuacct", "cpuacct,cpu")


def find_cpuacct(cgroup_root: Path) -> Path | None:
    """The cpuacct hierarchy under a v1 cgroup mount root, or None when there is none."""
    for name in CPUACCT_MOUNTS:
        candidate = cgroup_root / name
        if (candidate / "cpuacct.usage").is_file():
            return candidate
    return None


def read_usage_us(cgroup_dir: str) -> int:
    """Cumulative CPU time of the cgroup in µs. Raises OSError (gone, unreadable) or ValueError."""
    fd = os.open(os.path.join(cgroup_dir, "cpuacct.usage"), os.O_RDONLY)
    try:
        data = os.read(fd, 64)
    finally:
        os.close(fd)
    return int(data) // 1000
