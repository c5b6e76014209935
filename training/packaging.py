"""The logged model: encoder + estimator + output transform behind one MLflow pyfunc.

Serving loads `models:/<task>@champion` and gets scores in the task's own units: an
engagement rate, a virality or churn probability, a usage count for trend.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from training.models import FeatureEncoder


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

    def predict_frame(self, frame: pd.DataFrame) -> np.ndarray:
        missing = [c for c in self.features if c not in frame.columns]
        if missing:
            raise ValueError(f"model input is missing feature(s): {', '.join(missing)}")
        raw = self.fitted.predict(self.encoder.transform(frame[self.features]))
        if self.kind == "forecast":
            return np.clip(np.expm1(raw), 0, None)
        return np.asarray(raw, dtype=float)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:
        return self.predict_frame(model_input)


def training_target(kind: str, target: pd.Series) -> np.ndarray:
    """What the estimator is fitted on (usage counts are fitted on log1p scale)."""
    values = target.to_numpy(dtype=float)
    return np.log1p(values) if kind == "forecast" else values


def input_frame(frame: pd.DataFrame, features: list[str], categorical: list[str]) -> pd.DataFrame:
    """Model input with stable dtypes: float for numbers, str for categories (signature-safe)."""
    out = frame[features].copy()
    for col in features:
        out[col] = out[col].astype(str) if col in categorical else out[col].astype(float)
    return out
