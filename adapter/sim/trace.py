"""Request traces: the CSV format of shared/interfaces.md, IPA's four 20-minute workloads, the
drawn windows, and the per-request arrival times a seed spreads them to.

The workloads are IPA's own windows of the public Twitter trace it published, damped by 8 as
its experiments do, shipped as data (adapter/data/workloads/, whose README states the source,
the windows and the derivation). The drawn windows (adapter/data/workloads/drawn/) are more
20-minute windows of the same trace, cut the same way at offsets `draw_window_starts` picks
(scripts/draw_windows.py writes them); half tune the evaluation's knobs, half are scored.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

WORKLOAD_S = 1200
WORKLOADS_DIR = Path(__file__).resolve().parents[1] / "data" / "workloads"
DRAWN_DIR = WORKLOADS_DIR / "drawn"
TRACE_SECONDS = 1_899_061  # seconds in IPA's workload.txt
DAMPING = 8  # IPA's damping_factor: int(rps / 8)
DRAW_SEED = 13
DRAW_COUNT = 12
# IPA's own windows (start, end) in workload.txt; drawn windows stay clear of them.
IPA_WINDOWS_S = ((1301160, 1302360), (1299600, 1300800), (1768800, 1769400), (1308600, 1309200))
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


def draw_window_starts(
    total_s: int, count: int, seed: int, exclude: Sequence[tuple[int, int]] = IPA_WINDOWS_S
) -> list[int]:
    """`count` start offsets of WORKLOAD_S-second windows in [0, total_s), each overlapping
    neither `exclude` nor another: uniform draws from random.Random(seed), a draw that overlaps
    is rejected. Deterministic for a seed (random.Random's generator is stable across versions)."""
    if not 0 < count <= 1000 or total_s < WORKLOAD_S * (count + len(exclude)) * 4:
        raise ValueError(f"cannot draw {count} windows of {WORKLOAD_S} s from {total_s} s")
    rng = random.Random(seed)
    taken = list(exclude)
    starts: list[int] = []
    # The bound above leaves most of the trace free, so a rejection is rare; 100 tries per
    # window bounds the loop whatever the numbers.
    for _ in range(count * 100):
        start = rng.randrange(0, total_s - WORKLOAD_S + 1)
        if all(start + WORKLOAD_S <= a or b <= start for a, b in taken):
            starts.append(start)
            taken.append((start, start + WORKLOAD_S))
            if len(starts) == count:
                return starts
    raise ValueError(f"drew only {len(starts)} of {count} disjoint windows")


def damp(rps: Sequence[int]) -> list[int]:
    """IPA's cut: int(rps / DAMPING) per second."""
    return [int(x / DAMPING) for x in rps]


def drawn_windows() -> list[dict[str, str]]:
    """The manifest of the drawn windows: name, start_s, end_s, split (tune | test)."""
    with (DRAWN_DIR / "windows.csv").open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def evaluation_windows() -> dict[str, tuple[str, list[int]]]:
    """Every window the evaluation uses: name -> (split, counts). IPA's four are scored
    (test); the drawn ones carry their manifest's split."""
    windows = {name: ("test", workload(name)) for name in WORKLOADS}
    for row in drawn_windows():
        windows[row["name"]] = (row["split"], read_trace(DRAWN_DIR / f"{row['name']}.csv"))
    return windows


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
