"""cgroup v2: CPU time of one cgroup from ``cpu.stat`` (``usage_usec``)."""

from __future__ import annotations

import os

USAGE_FILE = "cpu.stat"
_KEY = b"usage_usec "


def parse_usage_us(data: bytes) -> int:
    """Cumulative CPU time in µs from the bytes of cpu.stat. Raises ValueError."""
    start = data.find(_KEY)
    if start < 0:
        raise ValueError("cpu.stat has no usage_usec")
    start += len(_KEY)
    end = data.find(b"\n", start)
    return int(data[start:] if end < 0 else data[start:end])


def is_v2(cgroup_root: str) -> bool:
    """A unified (v2) hierarchy is mounted at the root: it has cgroup.controllers."""
    return os.path.isfile(os.path.join(cgroup_root, "cgroup.controllers"))
