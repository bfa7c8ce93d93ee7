"""Load predictors on synthetic rate series."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapter.predict import (
    LEARNED_MODEL_PATH,
    HoltPredictor,
    LearnedPredictor,
    MaxWindowPredictor,
    load_learned_model,
    make_predictor,
)

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
    assert isinstance(make_predictor("learned"), LearnedPredictor)
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


def test_the_shipped_model_is_what_the_training_script_makes_from_the_tune_windows() -> None:
    from adapter.sim.learned import train
    from adapter.sim.report import split_windows
    from adapter.sim.trace import evaluation_windows

    windows = evaluation_windows()
    tune, test = split_windows(windows)
    shipped = load_learned_model()
    assert shipped.training_split == "tune" and sorted(shipped.training_windows) == sorted(tune)
    assert not set(shipped.training_windows) & set(test)
    assert (Path(__file__).resolve().parents[2] / shipped.command.split()[-1]).is_file()
    # Deterministic, and blind to the test windows: the committed tune windows, with every test
    # window blanked, give the committed weights (to the file's rounding).
    blanked = {n: (split, [0] * len(c) if split == "test" else c) for n, (split, c) in windows.items()}
    fitted = train(blanked).to_json()
    committed = json.loads(LEARNED_MODEL_PATH.read_text(encoding="utf-8"))
    assert fitted == {
        k: pytest.approx(v, rel=1e-6, abs=1e-9) if k in ("weights", "headroom") else v
        for k, v in committed.items()
    }


def test_learned_follows_the_load_level_and_a_rise() -> None:
    learned = make_predictor("learned")
    steady = [(float(t), 10.0) for t in range(881, 1001)]
    rising = [(float(t), 10.0 + max(0, t - 960)) for t in range(881, 1001)]  # 10 -> 50 req/s in 40 s
    level = learned.predict_rps(steady, 1000.0)
    assert 8.0 < level < 15.0  # about the level, with its calibrated headroom
    assert learned.predict_rps(rising, 1000.0) > 40.0
    assert learned.predict_rps([(float(t), 100.0) for t in range(881, 1001)], 1000.0) == pytest.approx(
        10 * level
    )
    assert learned.predict_rps([], 1000.0) == 0.0


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=0, max_size=150))
@settings(max_examples=60, deadline=None)
def test_learned_never_predicts_negative_or_nan(values: list[float]) -> None:
    predicted = make_predictor("learned").predict_rps(series(values, step_s=1.0), 1000.0)
    assert math.isfinite(predicted) and predicted >= 0.0


def _shipped() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(LEARNED_MODEL_PATH.read_text(encoding="utf-8"))
    return doc


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d["weights"].append(1.0), "weights"),
        (lambda d: d["weights"].__setitem__(0, 1e9), "weights"),
        (lambda d: d.__setitem__("headroom", "1.1"), "headroom"),
        (lambda d: d.__setitem__("bins", 10**9), "bins"),
        (lambda d: d.__setitem__("extra", 1), "keys"),
        (lambda d: d["training"].__setitem__("split", "test"), "training.split"),
        (lambda d: d["training"].__setitem__("windows", []), "training.windows"),
        (lambda d: d.__setitem__("format", 2), "format"),
    ],
)
def test_a_hostile_model_file_is_refused_naming_the_field(tmp_path: Path, change: Any, field: str) -> None:
    doc = _shipped()
    change(doc)
    path = tmp_path / "learned.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(ValueError, match=field):
        load_learned_model(path)


def test_a_non_finite_or_oversized_model_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "learned.json"
    path.write_text(
        json.dumps(_shipped()).replace('"headroom": 1', '"headroom": NaN, "x": 1'), encoding="utf-8"
    )
    with pytest.raises(ValueError, match="NaN is not a finite number"):
        load_learned_model(path)
    path.write_text(" " * 70_000 + json.dumps(_shipped()), encoding="utf-8")
    with pytest.raises(ValueError, match="over 65536 bytes"):
        load_learned_model(path)
