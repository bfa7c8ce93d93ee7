"""Request traces: the CSV format of shared/interfaces.md, IPA's four 20-minute workloads, and the
per-request arrival times a seed spreads them to.

The workloads are IPA's own windows of the public Twitter trace it published, damped by 8 as
its experiments do, shipped as data (adapter/data/workloads/, whose README states the source,
the windows and the derivation).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

WORKLOAD_S = 1200
WORKLOADS_DIR = Path(__file__).resolve().parents[1] / "data" / "workloads"
WORKLOADS: dict[str, str] = {
    "bursty": "~5 req/s, a jump to ~27 held for 5 minutes, a decay (14437 requests)",
    "steady_low": "5 req/s, 3-8 (6067 requests)",
    "steady_high": "29 req/s, 23-34 (34606 requests)",
    "fluctuating": "two bursts 3-34 req/s (19837 requests)",
}


class TraceError(ValueError):
    """A trace file breaks the format; the message names the file, line and value."""


def workload(name: str) -> list[int]:
    """IPA's workload `name` (one of WORKLOADS): requests arriving in each of its 1200 seconds."""
    if name not in WORKLOADS:
        raise ValueError(f"unknown workload {name!r}; choose one of {sorted(WORKLOADS)}")
    return read_trace(WORKLOADS_DIR / f"{name}.csv")


def read_trace(path: Path) -> list[int]:
    """One non-negative integer per line (requests arriving in that second); a header line and
    trailing blank lines are allowed. Raises TraceError naming the line and the value."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise TraceError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    while lines and not lines[-1].strip():
        lines.pop()
    counts: list[int] = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        try:
            value = int(text)
        except ValueError:
            if number == 1 and text and not text.lstrip("+-").isdigit():
                continue  # a header
            raise TraceError(f"{path}: line {number}: {text!r} is not an integer") from None
        if value < 0:
            raise TraceError(f"{path}: line {number}: {value} requests is negative")
        counts.append(value)
    if not counts:
        raise TraceError(f"{path}: no seconds in the trace")
    return counts


def write_trace(path: Path, counts: Sequence[int]) -> None:
    path.write_text("requests\n" + "".join(f"{c}\n" for c in counts), encoding="utf-8")


def arrival_times_s(counts: Sequence[int], seed: int) -> npt.NDArray[np.float64]:
    """Every request's arrival time, sorted: second i's n requests at i.i.d. uniform offsets in
    [i, i + 1). Uniform rather than IPA's exponential offsets so no request leaks into the next
    second and `requests` per second is exactly the trace's count."""
    rng = np.random.default_rng(seed)
    per_second = np.asarray(counts, dtype=np.int64)
    starts = np.repeat(np.arange(len(per_second), dtype=float), per_second)
    return np.sort(starts + rng.random(int(per_second.sum())))
