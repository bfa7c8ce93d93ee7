"""Fitting adapter.predict's learned predictor on the evaluation's tune windows (never the test
windows), deterministically: ridge least squares, then a headroom calibrated as a quantile.

Examples are made as the simulator's loop would see them: at each whole second `now` with a full
span of history behind it, the history is (t, requests in second t - 1) for t in (now - span,
now] (the simulator's per-second rate), and the target is the peak of the requests per second
over [now, now + horizon), the load a configuration decided now meets until the next one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from adapter.predict import LearnedModel, learned_features

BIN_S = 10
BINS = 12  # 2 minutes: the loop's history window
HORIZON_S = 20  # the loop's default horizon: a 10-s interval plus a ~10-s rollout
QUANTILE = 0.9  # of actual over predicted peak: the headroom covers 9 in 10 training examples
RIDGE = 1e-3
COMMAND = "python scripts/train_predictor.py"


def examples(counts: Sequence[int]) -> tuple[list[list[float]], list[float], list[float]]:
    """(features, target ratio, scale) per example of one window."""
    span_s = BIN_S * BINS
    xs, ys, scales = [], [], []
    for now in range(span_s, len(counts) - HORIZON_S + 1):
        history = [(float(t), float(counts[t - 1])) for t in range(now - span_s + 1, now + 1)]
        scale, x = learned_features(history, float(now), BIN_S, BINS)
        if scale > 0:
            xs.append(x)
            ys.append(max(counts[now : now + HORIZON_S]) / scale)
            scales.append(scale)
    return xs, ys, scales


def train(windows: Mapping[str, tuple[str, Sequence[int]]]) -> LearnedModel:
    """The model fitted on the windows whose split is "tune" (name -> (split, counts))."""
    names = sorted(n for n, (split, _) in windows.items() if split == "tune")
    if not names:
        raise ValueError("no tune windows to train on")
    xs: list[list[float]] = []
    ys: list[float] = []
    for name in names:
        x, y, _ = examples(windows[name][1])
        xs += x
        ys += y
    a, b = np.array(xs), np.array(ys)
    normal = a.T @ a + RIDGE * len(b) * np.eye(a.shape[1])
    weights = np.linalg.solve(normal, a.T @ b)
    predicted = np.maximum(a @ weights, 1e-9)
    headroom = float(np.quantile(b / predicted, QUANTILE))
    return LearnedModel(
        bin_s=BIN_S,
        bins=BINS,
        horizon_s=HORIZON_S,
        weights=tuple(round(float(w), 9) for w in weights),
        headroom=round(headroom, 9),
        quantile=QUANTILE,
        ridge=RIDGE,
        examples=len(b),
        training_windows=tuple(names),
        training_split="tune",
        command=COMMAND,
    )


def accuracy(counts_by_window: Mapping[str, Sequence[int]], step_s: int = 10) -> list[dict[str, Any]]:
    """Each predictor (adapter.predict's defaults, looking HORIZON_S ahead) against the peak of
    the next HORIZON_S, every `step_s` with two minutes of history, over the given windows:
    the % of predictions below that peak (under-provisioned) and the mean prediction / peak."""
    from adapter.predict import PREDICTOR_NAMES, make_predictor

    span_s = BIN_S * BINS
    rows: list[dict[str, Any]] = []
    for name in PREDICTOR_NAMES:
        predictor = make_predictor(name, window_s=float(span_s), horizon_s=float(HORIZON_S))
        under, ratios = 0, []
        for counts in counts_by_window.values():
            for now in range(span_s, len(counts) - HORIZON_S + 1, step_s):
                history = [(float(t), float(counts[t - 1])) for t in range(now - span_s + 1, now + 1)]
                peak = max(counts[now : now + HORIZON_S])
                predicted = predictor.predict_rps(history, float(now))
                under += predicted < peak
                ratios.append(predicted / max(peak, 1))
        rows.append(
            {
                "predictor": name,
                "under_pct": 100.0 * under / max(len(ratios), 1),
                "mean_ratio": sum(ratios) / max(len(ratios), 1),
            }
        )
    return rows
