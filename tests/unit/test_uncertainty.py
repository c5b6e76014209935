"""Prediction intervals and calibrated probabilities: the conformal quantile, ECE, the choice
of calibrator, and the logged model's interval (old pickles without one included)."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from analytics.report import median_band
from serving.schemas import EngagementResponse, PostingTimeResponse
from training.families import FeatureEncoder
from training.families.base import Fitted
from training.metrics import expected_calibration_error, interval_report
from training.packaging import (
    PLATT_BELOW_POSITIVES,
    ConformalInterval,
    SmapModel,
    choose_calibration,
    conformal_quantile,
    fit_calibrator,
)


def _regression_model() -> SmapModel:
    frame = pd.DataFrame({"x": np.linspace(0, 1, 20)})
    encoder = FeatureEncoder.fit(frame, ["x"], [], scale=False)
    estimator = LinearRegression().fit(encoder.transform(frame), frame.x * 0.1)
    return SmapModel(encoder, Fitted(estimator, "regression", "ridge"), "regression", ["x"])


def test_conformal_quantile_takes_the_finite_sample_rank():
    # n = 9 residuals 1..9: rank ceil(10 * 0.9) = 9, the largest; n = 19: rank 18
    assert conformal_quantile(np.arange(1, 10), 0.9) == 9.0
    assert conformal_quantile(-np.arange(1.0, 20.0), 0.9) == 18.0
    # too few rows to promise 90% (ceil(5 * 0.9) = 5 > 4): an infinite interval
    assert conformal_quantile(np.ones(4), 0.9) == np.inf


def test_conformal_interval_covers_its_level_on_exchangeable_rows():
    rng = np.random.default_rng(3)
    calibration, test = rng.normal(size=2000), rng.normal(size=20000)
    half = conformal_quantile(calibration, 0.9)
    report = interval_report(test, np.full(test.shape, -half), np.full(test.shape, half))
    assert 0.88 <= report["interval_coverage"] <= 0.92
    assert report["interval_width"] == pytest.approx(2 * half)


def test_expected_calibration_error_is_the_weighted_gap_per_bin():
    # bin 0.1-0.2 states 0.15 where half come true (gap 0.35); bin 0.9-1 states 0.95, all
    # true (gap 0.05): equal weights -> 0.2
    y = np.array([0, 1, 0, 1, 1, 1, 1, 1])
    prob = np.array([0.15] * 4 + [0.95] * 4)
    assert expected_calibration_error(y, prob) == pytest.approx(0.2)
    assert expected_calibration_error(np.array([0, 1]), np.array([0.0, 1.0])) == 0.0


def test_calibration_uses_platt_when_positives_are_few():
    rng = np.random.default_rng(0)
    y = (rng.random(5000) < (PLATT_BELOW_POSITIVES - 50) / 5000).astype(int)
    assert choose_calibration(y, rng.random(5000)) == "sigmoid"


def test_calibration_picks_isotonic_for_a_non_monotone_logit_distortion():
    # true probability is a step of the score: no logistic curve of the logit follows it,
    # isotonic does, and cross-validated Brier sees it
    rng = np.random.default_rng(1)
    score = rng.random(20000)
    truth = np.where(score < 0.5, 0.1, 0.6)
    y = (rng.random(20000) < truth).astype(int)
    assert choose_calibration(y, score) == "isotonic"


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_calibrator_fixes_overconfident_scores_and_keeps_their_order(method):
    rng = np.random.default_rng(2)
    truth = rng.uniform(0.05, 0.6, 20000)
    y = (rng.random(20000) < truth).astype(int)
    overconfident = np.clip(truth * 1.6, 0, 1)  # states 1.6x the real rate
    calibrator = fit_calibrator(method, y[:10000], overconfident[:10000])
    calibrated = calibrator(overconfident[10000:])
    before = expected_calibration_error(y[10000:], overconfident[10000:])
    after = expected_calibration_error(y[10000:], calibrated)
    assert after < before / 2
    order = np.argsort(overconfident[10000:], kind="stable")
    assert np.all(np.diff(calibrated[order]) >= 0)


def test_interval_widens_with_the_prediction_and_stops_at_zero():
    # validation errors proportional to (pred + median pred): the scaled residuals are all
    # 0.5, so the quantile is 0.5 and every interval is pred -+ 0.5 * (pred + floor)
    pred = np.array([0.01, 0.02, 0.03, 0.04, 0.05] * 4)
    floor = float(np.median(pred))
    conformal = ConformalInterval.fit(pred + 0.5 * (pred + floor), pred, level=0.9)
    assert conformal.quantile == pytest.approx(0.5) and conformal.floor == pytest.approx(0.03)
    model = _regression_model()
    model.conformal = conformal
    low, high = model.interval(np.array([0.0, 0.2]))
    assert low.tolist() == pytest.approx([0.0, 0.2 - 0.5 * 0.23])
    assert high.tolist() == pytest.approx([0.015, 0.2 + 0.5 * 0.23])


def test_scaled_interval_covers_each_level_of_a_heteroscedastic_target():
    rng = np.random.default_rng(5)
    pred = rng.uniform(0.01, 0.2, 40000)
    noise = 0.3 * (pred + 0.1) * rng.normal(size=40000)  # errors grow with the rate
    y = np.clip(pred + noise, 0, None)  # a rate
    conformal = ConformalInterval.fit(y[:20000], pred[:20000])
    low, high = conformal.bounds(pred[20000:])
    inside = (y[20000:] >= low) & (y[20000:] <= high)
    highest = pred[20000:] > np.quantile(pred[20000:], 0.8)
    assert 0.88 <= inside.mean() <= 0.92
    assert 0.86 <= inside[highest].mean() <= 0.94


def test_model_pickled_before_uncertainty_loads_without_interval_or_calibrator():
    model = _regression_model()
    state = dict(model.__dict__)
    for added in ("conformal", "calibrator"):
        del state[added]
    old = SmapModel.__new__(SmapModel)
    old.__dict__.update(state)
    loaded = pickle.loads(pickle.dumps(old))
    frame = pd.DataFrame({"x": [0.0, 1.0]})

    low, high = loaded.interval(loaded.predict_frame(frame))
    assert np.isnan(low).all() and np.isnan(high).all()
    assert loaded.predict_frame(frame) == pytest.approx([0.0, 0.1])


def test_calibrated_model_applies_its_calibrator_after_the_raw_score():
    frame = pd.DataFrame({"x": np.linspace(0, 1, 200)})
    encoder = FeatureEncoder.fit(frame, ["x"], [], scale=False)
    y = (frame.x > 0.5).astype(int)
    estimator = LogisticRegression().fit(encoder.transform(frame), y)
    model = SmapModel(encoder, Fitted(estimator, "classification", "logistic"), "classification",
                      ["x"])  # fmt: skip
    raw = model.raw_frame(frame)
    model.calibrator = fit_calibrator("isotonic", y.to_numpy(), raw)
    assert model.predict_frame(frame) == pytest.approx(model.calibrator(raw))
    assert expected_calibration_error(y, model.predict_frame(frame)) < (
        expected_calibration_error(y, raw)
    )


def test_median_band_holds_the_median_and_narrows_with_more_posts():
    rng = np.random.default_rng(4)
    few, many = pd.Series(rng.normal(1, 0.3, 40)), pd.Series(rng.normal(1, 0.3, 4000))
    low_few, high_few = median_band(few)
    low_many, high_many = median_band(many)
    assert low_few <= few.median() <= high_few
    assert low_many <= many.median() <= high_many
    assert high_many - low_many < (high_few - low_few) / 5


def test_answers_document_a_nullable_interval_with_an_example():
    for response in (EngagementResponse, PostingTimeResponse):
        schema = response.model_json_schema(mode="serialization")
        owner = "EngagementPrediction" if response is EngagementResponse else "PostingSlot"
        field = schema["$defs"][owner]["properties"]["interval"]
        assert {"type": "null"} in field["anyOf"]
        example = field["examples"][0]
        assert example["low"] <= example["high"] and example["level"] == 0.9


def test_an_interval_that_cannot_promise_its_level_is_answered_as_null():
    from serving.predictor import intervals

    class Few:
        def interval(self, pred):
            return np.zeros(len(pred)), np.full(len(pred), np.inf), 0.9

    assert intervals(Few(), np.array([0.1, 0.2])) == [None, None]


def test_a_validation_part_of_one_class_leaves_the_scores_uncalibrated():
    from training.dataset import Split, TrainingSet
    from training.tasks import get_task
    from training.trainers import CLASSIFICATION

    churn = get_task("churn")
    frame = pd.DataFrame({"x": np.arange(20.0), "target": [0, 1] * 5 + [0] * 10})
    split = Split(np.arange(10), np.arange(10, 20), np.arange(10, 20))
    ts = TrainingSet(churn, frame, ["x"], [], split, "fp", {})

    class Scores:
        calibrator = None
        threshold = None

        def raw_frame(self, frame):
            return frame.x.to_numpy() / 20

        def predict_frame(self, frame):
            return self.raw_frame(frame)

    model = Scores()
    CLASSIFICATION.calibrate(ts, model)
    assert model.calibrator is None
