"""Configuration of the node daemon: frozen, built once by the CLI and passed down."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

SOURCE_CHOICES = ("auto", "powercap", "perf", "estimate")
GPU_CHOICES = ("auto", "off")
POD_ZONE_CHOICES = ("node-total", "all")


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
    # A vanished pod's counters are kept this long, so a pod that is only briefly unreadable
    # keeps its series, then dropped so that churn does not grow the exposition without bound.
    grace_period_s: float = 300.0
    # The node whose pods are named through the Kubernetes API (the NODE_NAME env in a
    # DaemonSet); None: pods are labelled by uid.
    node_name: str | None = None
    # Per-container series cost two reads per pod more (the app and the sandbox scope) and a
    # series per container and zone: opt-in. Off, only pod cgroups are read and pod directories
    # are never listed.
    containers: bool = False
    # Per-pod (and per-container) series for the zones in the node total only ("node-total"),
    # or for every zone, sub-zones and repeats included ("all": up to 3x the series per pod).
    pod_zones: str = "node-total"
    # The metrics server: a request (and its response) must complete within http_timeout_s;
    # at most http_max_connections are served at once, the rest are answered 503.
    http_timeout_s: float = 10.0
    http_max_connections: int = 16
    # NVIDIA GPUs through NVML beside the CPU source: "auto" uses them where NVML works. The
    # CLI's --gpu defaults to auto; a Config built in code opts in.
    gpu: str = "off"
    # Power ceilings (W) overriding energyd.sources.ceiling's defaults, by zone name or kind.
    max_power_w: tuple[tuple[str, float], ...] = ()
