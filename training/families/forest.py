"""A random forest grown 50 trees at a time, each batch reported for pruning."""

from __future__ import annotations

import numpy as np

from training.families.base import Data, Family, Fitted, Report, validation_loss

FOREST_NAN = -1.0  # sentinel the trees can split on where a feature is missing


class ForestFitted(Fitted):
    """Random forests take no NaN: missing values become a sentinel the trees split on."""

    def predict(self, x: np.ndarray) -> np.ndarray:
        return super().predict(np.nan_to_num(x, nan=FOREST_NAN))


def suggest(trial, p: str) -> dict:
    return {
        "trees": trial.suggest_int(p + "trees", 50, 300, step=50),
        "max_depth": trial.suggest_int(p + "max_depth", 4, 16),
        "min_samples_leaf": trial.suggest_int(p + "min_samples_leaf", 1, 50, log=True),
        "max_features": trial.suggest_float(p + "max_features", 0.3, 1.0),
    }


def fit(params: dict, data: Data, report: Report) -> Fitted:
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    cls = RandomForestClassifier if data.classify else RandomForestRegressor
    est = cls(
        n_estimators=0,
        warm_start=True,
        max_depth=params["max_depth"],
        n_jobs=-1,
        min_samples_leaf=params["min_samples_leaf"],
        max_features=params["max_features"],
        random_state=data.seed,
    )
    x = np.nan_to_num(data.x_train, nan=FOREST_NAN)
    fitted = ForestFitted(est, data.kind, "forest")
    for step, n in enumerate(range(50, params["trees"] + 1, 50)):
        est.set_params(n_estimators=n)
        est.fit(x, data.y_train)
        report(step, validation_loss(data.kind, data.y_val, fitted.predict(data.x_val)))
    return fitted


FAMILY = Family("forest", suggest, fit)
