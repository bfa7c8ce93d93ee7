"""Load predictors on synthetic rate series."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapter.predict import HoltPredictor, MaxWindowPredictor, make_predictor

rates = st.lists(st.floats(min_value=0, max_value=1e4, allow_nan=False), min_size=1, max_size=40)


def series(values: list[float], end_s: float = 1000.0, step_s: float = 10.0) -> list[tuple[float, float]]:
    return [(end_s - step_s * (len(values) - 1 - i), v) for i, v in enumerate(values)]


def test_max_window_is_the_recent_maximum_with_headroom() -> None:
    history = series([5.0, 40.0, 7.0, 12.0, 9.0], step_s=30.0)  # at 880, 910, 940, 970, 1000 s
    assert MaxWindowPredictor(window_s=120, headroom=1.0).predict_rps(history, 1000.0) == 40.0
    assert MaxWindowPredictor(window_s=120, headroom=1.25).predict_rps(history, 1000.0) == 50.0
    # The burst at 910 s leaves a 60 s window; samples after now_s are not looked at.
    assert MaxWindowPredictor(window_s=60, headroom=1.0).predict_rps(history, 1000.0) == 12.0
    assert MaxWindowPredictor(window_s=60, headroom=1.0).predict_rps(history, 940.0) == 40.0


def test_no_history_predicts_no_load() -> None:
    assert MaxWindowPredictor().predict_rps([], 0.0) == 0.0
    assert HoltPredictor().predict_rps([], 0.0) == 0.0


@settings(max_examples=100, deadline=None)
@given(rates, st.floats(min_value=1.0, max_value=3.0))
def test_max_window_never_provisions_below_what_it_saw(values: list[float], headroom: float) -> None:
    predicted = MaxWindowPredictor(window_s=1e6, headroom=headroom).predict_rps(series(values), 1000.0)
    assert predicted >= max(values)
    assert predicted == pytest.approx(max(values) * headroom)


def test_holt_extrapolates_a_ramp() -> None:
    # rate = 2 t / 10 s per step: after smoothing an exact line, level and trend are exact.
    history = series([2.0 * i for i in range(12)], end_s=110.0)
    predicted = HoltPredictor(level_alpha=0.5, trend_beta=0.3, horizon_s=20.0).predict_rps(history, 110.0)
    assert predicted == pytest.approx(22.0 + 2 * 2.0)


def test_holt_is_flat_on_a_constant_and_never_negative() -> None:
    assert HoltPredictor().predict_rps(series([7.0] * 10), 1000.0) == pytest.approx(7.0)
    falling = series([100.0 - 10.0 * i for i in range(11)])  # to 0, falling 10 per step
    assert HoltPredictor(horizon_s=60.0).predict_rps(falling, 1000.0) == 0.0


@settings(max_examples=100, deadline=None)
@given(rates)
def test_holt_stays_finite_and_non_negative(values: list[float]) -> None:
    predicted = HoltPredictor().predict_rps(series(values), 1000.0)
    assert 0.0 <= predicted < float("inf")


def test_holt_lags_a_burst_that_max_window_catches() -> None:
    # Why max is the default: one 10 s burst among steady samples.
    history = series([10.0] * 10 + [60.0] + [10.0])
    assert MaxWindowPredictor(headroom=1.0).predict_rps(history, 1000.0) == 60.0
    assert HoltPredictor().predict_rps(history, 1000.0) < 60.0


def test_make_predictor_by_name() -> None:
    assert isinstance(make_predictor("max"), MaxWindowPredictor)
    assert isinstance(make_predictor("holt"), HoltPredictor)
    with pytest.raises(ValueError, match="unknown predictor 'lstm'"):
        make_predictor("lstm")
    with pytest.raises(ValueError, match="headroom"):
        MaxWindowPredictor(headroom=0.5)


def test_max_window_carries_a_rising_trend_over_the_horizon() -> None:
    ramp = [(float(t), 5.0 + t) for t in range(0, 11)]  # 5 -> 15 req/s over 10 s, 1 req/s per s
    flat = [(float(t), 10.0 + (t % 2)) for t in range(0, 31)]
    ahead = MaxWindowPredictor(headroom=1.0, horizon_s=25.0, trend_window_s=30.0)
    assert ahead.predict_rps(ramp, 10.0) == pytest.approx(15.0 + 25.0)  # where the ramp will be
    assert MaxWindowPredictor(headroom=1.0).predict_rps(ramp, 10.0) == pytest.approx(15.0)
    # Noise around a level and a falling load extrapolate nothing: the window's maximum stands.
    assert ahead.predict_rps(flat, 30.0) == pytest.approx(11.0, abs=0.2)
    assert ahead.predict_rps([(t, 20.0 - t) for t, _ in ramp], 10.0) == pytest.approx(20.0)
    with pytest.raises(ValueError, match="horizon_s"):
        MaxWindowPredictor(horizon_s=-1.0)
