"""The drawn windows: the committed manifest is what the seeded draw gives, the files load, the
tune and test splits never overlap (in names or in seconds of the trace)."""

from __future__ import annotations

import pytest

from adapter.sim.report import split_windows
from adapter.sim.trace import (
    DRAW_COUNT,
    DRAW_SEED,
    IPA_WINDOWS_S,
    TRACE_SECONDS,
    WORKLOAD_S,
    WORKLOADS,
    damp,
    draw_window_starts,
    drawn_windows,
    evaluation_windows,
)


def test_the_committed_windows_are_the_seeded_draw() -> None:
    manifest = drawn_windows()
    starts = draw_window_starts(TRACE_SECONDS, DRAW_COUNT, DRAW_SEED)
    assert [int(row["start_s"]) for row in manifest] == starts
    assert all(int(row["end_s"]) - int(row["start_s"]) == WORKLOAD_S for row in manifest)
    # Another seed draws other windows: the seed, not the code, fixes the choice.
    assert draw_window_starts(TRACE_SECONDS, DRAW_COUNT, DRAW_SEED + 1) != starts


def test_every_window_loads_with_the_manifests_totals() -> None:
    windows = evaluation_windows()
    assert len(windows) == len(WORKLOADS) + DRAW_COUNT >= 14
    for row in drawn_windows():
        split, counts = windows[row["name"]]
        assert split == row["split"]
        assert len(counts) == WORKLOAD_S
        assert (sum(counts), min(counts), max(counts)) == (
            int(row["requests"]),
            int(row["min_rps"]),
            int(row["max_rps"]),
        )


def test_tune_and_test_windows_never_overlap() -> None:
    windows = evaluation_windows()
    tune, test = split_windows(windows)
    assert tune and test and not set(tune) & set(test)
    assert set(WORKLOADS) <= set(test)  # IPA's own windows are only ever scored
    spans = [(int(r["start_s"]), int(r["end_s"])) for r in drawn_windows()] + list(IPA_WINDOWS_S)
    for i, (a0, a1) in enumerate(spans):
        for b0, b1 in spans[i + 1 :]:
            assert a1 <= b0 or b1 <= a0, ((a0, a1), (b0, b1))


def test_the_draw_refuses_what_it_cannot_do() -> None:
    with pytest.raises(ValueError, match="cannot draw"):
        draw_window_starts(WORKLOAD_S * 10, 5, 0)
    with pytest.raises(ValueError, match="tune and a test"):
        split_windows({"a": ("test", [1]), "b": ("train", [1])})


def test_damping_is_ipas_int_division() -> None:
    assert damp([0, 7, 8, 15, 16, 388]) == [0, 0, 1, 1, 2, 48]
