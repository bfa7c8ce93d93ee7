"""Request traces: the CSV format of shared/interfaces.md, four built-in 20-minute workloads shaped
like IPA's Twitter-trace ones, and the per-request arrival times a seed spreads them to.

The built-in workloads are generated, not copied: a piecewise-linear envelope through per-minute
levels read off IPA's traces (Twitter ÷ 8) plus Gaussian noise from a fixed per-workload seed,
rounded and clipped to the range IPA's trace spans. The same name always gives the same trace.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

WORKLOAD_S = 1200


@dataclass(frozen=True)
class Workload:
    name: str
    minute_levels: tuple[float, ...]  # requests/s at the middle of each minute
    noise_rps: float  # standard deviation of the per-second noise
    low: int
    high: int


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload(
            "bursty",
            (
                5.0,
                5.0,
                5.0,
                5.1,
                5.0,
                5.6,
                14.0,
                27.0,
                27.9,
                26.8,
                24.8,
                25.9,
                17.4,
                12.0,
                6.1,
                5.5,
                5.8,
                5.5,
                5.8,
                5.3,
            ),
            1.2,
            3,
            34,
        ),
        Workload("steady_low", (5.06,) * 20, 0.95, 3, 8),
        Workload("steady_high", (28.85,) * 20, 1.9, 23, 34),
        Workload(
            "fluctuating",
            (
                5.0,
                5.7,
                14.1,
                27.1,
                27.9,
                26.8,
                24.8,
                25.9,
                17.4,
                12.0,
                6.6,
                7.2,
                16.2,
                27.5,
                27.5,
                22.2,
                15.8,
                7.5,
                6.8,
                6.5,
            ),
            1.4,
            3,
            34,
        ),
    )
}


class TraceError(ValueError):
    """A trace file breaks the format; the message names the file, line and value."""


def generate(name: str) -> list[int]:
    """The built-in workload `name` (one of WORKLOADS): requests arriving in each of 1200 seconds."""
    try:
        w = WORKLOADS[name]
    except KeyError:
        raise ValueError(f"unknown workload {name!r}; choose one of {sorted(WORKLOADS)}") from None
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    minute_mid_s = np.arange(len(w.minute_levels)) * 60.0 + 30.0
    seconds = np.arange(WORKLOAD_S, dtype=float)
    envelope = np.interp(seconds, minute_mid_s, np.asarray(w.minute_levels))
    noisy = envelope + rng.normal(0.0, w.noise_rps, WORKLOAD_S)
    return [int(v) for v in np.clip(np.rint(noisy), w.low, w.high)]


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
