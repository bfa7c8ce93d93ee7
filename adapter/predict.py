"""Load predictors: the arrival rate to provision for over the next adaptation interval.

`MaxWindowPredictor` is IPA's own fallback (the maximum of the last 2 minutes), with a headroom
factor. It is the default because under-provisioning costs dropped and late requests while
over-provisioning costs a few watts, and because it cannot be fooled by a spike into predicting
a fall: a burst raises it at once and it falls only when the burst has left the window.
`HoltPredictor` (exponential smoothing with a trend) follows ramps sooner but extrapolates
noise, so on bursty traces it both over- and under-shoots.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence

from adapter.loop import LoadPredictor, RateSample

PREDICTOR_NAMES = ("max", "holt")


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


def make_predictor(
    name: str, window_s: float = 120.0, headroom: float = 1.1, horizon_s: float = 20.0
) -> LoadPredictor:
    """A predictor by its CLI name ("max" or "holt"), looking `horizon_s` ahead (the default:
    `adapter run`'s 10-s interval plus a ~10-s rollout)."""
    if name == "max":
        return MaxWindowPredictor(window_s=window_s, headroom=headroom, horizon_s=horizon_s)
    if name == "holt":
        return HoltPredictor(horizon_s=horizon_s, headroom=headroom)
    raise ValueError(f"unknown predictor {name!r}; choose one of {', '.join(PREDICTOR_NAMES)}")
