"""What every model family shares: the encoded data it fits, the loss it reports, the fitted
predictor it returns, and the `Family` record the registry holds.

A family's `fit` calls `report(step, loss)` after every boosting round, tree batch or epoch;
the search turns that into Optuna pruning. Every family reports the same loss
(`validation_loss`: MSE or log loss on the validation part), so trials of different families
compare at the pruner. Fitted predictors share one interface,
`predict(X: np.ndarray) -> np.ndarray` (scores for classifiers, values otherwise).

This package is logged with every model (`training.packaging.model_code`): it imports only
numpy, pandas and the libraries a family fits with, never another smap module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

Report = Callable[[int, float], None]


@dataclass
class FeatureEncoder:
    """Raw feature frame -> float matrix: one-hot categoricals, optional impute + scale."""

    numeric: list[str]
    categories: dict[str, list[str]]
    scale: bool = False
    medians: np.ndarray | None = None
    means: np.ndarray | None = None
    stds: np.ndarray | None = None
    names: list[str] = field(default_factory=list)

    @classmethod
    def fit(cls, frame: pd.DataFrame, features: list[str], categorical: list[str], scale: bool):
        numeric = [c for c in features if c not in categorical]
        cats = {c: sorted(frame[c].dropna().astype(str).unique().tolist()) for c in categorical}
        enc = cls(numeric, cats, scale)
        raw = enc._raw(frame)
        if scale:
            enc.medians = np.nan_to_num(np.nanmedian(raw, axis=0))
            filled = np.where(np.isnan(raw), enc.medians, raw)
            enc.means, enc.stds = filled.mean(axis=0), filled.std(axis=0) + 1e-9
        return enc

    def _raw(self, frame: pd.DataFrame) -> np.ndarray:
        parts = [frame[self.numeric].astype(float).to_numpy()]
        names = list(self.numeric)
        for col, values in self.categories.items():
            col_values = frame[col].astype(str).to_numpy()
            parts.append(
                np.stack([col_values == v for v in values], axis=1).astype(float)
                if values
                else np.zeros((len(frame), 0))
            )
            names += [f"{col}={v}" for v in values]
        self.names = names
        return np.concatenate(parts, axis=1)

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        raw = self._raw(frame)
        if not self.scale:
            return raw
        assert self.medians is not None and self.means is not None and self.stds is not None
        filled = np.where(np.isnan(raw), self.medians, raw)
        return (filled - self.means) / self.stds


def input_frame(frame: pd.DataFrame, features: list[str], categorical: list[str]) -> pd.DataFrame:
    """Model input with stable dtypes: float for numbers, str for categories (signature-safe)."""
    out = frame[features].copy()
    for col in features:
        out[col] = out[col].astype(str) if col in categorical else out[col].astype(float)
    return out


@dataclass(frozen=True)
class Data:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    kind: str  # regression | classification: what the estimator fits (forecasts regress)
    seed: int
    sequence: tuple[int, ...] = ()  # columns holding a time-ordered history, oldest first

    @property
    def classify(self) -> bool:
        return self.kind == "classification"


def validation_loss(kind: str, y: np.ndarray, pred: np.ndarray) -> float:
    """The loss every family reports to the pruner: mean squared error, or log loss."""
    if kind == "classification":
        p = np.clip(pred, 1e-7, 1 - 1e-7)
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    return float(np.mean((y - pred) ** 2))


# a booster's own validation metric, put on the common loss, so a median over trials of
# several families compares like with like (XGBoost has RMSE but no MSE metric)
_AS_COMMON_LOSS: dict[str, Callable[[float], float]] = {
    "rmse": lambda v: v * v,
    "l2": lambda v: v,
    "logloss": lambda v: v,
    "binary_logloss": lambda v: v,
}


def common_loss(metric: str, value: float) -> float:
    """`value` of a booster's metric `metric` as the loss of `validation_loss`."""
    return _AS_COMMON_LOSS[metric](float(value))


class Fitted:
    """A trained scikit-learn-style estimator behind one `predict` returning scores or values.

    Families whose estimators predict differently subclass it and override `predict`."""

    def __init__(self, estimator: Any, kind: str, family: str):
        self.estimator, self.kind, self.family = estimator, kind, family

    def predict(self, x: np.ndarray) -> np.ndarray:
        if self.kind == "classification":
            return self.estimator.predict_proba(x)[:, 1]
        return self.estimator.predict(x)

    def importances(self, n_features: int) -> np.ndarray | None:
        est = self.estimator
        if hasattr(est, "feature_importances_"):
            return np.asarray(est.feature_importances_, dtype=float)
        if hasattr(est, "coef_"):
            return np.abs(np.ravel(est.coef_))[:n_features]
        return None


Suggest = Callable[[Any, str], dict[str, Any]]  # (optuna trial, parameter prefix) -> params
Fit = Callable[[dict, Data, Report], Fitted]


@dataclass(frozen=True)
class Family:
    """One model family: its search space, its fit, and what a logged model needs to load.

        `suggest(trial, prefix)` makes every `suggest_*` call of the family, each name starting
        with `prefix` (`"<family>."`), so hyperparameters of one family are shared by all the
        family sets a study sees. `scaled` families get imputed, standardised inputs; the others
        get NaN where a feature is missing. A family with `engines` is offered only on profiles that
    have them (`training/engines.py`)."""

    name: str
    suggest: Suggest
    fit: Fit
    requirements: tuple[str, ...] = ()  # pip names beyond numpy, pandas, scikit-learn, mlflow
    scaled: bool = False
    needs_sequence: bool = False  # fits only on data with a history sequence (trend)
    engines: tuple[str, ...] = ()  # engines beyond this process it fits on (`spark`)
    at_scale: str | None = None  # the family that replaces it on a large training set
