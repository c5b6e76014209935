"""The logged model: encoder + estimator + output transform behind one MLflow pyfunc.

Serving loads `models:/<task>@champion` and gets scores in the task's own units: an
engagement rate, a virality or churn probability, a usage count for trend.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from training.families.base import FeatureEncoder, input_frame

__all__ = ["ConformalInterval", "FeatureEncoder", "ScoreCalibrator", "SmapModel", "input_frame"]


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
        # regression: the split-conformal interval; classification: the probability
        # calibrator applied after the raw score. Both learnt on the validation part
        # (`calibrate`); older pickles have neither (read through getattr)
        self.conformal: ConformalInterval | None = None
        self.calibrator: ScoreCalibrator | None = None

    def interval(self, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Bounds of the regression's split-conformal interval around `pred` (NaN when the
        model has none). Its width depends on the prediction alone, so no features are read."""
        pred = np.asarray(pred, dtype=float)
        conformal = getattr(self, "conformal", None)
        if conformal is None:
            return np.full(pred.shape, np.nan), np.full(pred.shape, np.nan)
        return conformal.bounds(pred)

    def calibrated(self, scores: np.ndarray) -> np.ndarray:
        """Scores through the probability calibrator, when the model has one."""
        calibrator = getattr(self, "calibrator", None)
        scores = np.asarray(scores, dtype=float)
        return scores if calibrator is None else calibrator(scores)

    def bounds(self, pred: np.ndarray, horizon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper prediction bounds of forecasts (NaN when the model has none)."""
        return interval_bounds(getattr(self, "intervals", None) or {}, pred, horizon)

    def raw_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """Scores in the task's units before any probability calibration."""
        missing = [c for c in self.features if c not in frame.columns]
        if missing:
            raise ValueError(f"model input is missing feature(s): {', '.join(missing)}")
        raw = self.fitted.predict(self.encoder.transform(frame[self.features]))
        return from_training_scale(self.kind, raw, frame)

    def predict_frame(self, frame: pd.DataFrame) -> np.ndarray:
        return self.calibrated(self.raw_frame(frame))

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


def conformal_quantile(residuals: np.ndarray, level: float = INTERVAL_LEVEL) -> float:
    """The split-conformal quantile of absolute held-out residuals: the ceil((n+1)*level)-th
    smallest, so a new row's residual falls at or below it with probability >= level
    (exchangeable rows). Infinite when too few rows to promise the level."""
    scores = np.sort(np.abs(np.asarray(residuals, dtype=float)))
    rank = math.ceil((len(scores) + 1) * level)
    return float(scores[rank - 1]) if rank <= len(scores) else math.inf


@dataclass(frozen=True)
class ConformalInterval:
    """A split-conformal interval whose half-width grows with the prediction:
    `quantile * (pred + floor)`, `quantile` the conformal quantile of validation residuals
    divided by that same scale, `floor` the median validation prediction (so low predictions
    keep a width). Engagement's errors grow with the rate: one constant width held 90.4%
    overall on the small preset's test part but 74% on the fifth of posts predicted highest
    (98% on the lowest), where scaled widths hold 88.5-93.6% in every fifth at the same mean
    width (docs/training.md)."""

    quantile: float
    floor: float
    level: float

    @classmethod
    def fit(cls, y: np.ndarray, pred: np.ndarray, level: float = INTERVAL_LEVEL):
        """Learnt from held-out rows (`y`, `pred`) the model never fitted on."""
        y, pred = np.asarray(y, dtype=float), np.asarray(pred, dtype=float)
        floor = max(float(np.median(np.clip(pred, 0, None))), 1e-12)
        scale = np.clip(pred, 0, None) + floor
        return cls(conformal_quantile((y - pred) / scale, level), floor, level)

    def bounds(self, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) around `pred`; low clipped at 0 (a rate, or a count's log1p)."""
        pred = np.asarray(pred, dtype=float)
        half = self.quantile * (np.clip(pred, 0, None) + self.floor)
        return np.clip(pred - half, 0, None), pred + half


PLATT_BELOW_POSITIVES = 200  # validation rows of the rarer class below which isotonic overfits
CALIBRATION_FOLDS = 5
TIE_BREAK = 1e-6  # keeps the isotonic map strictly increasing: no new ties in ROC-AUC


@dataclass(frozen=True)
class ScoreCalibrator:
    """A monotone map from a raw score to a calibrated probability: Platt (logistic on the
    score's logit) or isotonic, plus a tiny slope so the ranking (ROC-AUC, PR-AUC) stays."""

    method: str  # "sigmoid" or "isotonic"
    model: IsotonicRegression | LogisticRegression

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        scores = np.asarray(scores, dtype=float)
        if self.method == "sigmoid":
            return self.model.predict_proba(_logit(scores))[:, 1]
        mapped = self.model.predict(scores) + TIE_BREAK * (scores - 0.5)
        return np.clip(mapped, 0.0, 1.0)


def _logit(scores: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(scores, dtype=float), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p)).reshape(-1, 1)


def fit_calibrator(method: str, y: np.ndarray, scores: np.ndarray) -> ScoreCalibrator:
    """Platt or isotonic calibration of `scores` against the 0/1 labels `y`."""
    y, scores = np.asarray(y, dtype=int), np.asarray(scores, dtype=float)
    if method == "sigmoid":
        return ScoreCalibrator(method, LogisticRegression(C=1e4).fit(_logit(scores), y))
    if method == "isotonic":
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        return ScoreCalibrator(method, iso.fit(scores, y))
    raise ValueError(f"calibration method: {method} is not sigmoid or isotonic")


def choose_calibration(y: np.ndarray, scores: np.ndarray, seed: int = 0) -> str:
    """Platt when positives are few (isotonic's steps would follow the noise of a few
    hundred labels); else the method with the lower Brier score out of fold, by stratified
    cross-validation within the validation part."""
    y, scores = np.asarray(y, dtype=int), np.asarray(scores, dtype=float)
    if min(int(y.sum()), int(len(y) - y.sum())) < PLATT_BELOW_POSITIVES:
        return "sigmoid"
    folds = StratifiedKFold(CALIBRATION_FOLDS, shuffle=True, random_state=seed)
    brier = {"sigmoid": 0.0, "isotonic": 0.0}
    for fit_rows, held in folds.split(scores.reshape(-1, 1), y):
        for method in brier:
            mapped = fit_calibrator(method, y[fit_rows], scores[fit_rows])(scores[held])
            brier[method] += float(np.sum((mapped - y[held]) ** 2))
    return min(brier, key=lambda m: brier[m])
