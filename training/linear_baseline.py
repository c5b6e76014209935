"""The plain linear baseline: scikit-learn's `Ridge` or `LogisticRegression` with default
regularisation on the same features the models read, fitted on the train part.

A tuned search that cannot beat it on the holdout has found nothing a plain linear model
would not: `smap evaluate` shows it next to the champion, and the gate refuses a challenger
that loses to it. Text and clustering tasks have none (`fit_linear` returns None).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression, Ridge

from training.dataset import TrainingSet
from training.families.base import FeatureEncoder, input_frame
from training.metrics import best_f1_threshold
from training.trainers import Tabular

# what the estimator fits (a trainer's `fit_kind`) -> the plain model's name in reports
LINEAR_NAMES = {"regression": "ridge", "classification": "logistic"}


@dataclass(frozen=True)
class LinearBaseline:
    """A fitted plain linear model with its encoder; answers in the task's own units."""

    name: str  # ridge | logistic
    encoder: FeatureEncoder
    estimator: Ridge | LogisticRegression
    trainer: Tabular
    features: list[str]
    categorical: list[str]
    threshold: float | None = None  # classification: the F1-best threshold on validation

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Values, probabilities, or forecasts in the task's units (like a champion's)."""
        x = self.encoder.transform(input_frame(frame, self.features, self.categorical))
        if isinstance(self.estimator, LogisticRegression):
            return self.estimator.predict_proba(x)[:, 1]
        return self.trainer.from_training_scale(self.estimator.predict(x), frame)

    @property
    def definition(self) -> str:
        """What it is, in words (reports and gate reasons)."""
        model = "Ridge" if self.name == "ridge" else "LogisticRegression"
        return f"scikit-learn {model} (default regularisation) on the same features"


def fit_linear(ts: TrainingSet) -> LinearBaseline | None:
    """The plain linear model fitted on `ts`'s train part; None when the task is not tabular
    or its train part holds a single class (no logistic fit exists)."""
    trainer = ts.task.trainer
    if not isinstance(trainer, Tabular):
        return None
    train = ts.part("train")
    encoder = FeatureEncoder.fit(
        input_frame(train, ts.features, ts.categorical), ts.features, ts.categorical, scale=True
    )
    x = encoder.transform(input_frame(train, ts.features, ts.categorical))
    y = trainer.training_target(train)
    name = LINEAR_NAMES[trainer.fit_kind]
    if name == "ridge":
        return LinearBaseline(
            name, encoder, Ridge().fit(x, y), trainer, ts.features, ts.categorical
        )
    if len(np.unique(y)) < 2:
        return None
    logistic = LogisticRegression(max_iter=1000).fit(x, y.astype(int))
    fitted = LinearBaseline(name, encoder, logistic, trainer, ts.features, ts.categorical)
    val = ts.part("validation")
    if len(val) == 0 or len(np.unique(val.target)) < 2:
        return fitted
    threshold, _ = best_f1_threshold(val.target.to_numpy(), fitted.predict(val))
    return LinearBaseline(name, encoder, logistic, trainer, ts.features, ts.categorical, threshold)


def linear_scores(ts: TrainingSet, frame: pd.DataFrame | None = None) -> dict[str, float]:
    """Every metric of the task for the plain linear model on `frame` (default: the test
    part); empty when the task has no linear baseline."""
    linear = fit_linear(ts)
    if linear is None:
        return {}
    frame = ts.part("test") if frame is None else frame
    return ts.task.trainer.score(ts, frame, linear.predict(frame), linear.threshold)
