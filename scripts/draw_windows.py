"""Draw the evaluation's extra 20-minute windows from IPA's Twitter trace (seeded, deterministic).

    python scripts/draw_windows.py /path/to/workload.txt

`workload.txt` is IPA's `load_tester/barazmoon/twitter/workload.tbz2` unpacked (requests per
second, space-separated). Writes adapter/data/workloads/drawn/: one trace CSV per window (IPA's
cut: int(rps / 8) of workload.txt[start:start + 1200]) and windows.csv (name, start_s, end_s,
split, requests). The first half of the draw order tunes the evaluation's knobs, the second half
is scored with IPA's four windows. adapter/data/workloads/README.md documents the result.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from adapter.sim.trace import (
    DRAW_COUNT,
    DRAW_SEED,
    DRAWN_DIR,
    TRACE_SECONDS,
    WORKLOAD_S,
    damp,
    draw_window_starts,
    write_trace,
)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    rps = [int(x) for x in Path(argv[0]).read_text(encoding="utf-8").split()]
    if len(rps) != TRACE_SECONDS:
        print(f"{argv[0]}: {len(rps)} seconds, expected IPA's {TRACE_SECONDS}", file=sys.stderr)
        return 2
    DRAWN_DIR.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, start in enumerate(draw_window_starts(TRACE_SECONDS, DRAW_COUNT, DRAW_SEED)):
        name = f"tw{i + 1:02d}"
        counts = damp(rps[start : start + WORKLOAD_S])
        write_trace(DRAWN_DIR / f"{name}.csv", counts)
        split = "tune" if i < DRAW_COUNT // 2 else "test"
        rows.append([name, start, start + WORKLOAD_S, split, sum(counts), min(counts), max(counts)])
    with (DRAWN_DIR / "windows.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["name", "start_s", "end_s", "split", "requests", "min_rps", "max_rps"])
        writer.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
