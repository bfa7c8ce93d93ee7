"""Request traces: the CSV format of shared/interfaces.md, four built-in 20-minute workloads shaped
like IPA's Twitter-trace ones, and the per-request arrival times a seed spreads them to.

The built-in workloads are generated, not copied: a piecewise-linear envelope through levels
read off IPA's traces (Twitter ÷ 8) by hand, plus Gaussian noise growing with the level, from a
fixed per-workload seed, rounded and clipped to the range IPA's trace spans. The same name always gives the same trace.
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
    envelope: tuple[tuple[float, float], ...]  # (time_s, requests/s) breakpoints
    low: int
    high: int


# Per-second noise: IPA's traces vary by ~0.9 req/s around 5 req/s and ~2.2 around 27, close to
# a Poisson-like sqrt(level) growth.
NOISE_RPS_AT_5 = 0.9
_BURST = ((0.0, 5.0), (300.0, 5.0), (330.0, 5.7), (386.0, 5.7), (392.0, 27.0), (480.0, 27.6), (540.0, 27.0))
_DECAY = ((600.0, 24.8), (670.0, 26.2), (705.0, 25.0), (765.0, 16.5), (820.0, 11.8), (855.0, 6.0))

WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload("bursty", (*_BURST, *_DECAY, (900.0, 5.5), (1200.0, 5.4)), 3, 34),
        Workload("steady_low", ((0.0, 5.06), (1200.0, 5.06)), 3, 8),
        Workload("steady_high", ((0.0, 28.8), (1200.0, 28.8)), 23, 34),
        # The bursty burst 240 s earlier, then a second, shorter one.
        Workload(
            "fluctuating",
            (
                *((max(0.0, t - 240.0), v) for t, v in _BURST[1:]),
                *((t - 240.0, v) for t, v in _DECAY[:-1]),
                (600.0, 6.6),
                (745.0, 7.2),
                (752.0, 27.0),
                (870.0, 27.5),
                (930.0, 22.2),
                (990.0, 15.8),
                (1040.0, 7.5),
                (1200.0, 6.5),
            ),
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
    times_s, levels = zip(*w.envelope, strict=True)
    envelope = np.interp(np.arange(WORKLOAD_S, dtype=float), times_s, levels)
    noisy = envelope + rng.normal(0.0, 1.0, WORKLOAD_S) * NOISE_RPS_AT_5 * np.sqrt(envelope / 5.0)
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
