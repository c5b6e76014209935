"""The plain linear baseline: fitted on the train part only, on the models' encoded features,
answering in the task's units (forecasts back from the training scale); none for text."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.dataset import Split, TrainingSet
from training.linear_baseline import fit_linear, linear_scores
from training.tasks import get_task

ROWS = 600


def _set(task_name: str, frame: pd.DataFrame, features: list[str], categorical: list[str]):
    """A training set split 60/20/20 in row order (the rows stand for time order)."""
    cut = [int(ROWS * 0.6), int(ROWS * 0.8)]
    split = Split(np.arange(cut[0]), np.arange(cut[0], cut[1]), np.arange(cut[1], ROWS))
    return TrainingSet(get_task(task_name), frame, features, categorical, split, "fp", {})


def _posts(seed: int = 0) -> pd.DataFrame:
    """Posts whose outcome is linear in two numbers and a post type, with gaps in one number."""
    rng = np.random.default_rng(seed)
    reach, hour = rng.lognormal(6, 1, ROWS), rng.integers(0, 24, ROWS).astype(float)
    kind = rng.choice(["photo", "video", "link"], ROWS)
    effect = pd.Series(kind).map({"photo": 0.0, "video": 1.0, "link": -1.0}).to_numpy()
    signal = 0.5 * np.log(reach) - 0.05 * hour + effect
    hour[rng.random(ROWS) < 0.1] = np.nan  # missing values are imputed, not fatal
    return pd.DataFrame(
        {
            "log_reach": np.log(reach),
            "hour": hour,
            "post_type": kind,
            "engagement_rate_28d": rng.uniform(0, 0.1, ROWS),
            "signal": signal,
            "noise": rng.normal(0, 0.2, ROWS),
        }
    )


FEATURES, CATEGORICAL = ["log_reach", "hour", "post_type"], ["post_type"]


def test_ridge_fits_the_train_part_only_and_beats_the_naive_answer():
    frame = _posts()
    frame["target"] = frame.signal + frame.noise
    ts = _set("engagement", frame, FEATURES, CATEGORICAL)

    linear = fit_linear(ts)
    assert linear is not None and linear.name == "ridge"
    scores = linear_scores(ts)
    assert scores["r2"] > 0.85  # the signal is linear in the encoded features
    before = linear.predict(ts.part("test"))

    scrambled = frame.copy()  # test and validation targets changed: the fit must not move
    scrambled.loc[int(ROWS * 0.6) :, "target"] = 100.0
    again = fit_linear(_set("engagement", scrambled, FEATURES, CATEGORICAL))
    assert again is not None
    np.testing.assert_allclose(again.predict(ts.part("test")), before)


def test_logistic_gives_probabilities_and_a_threshold_from_validation():
    frame = _posts(1)
    frame["target"] = (frame.signal + frame.noise > np.median(frame.signal)).astype(int)
    ts = _set("virality", frame, FEATURES, CATEGORICAL)

    linear = fit_linear(ts)
    assert linear is not None and linear.name == "logistic"
    scores = linear_scores(ts)
    assert scores["roc_auc"] > 0.9 and 0 < scores["threshold"] < 1
    probabilities = linear.predict(ts.part("test"))
    assert probabilities.min() >= 0 and probabilities.max() <= 1


def test_a_single_class_has_no_logistic_baseline():
    frame = _posts(2)
    frame["target"] = 0
    assert fit_linear(_set("virality", frame, FEATURES, CATEGORICAL)) is None


def test_forecasts_are_fitted_on_the_training_scale_and_answered_in_usage():
    rng = np.random.default_rng(3)
    level = rng.lognormal(3, 2, ROWS)  # hashtags whose volumes differ by orders of magnitude
    horizon = rng.choice([7, 30], ROWS)
    frame = pd.DataFrame(
        {
            "same_dow_mean_4w": level,
            "horizon": horizon.astype(float),
            "seasonal_naive": level * rng.lognormal(0, 0.5, ROWS),
        }
    )
    frame["target"] = np.expm1(np.log1p(level) + 0.01 * horizon + rng.normal(0, 0.05, ROWS))
    ts = _set("trend", frame, ["horizon", "same_dow_mean_4w"], [])

    linear = fit_linear(ts)
    assert linear is not None and linear.name == "ridge"
    test = ts.part("test")
    ratio = linear.predict(test) / test.target.to_numpy()
    assert np.median(np.abs(np.log(ratio))) < 0.1  # in usage units, at every level
    assert linear_scores(ts)["mase"] < 1  # beats seasonal naive on these rows


def test_text_tasks_have_no_linear_baseline():
    frame = pd.DataFrame({"text": ["a"] * ROWS, "target": ["food"] * ROWS})
    ts = _set("content", frame, ["text"], [])
    assert fit_linear(ts) is None and linear_scores(ts) == {}


@pytest.mark.parametrize("task_name", ["engagement", "virality"])
def test_report_names_the_plain_model(task_name):
    frame = _posts(4)
    frame["target"] = (frame.signal > np.median(frame.signal)).astype(int)
    linear = fit_linear(_set(task_name, frame, FEATURES, CATEGORICAL))
    assert linear is not None
    model = "Ridge" if task_name == "engagement" else "LogisticRegression"
    assert linear.definition.startswith(f"scikit-learn {model} (default regularisation)")
