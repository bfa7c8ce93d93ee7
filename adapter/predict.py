"""Load predictors: the arrival rate to provision for over the next adaptation interval.

`MaxWindowPredictor` is IPA's own fallback (the maximum of the last 2 minutes), with a headroom
factor. It is the default because under-provisioning costs dropped and late requests while
over-provisioning costs a few watts, and because it cannot be fooled by a spike into predicting
a fall: a burst raises it at once and it falls only when the burst has left the window.
`HoltPredictor` (exponential smoothing with a trend) follows ramps sooner but extrapolates
noise, so on bursty traces it both over- and under-shoots.
`LearnedPredictor` stands in for IPA's LSTM with numpy-free arithmetic: a linear model of the
last two minutes (10-s means and the peak, relative to their mean) predicting the peak of the
next `horizon_s`, its weights and headroom fitted offline on the evaluation's tune windows only
(adapter/sim/learned.py, scripts/train_predictor.py) and shipped as adapter/data/predictors/
learned.json, which is read like any hostile input.
"""

from __future__ import annotations

import itertools
import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapter.loop import LoadPredictor, RateSample

PREDICTOR_NAMES = ("max", "holt", "learned")
LEARNED_MODEL_PATH = Path(__file__).resolve().parent / "data" / "predictors" / "learned.json"
MAX_MODEL_BYTES = 65_536
MAX_RATE_RPS = 1e9  # a sample above this is hostile; clamped so that sums stay finite


class MaxWindowPredictor:
    """max(rate over the last `window_s`, the rising trend carried `horizon_s` ahead) x
    `headroom`; 0 with no samples in the window.

    A configuration decided now serves from the switch delay on until the next decision takes
    effect, so the loop sets `horizon_s` to the interval plus the switch delay: on a ramp the
    trend (least-squares slope of the last `trend_window_s`, counted only when rising) reaches
    the load the configuration will meet, where the window's maximum would lag it."""

    def __init__(
        self,
        window_s: float = 120.0,
        headroom: float = 1.1,
        horizon_s: float = 0.0,
        trend_window_s: float = 30.0,
    ) -> None:
        if window_s <= 0 or not math.isfinite(headroom) or headroom < 1.0:
            raise ValueError(f"window_s must be > 0 and headroom >= 1, got {window_s}, {headroom}")
        if not (math.isfinite(horizon_s) and horizon_s >= 0 and trend_window_s > 0):
            raise ValueError(f"need horizon_s >= 0 and trend_window_s > 0, got {horizon_s}, {trend_window_s}")
        self.window_s = window_s
        self.headroom = headroom
        self.horizon_s = horizon_s
        self.trend_window_s = trend_window_s

    def predict_rps(self, history: Sequence[RateSample], now_s: float) -> float:
        recent = [
            (t, rate) for t, rate in history if now_s - self.window_s < t <= now_s and math.isfinite(rate)
        ]
        peak = max((rate for _, rate in recent), default=0.0)
        trend = [(t, rate) for t, rate in recent if t > now_s - self.trend_window_s]
        if self.horizon_s > 0 and len(trend) >= 3:
            mean_t = statistics.fmean(t for t, _ in trend)
            mean_rate = statistics.fmean(rate for _, rate in trend)
            spread = sum((t - mean_t) ** 2 for t, _ in trend)
            slope = (
                sum((t - mean_t) * (rate - mean_rate) for t, rate in trend) / spread if spread > 0 else 0.0
            )
            if slope > 0:
                peak = max(peak, mean_rate + slope * (now_s + self.horizon_s - mean_t))
        return max(0.0, peak * self.headroom)


