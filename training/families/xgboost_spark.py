"""XGBoost trained on Spark (`xgboost.spark`), for training sets past one process's means, on
profiles that offer Spark (`training/engines.py`). What it returns, and what is logged and
served, is the plain XGBoost booster of the Spark model: serving never needs Spark.

Rounds run inside Spark tasks, where the Optuna trial is out of reach, so nothing is reported
while they run and these trials are never pruned: a loss reported after the whole fit could
only get a finished trial pruned, its result thrown away for no time saved.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.families import xgboost
from training.families.base import Data, Family, Fitted, Report


class BoosterFitted(Fitted):
    """A plain `xgboost.Booster`: values, or probabilities under `binary:logistic`."""

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.estimator.inplace_predict(np.asarray(x, dtype=float)))

    def importances(self, n_features: int) -> np.ndarray | None:
        gains = self.estimator.get_score(importance_type="gain")
        return np.array([gains.get(f"f{i}", 0.0) for i in range(n_features)], dtype=float)


def spark_frame(spark, data: Data):
    """Train and validation rows as one Spark frame: an array of features, the label and
    whether the row is for validation (XGBoost's `validation_indicator_col`)."""
    x = np.concatenate([data.x_train, data.x_val]).astype(float)
    rows = pd.DataFrame(
        {
            "features": list(x),
            "label": np.concatenate([data.y_train, data.y_val]).astype(float),
            "validation": np.r_[np.zeros(len(data.x_train), bool), np.ones(len(data.x_val), bool)],
        }
    )
    return spark.createDataFrame(rows)


def fit(params: dict, data: Data, report: Report) -> Fitted:
    from pyspark.sql import SparkSession
    from xgboost.spark import SparkXGBClassifier, SparkXGBRegressor

    spark = SparkSession.getActiveSession()
    if spark is None:
        raise RuntimeError("xgboost_spark: no active Spark session (training starts one)")
    estimator = SparkXGBClassifier if data.classify else SparkXGBRegressor
    model = estimator(
        features_col="features",
        label_col="label",
        validation_indicator_col="validation",
        num_workers=max(1, spark.sparkContext.defaultParallelism),
        **xgboost.booster_params(params, data.seed),
        tree_method="hist",
        eval_metric="logloss" if data.classify else "rmse",
        verbose=False,  # no line per round from every Spark task
    ).fit(spark_frame(spark, data))
    return BoosterFitted(model.get_booster(), data.kind, "xgboost_spark")


FAMILY = Family(
    "xgboost_spark", xgboost.suggest, fit, requirements=("xgboost",), engines=("spark",)
)
