"""The most power a zone can plausibly draw. An interval whose energy exceeds it is discarded.

The ceiling is what tells a counter that wrapped (a small, plausible delta past the range)
from one that restarted (the wrapped delta would be most of the range), and it screens
garbage (a value off by orders of magnitude) before it reaches a counter. Defaults are set
well above real hardware, per socket for the per-socket zones: the largest CPUs shipping draw
500 W per package (EPYC 9005, Xeon 6900P), DRAM a few watts per DIMM. Zones that span the
node (psys, perf's sums over all sockets, the estimate, anything unrecognised) get the
whole-node default. Each can be overridden (`energyd run --max-power-w KIND=W`) by exact zone
name (`package-1`) or by kind (`package`: every package zone, perf's whole-node one too).
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Mapping

# `gpu` covers RAPL's integrated-graphics sub-zone and the GPU source's `gpu-<index>` zones alike:
# the largest accelerators draw 700-1,200 W (H200, B200, GB200).
PER_SOCKET_MAX_POWER_W = {"package": 1000.0, "core": 1000.0, "uncore": 500.0, "gpu": 1500.0, "dram": 500.0}
WHOLE_NODE_MAX_POWER_W = 10_000.0
PER_SOCKET = re.compile(r"^(?P<kind>[a-z]+)-\d")
KIND = re.compile(r"^[a-z][a-z0-9_/-]{0,63}$")
MAX_CEILING_W = 1e6  # a megawatt per zone: beyond it the bound no longer screens anything


def zone_kind(zone: str) -> str:
    """`package-0`, `package-0-die-1`, `package-0-mmio` -> `package`; a whole-node zone is its name."""
    m = PER_SOCKET.match(zone)
    return m["kind"] if m else zone


def max_power_w(zone: str, overrides: Mapping[str, float] = {}) -> float:
    """The ceiling for `zone`: an override for its name, then for its kind, then the default."""
    if zone in overrides:
        return overrides[zone]
    kind = zone_kind(zone)
    if kind in overrides:
        return overrides[kind]
    if kind != zone and kind in PER_SOCKET_MAX_POWER_W:
        return PER_SOCKET_MAX_POWER_W[kind]
    return WHOLE_NODE_MAX_POWER_W


def parse_max_power(text: str) -> tuple[str, float]:
    """`KIND=W` (argparse type of --max-power-w): a zone name or kind and a ceiling in watts."""
    kind, sep, watts = text.partition("=")
    if not sep or not KIND.match(kind):
        raise argparse.ArgumentTypeError(f"expected ZONE=WATTS (e.g. package=800), got {text[:80]!r}")
    try:
        value = float(watts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--max-power-w {kind}: not a number: {watts[:40]!r}") from None
    if not (math.isfinite(value) and 0 < value <= MAX_CEILING_W):
        raise argparse.ArgumentTypeError(f"--max-power-w {kind}: must be > 0 and <= {MAX_CEILING_W:g} W")
    return kind, value