class HoltPredictor:
    """Holt's linear exponential smoothing over the samples, forecast `horizon_s` ahead.

    The trend is per sample, so the horizon is turned into steps with the median spacing of the
    samples (Prometheus range queries are evenly spaced; a missing point must not blow it up).
    """

    def __init__(
        self,
        level_alpha: float = 0.5,
        trend_beta: float = 0.3,
        horizon_s: float = 20.0,
        headroom: float = 1.0,
    ) -> None:
        if not (0 < level_alpha <= 1 and 0 <= trend_beta <= 1):
            raise ValueError(
                f"need 0 < level_alpha <= 1 and 0 <= trend_beta <= 1, got {level_alpha}, {trend_beta}"
            )
        if horizon_s < 0 or not math.isfinite(headroom) or headroom < 1.0:
            raise ValueError(f"horizon_s must be >= 0 and headroom >= 1, got {horizon_s}, {headroom}")
        self.level_alpha = level_alpha
        self.trend_beta = trend_beta
        self.horizon_s = horizon_s
        self.headroom = headroom

    def predict_rps(self, history: Sequence[RateSample], now_s: float) -> float:
        samples = [(t, rate) for t, rate in history if t <= now_s and math.isfinite(rate)]
        if not samples:
            return 0.0
        if len(samples) == 1:
            return max(0.0, samples[0][1] * self.headroom)
        level, trend = samples[0][1], samples[1][1] - samples[0][1]
        for _, rate in samples[1:]:
            previous = level
            level = self.level_alpha * rate + (1 - self.level_alpha) * (level + trend)
            trend = self.trend_beta * (level - previous) + (1 - self.trend_beta) * trend
        spacing_s = statistics.median(b[0] - a[0] for a, b in itertools.pairwise(samples))
        steps = self.horizon_s / spacing_s if spacing_s > 0 else 0.0
        return max(0.0, (level + steps * trend) * self.headroom)


@dataclass(frozen=True)
class LearnedModel:
    """What adapter/data/predictors/learned.json holds: the feature layout, the weights (the
    intercept, one per bin newest first, one for the peak), the calibrated headroom and how
    they were made (the training windows and command)."""

    bin_s: int
    bins: int
    horizon_s: int
    weights: tuple[float, ...]
    headroom: float
    quantile: float
    ridge: float
    examples: int
    training_windows: tuple[str, ...]
    training_split: str
    command: str

    def __post_init__(self) -> None:
        _bounded("bin_s", self.bin_s, 1, 60)
        _bounded("bins", self.bins, 1, 60)
        _bounded("horizon_s", self.horizon_s, 1, 600)
        if len(self.weights) != self.bins + 2:
            raise ValueError(
                f"weights: need {self.bins + 2} (intercept, {self.bins} bins, peak), got {len(self.weights)}"
            )
        for w in self.weights:
            _bounded("weights", w, -1e3, 1e3)
        _bounded("headroom", self.headroom, 0.1, 10.0)
        _bounded("quantile", self.quantile, 0.5, 1.0)
        _bounded("ridge", self.ridge, 0.0, 1e6)
        _bounded("examples", self.examples, 1, 10_000_000)
        if not 1 <= len(self.training_windows) <= 1000 or not all(
            isinstance(w, str) and 0 < len(w) <= 64 for w in self.training_windows
        ):
            raise ValueError("training.windows: need 1 to 1000 names of 1 to 64 characters")
        if self.training_split != "tune":
            raise ValueError(
                f"training.split: the model must be fitted on tune windows only, got {self.training_split!r}"
            )
        if not 0 < len(self.command) <= 1000:
            raise ValueError("training.command: need 1 to 1000 characters")

    @property
    def span_s(self) -> int:
        return self.bin_s * self.bins

    def to_json(self) -> dict[str, Any]:
        return {
            "format": 1,
            "bin_s": self.bin_s,
            "bins": self.bins,
            "horizon_s": self.horizon_s,
            "weights": list(self.weights),
            "headroom": self.headroom,
            "quantile": self.quantile,
            "ridge": self.ridge,
            "examples": self.examples,
            "training": {
                "windows": list(self.training_windows),
                "split": self.training_split,
                "command": self.command,
            },
        }

    @classmethod
    def from_json(cls, doc: object) -> LearnedModel:
        if not isinstance(doc, dict):
            raise ValueError("learned model: need a JSON object")
        keys = {
            "format",
            "bin_s",
            "bins",
            "horizon_s",
            "weights",
            "headroom",
            "quantile",
            "ridge",
            "examples",
            "training",
        }
        if set(doc) != keys:
            raise ValueError(
                f"learned model: need exactly the keys {sorted(keys)}, got {sorted(map(str, doc))}"
            )
        if doc["format"] != 1:
            raise ValueError(f"format: only 1 is known, got {doc['format']!r}")
        training = doc["training"]
        if not isinstance(training, dict) or set(training) != {"windows", "split", "command"}:
            raise ValueError("training: need an object with windows, split and command")
        weights, windows = doc["weights"], training["windows"]
        if not isinstance(weights, list) or len(weights) > 62:
            raise ValueError("weights: need a list of at most 62 numbers")
        if not isinstance(windows, list) or not isinstance(training["split"], str):
            raise ValueError("training.windows: need a list; training.split: a string")
        if not isinstance(training["command"], str):
            raise ValueError("training.command: need a string")
        return cls(
            bin_s=_integer("bin_s", doc["bin_s"]),
            bins=_integer("bins", doc["bins"]),
            horizon_s=_integer("horizon_s", doc["horizon_s"]),
            weights=tuple(_number("weights", w) for w in weights),
            headroom=_number("headroom", doc["headroom"]),
            quantile=_number("quantile", doc["quantile"]),
            ridge=_number("ridge", doc["ridge"]),
            examples=_integer("examples", doc["examples"]),
            training_windows=tuple(windows),
            training_split=training["split"],
            command=training["command"],
        )


