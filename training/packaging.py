"""The logged model: encoder + estimator + output transform behind one MLflow pyfunc.

Serving loads `models:/<task>@champion` and gets scores in the task's own units: an
engagement rate, a virality or churn probability, a usage count for trend.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from training.families.base import FeatureEncoder, input_frame

__all__ = ["FeatureEncoder", "SmapModel", "input_frame"]


class SmapModel(PythonModel):
    def __init__(
        self,
        encoder: FeatureEncoder,
        fitted,
        kind: str,
        features: list[str],
        threshold: float | None = None,
    ):
        self.encoder, self.fitted, self.kind = encoder, fitted, kind
        self.features, self.threshold = features, threshold
        # forecasts: {horizon: (low, high)} quantiles of validation log residuals (see
        # `forecast_intervals`); models pickled before intervals existed have none (read
        # through getattr)
        self.intervals: dict[int, tuple[float, float]] = {}
        self.interval_level: float | None = None

    def bounds(self, pred: np.ndarray, horizon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper prediction bounds of forecasts (NaN when the model has none)."""
        return interval_bounds(getattr(self, "intervals", None) or {}, pred, horizon)

    def predict_frame(self, frame: pd.DataFrame) -> np.ndarray:
        missing = [c for c in self.features if c not in frame.columns]
        if missing:
            raise ValueError(f"model input is missing feature(s): {', '.join(missing)}")
        raw = self.fitted.predict(self.encoder.transform(frame[self.features]))
        return from_training_scale(self.kind, raw, frame)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:
        return self.predict_frame(model_input)


# the smap code a pickled SmapModel imports: this module and the families' package (the
# encoder and the fitted wrappers), which imports no other smap module
MODEL_MODULES = ("__init__.py", "packaging.py")
MODEL_PACKAGES = ("families",)


def model_code(folder: Path) -> list[str]:
    """A copy of the `training` modules the model unpickles with, as a package under `folder`:
    logged as the model's `code_paths`, so `models:/...` loads wherever MLflow runs (another
    folder, `mlflow models serve`, a machine without smap), not only inside this checkout."""
    package = folder / "training"
    package.mkdir(parents=True, exist_ok=True)
    here = Path(__file__).parent
    for name in MODEL_MODULES:
        shutil.copy2(here / name, package / name)
    for name in MODEL_PACKAGES:
        shutil.copytree(here / name, package / name, ignore=shutil.ignore_patterns("__pycache__"))
    return [str(package)]


FORECAST_BASE = "same_dow_mean_4w"


def training_target(kind: str, frame: pd.DataFrame) -> np.ndarray:
    """What the estimator is fitted on. Forecasts learn log1p usage relative to the recent
    same-weekday level, so one model serves hashtags whose volumes differ by orders of
    magnitude and levels it has not seen in training."""
    values = frame.target.to_numpy(dtype=float)
    if kind != "forecast":
        return values
    return np.log1p(values) - np.log1p(frame[FORECAST_BASE].to_numpy(dtype=float))


def from_training_scale(kind: str, raw: np.ndarray, frame: pd.DataFrame) -> np.ndarray:
    """Inverse of `training_target`: predictions in the task's own units."""
    if kind != "forecast":
        return np.asarray(raw, dtype=float)
    level = np.log1p(frame[FORECAST_BASE].to_numpy(dtype=float))
    return np.clip(np.expm1(raw + level), 0, None)


INTERVAL_LEVEL = 0.9  # central coverage of a forecast's prediction interval


def forecast_intervals(
    y: np.ndarray, pred: np.ndarray, horizon: np.ndarray, level: float = INTERVAL_LEVEL
) -> dict[int, tuple[float, float]]:
    """Per horizon, the (1-level)/2 and (1+level)/2 empirical quantiles of the log1p residuals
    log1p(y) - log1p(pred) on held-out rows (split-conformal style, on the scale the model is
    fitted on, so an interval widens with the level), widened to contain 0 so the point
    forecast always lies inside."""
    y, pred, horizon = map(np.asarray, (y, pred, horizon))
    residual = np.log1p(y.astype(float)) - np.log1p(pred.astype(float))
    out = {}
    for h in np.unique(horizon):
        r = residual[horizon == h]
        low, high = np.quantile(r, [(1 - level) / 2, (1 + level) / 2])
        out[int(h)] = (min(float(low), 0.0), max(float(high), 0.0))
    return out


def interval_bounds(
    intervals: dict[int, tuple[float, float]], pred: np.ndarray, horizon: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Bounds around `pred` from `forecast_intervals`: a horizon without its own quantiles
    takes the nearest calibrated horizon above it (wider), else the longest one."""
    pred = np.asarray(pred, dtype=float)
    if not intervals:
        return np.full(pred.shape, np.nan), np.full(pred.shape, np.nan)
    known = np.array(sorted(intervals))
    at = np.searchsorted(known, np.asarray(horizon, dtype=float), side="left")
    chosen = known[np.minimum(at, len(known) - 1)]
    low = np.array([intervals[int(h)][0] for h in chosen])
    high = np.array([intervals[int(h)][1] for h in chosen])
    level = np.log1p(np.clip(pred, 0, None))
    lower = np.clip(np.minimum(np.expm1(level + low), pred), 0, None)
    return lower, np.maximum(np.expm1(level + high), pred)
