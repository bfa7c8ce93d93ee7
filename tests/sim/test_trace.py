from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np
import pytest

from adapter.sim.trace import WORKLOADS, TraceError, arrival_times_s, read_trace, workload, write_trace


def test_read_trace_accepts_a_header_and_trailing_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("requests\n3\n0\n 7 \n\n\n", encoding="utf-8")
    assert read_trace(path) == [3, 0, 7]


def test_write_then_read_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    write_trace(path, [1, 2, 30])
    assert read_trace(path) == [1, 2, 30]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4\nfive\n", "line 2: 'five' is not an integer"),
        ("4\n2.5\n", "line 2: '2.5' is not an integer"),
        ("4\n\n6\n", "line 2: '' is not an integer"),
        ("requests\n1\n-3\n", "line 3: -3 requests is negative"),
        ("requests\n", "no seconds in the trace"),
        ("", "no seconds in the trace"),
    ],
)
def test_read_trace_names_the_line_and_value(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TraceError, match=expected) as info:
        read_trace(path)
    assert str(path) in str(info.value)


def test_read_trace_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="cannot read"):
        read_trace(tmp_path / "absent.csv")


# IPA's four windows (Twitter ÷ 8) as IPA reports them: requests, mean requests/s, min, max.
IPA_WINDOWS = {
    "bursty": (14437, 12.03, 3, 34),
    "steady_low": (6067, 5.06, 3, 8),
    "steady_high": (34606, 28.84, 23, 34),
    "fluctuating": (19837, 16.53, 3, 34),
}


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_the_workloads_are_ipas_windows(name: str) -> None:
    counts = workload(name)
    requests, mean, low, high = IPA_WINDOWS[name]
    assert len(counts) == 1200 and sum(counts) == requests
    assert statistics.mean(counts) == pytest.approx(mean, abs=0.05)
    assert (min(counts), max(counts)) == (low, high)


def test_bursty_has_a_burst_and_steady_high_has_none() -> None:
    bursty = np.asarray(workload("bursty"), dtype=float).reshape(20, 60).mean(axis=1)
    steady = np.asarray(workload("steady_high"), dtype=float).reshape(20, 60).mean(axis=1)
    assert bursty.max() > 4 * bursty.min()
    assert steady.max() < 1.2 * steady.min()


def test_unknown_workload() -> None:
    with pytest.raises(ValueError, match="unknown workload 'spiky'"):
        workload("spiky")


def test_arrivals_fall_in_their_second_and_depend_on_the_seed() -> None:
    counts = [3, 0, 5, 1]
    times = arrival_times_s(counts, seed=4)
    assert np.all(np.diff(times) >= 0)
    assert np.bincount(times.astype(int), minlength=4).tolist() == counts
    assert np.array_equal(times, arrival_times_s(counts, seed=4))
    assert not np.array_equal(times, arrival_times_s(counts, seed=5))