def _number(field: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{field}: need a finite number, got {value!r}")
    return float(value)


def _integer(field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{field}: need an integer, got {value!r}")
    return value


def _bounded(field: str, value: float, low: float, high: float) -> None:
    if not (math.isfinite(value) and low <= value <= high):
        raise ValueError(f"{field}: need a number in [{low:g}, {high:g}], got {value!r}")


def load_learned_model(path: Path = LEARNED_MODEL_PATH) -> LearnedModel:
    """The model file, refused (ValueError naming the field) unless small, finite and bounded."""
    with path.open("rb") as f:
        raw = f.read(MAX_MODEL_BYTES + 1)
    if len(raw) > MAX_MODEL_BYTES:
        raise ValueError(f"{path}: over {MAX_MODEL_BYTES} bytes")
    try:
        doc = json.loads(raw, parse_constant=_refuse_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not JSON: {e}") from e
    return LearnedModel.from_json(doc)


def _refuse_constant(name: str) -> float:
    raise ValueError(f"learned model: {name} is not a finite number")


def learned_features(
    history: Sequence[RateSample], now_s: float, bin_s: int, bins: int
) -> tuple[float, list[float]]:
    """(scale, features) of the samples in the last bin_s x bins seconds: scale is their mean
    rate; features are 1, each bin's mean rate newest first, and the peak rate, all divided by
    the scale (so that one model serves every load level). An empty bin takes the nearest newer
    bin's mean (the oldest ones when the history is shorter than the span); scale 0 when no
    usable sample (then every feature is 0)."""
    sums, counts = [0.0] * bins, [0] * bins
    peak, total, n = 0.0, 0.0, 0
    for t, rate in history:
        age_s = now_s - t
        if not (math.isfinite(rate) and 0 <= age_s < bin_s * bins):
            continue
        rate = min(max(rate, 0.0), MAX_RATE_RPS)
        i = int(age_s // bin_s)
        sums[i] += rate
        counts[i] += 1
        peak, total, n = max(peak, rate), total + rate, n + 1
    if n == 0 or total <= 0:
        return 0.0, [0.0] * (bins + 2)
    scale = total / n
    means: list[float | None] = [s / c if c else None for s, c in zip(sums, counts, strict=True)]
    newest = next(m for m in means if m is not None)
    filled: list[float] = []
    for m in means:
        filled.append(m if m is not None else (filled[-1] if filled else newest))
    return scale, [1.0, *(m / scale for m in filled), peak / scale]


class LearnedPredictor:
    """The learned model's prediction of the peak rate over its horizon: scale x max(0, weights .
    features) x the headroom calibrated on the training windows (a quantile of actual over
    predicted), so it replaces the CLI's headroom. Its horizon is the one it was trained for."""

    def __init__(self, model: LearnedModel) -> None:
        self.model = model

    def predict_rps(self, history: Sequence[RateSample], now_s: float) -> float:
        m = self.model
        scale, x = learned_features(history, now_s, m.bin_s, m.bins)
        ratio = max(0.0, sum(w * f for w, f in zip(m.weights, x, strict=True)))
        return scale * ratio * m.headroom


def make_predictor(
    name: str, window_s: float = 120.0, headroom: float = 1.1, horizon_s: float = 20.0
) -> LoadPredictor:
    """A predictor by its CLI name ("max", "holt" or "learned"), looking `horizon_s` ahead (the
    default: `adapter run`'s 10-s interval plus a ~10-s rollout); "learned" reads its shipped
    model and keeps the headroom and horizon it was trained with."""
    if name == "learned":
        return LearnedPredictor(load_learned_model())
    if name == "max":
        return MaxWindowPredictor(window_s=window_s, headroom=headroom, horizon_s=horizon_s)
    if name == "holt":
        return HoltPredictor(horizon_s=horizon_s, headroom=headroom)
    raise ValueError(f"unknown predictor {name!r}; choose one of {', '.join(PREDICTOR_NAMES)}")
