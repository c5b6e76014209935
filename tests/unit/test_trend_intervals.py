"""Forecast intervals and the rows of a hashtag forecast, without a store or a model."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from serving.features import EPOCH, ForecastPlan, StartPassed
from training.packaging import SmapModel, forecast_intervals, interval_bounds


def test_intervals_cover_their_level_and_hold_the_forecast():
    rng = np.random.default_rng(0)
    pred = rng.uniform(0, 20, 4000)
    horizon = np.repeat([1, 7], 2000)
    y = np.expm1(np.log1p(pred) + rng.normal(0, np.where(horizon == 1, 0.2, 0.6)))
    intervals = forecast_intervals(y, pred, horizon, level=0.9)
    assert intervals[1][0] < 0 < intervals[1][1]
    assert intervals[7][1] - intervals[7][0] > intervals[1][1] - intervals[1][0]
    lower, upper = interval_bounds(intervals, pred, horizon)
    assert np.all((lower <= pred) & (pred <= upper)) and np.all(lower >= 0)
    assert np.mean((y >= lower) & (y <= upper)) == pytest.approx(0.9, abs=0.01)
    # a horizon between calibrated ones takes the next longer (wider) one's quantiles
    mid = interval_bounds(intervals, np.array([5.0]), np.array([3]))
    assert mid == interval_bounds(intervals, np.array([5.0]), np.array([7]))


def test_a_model_pickled_before_intervals_has_null_bounds():
    old = SmapModel.__new__(SmapModel)  # what unpickling an older model gives: no attribute
    lower, upper = interval_bounds(getattr(old, "intervals", None) or {}, np.ones(2), [1, 2])
    assert np.isnan(lower).all() and np.isnan(upper).all()


def test_forecast_rows_start_after_the_stored_history():
    day = (date(2026, 6, 1) - EPOCH).days  # usage known up to 2026-06-01
    plan = ForecastPlan(["a", "b"], 3, None, date(2026, 11, 28))
    index, request = plan({"usage_day": [day, None]})
    assert index == [0, 0, 0, 1, 1, 1]
    assert request["horizon"] == [1, 2, 3, 1, 2, 3]
    assert plan.days[:3] == [date(2026, 6, 2), date(2026, 6, 3), date(2026, 6, 4)]
    assert plan.days[3] == date(2026, 11, 28)  # no history: from today, origin the day before
    assert request["origin_day"] == [day] * 3 + [(date(2026, 11, 27) - EPOCH).days] * 3
    later = ForecastPlan(["a"], 2, date(2026, 6, 5), date(2026, 11, 28))
    assert later({"usage_day": [day]})[1]["horizon"] == [4, 5]
    with pytest.raises(StartPassed, match="start"):
        ForecastPlan(["a"], 2, date(2026, 6, 1), date(2026, 11, 28))({"usage_day": [day]})
