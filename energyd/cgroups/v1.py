"""cgroup v1: CPU time of one cgroup from the cpuacct controller (``cpuacct.usage``, in ns)."""

from __future__ import annotations

from pathlib import Path

USAGE_FILE = "cpuacct.usage"
# cpuacct is mounted on its own or joined with cpu; distributions link one name to the other.
CPUACCT_MOUNTS = ("cpuacct", "cpu,cpuacct", "cpuacct,cpu")


def find_cpuacct(cgroup_root: Path) -> Path | None:
    """The cpuacct hierarchy under a v1 cgroup mount root, or None when there is none."""
    for name in CPUACCT_MOUNTS:
        candidate = cgroup_root / name
        if (candidate / USAGE_FILE).is_file():
            return candidate
    return None


def parse_usage_us(data: bytes) -> int:
    """Cumulative CPU time in µs from the bytes of cpuacct.usage (ns). Raises ValueError."""
    return int(data) // 1000
