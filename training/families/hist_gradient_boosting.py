"""scikit-learn's HistGradientBoosting: binned gradient boosting with native missing values,
no library beyond scikit-learn; grown 50 iterations at a time, each batch reported for pruning."""

from __future__ import annotations

from training.families.base import Data, Family, Fitted, Report, validation_loss


def suggest(trial, p: str) -> dict:
    return {
        "iterations": trial.suggest_int(p + "iterations", 100, 500, step=100),
        "learning_rate": trial.suggest_float(p + "learning_rate", 0.02, 0.3, log=True),
        "max_leaf_nodes": trial.suggest_int(p + "max_leaf_nodes", 7, 63, log=True),
        "min_samples_leaf": trial.suggest_int(p + "min_samples_leaf", 5, 200, log=True),
        "l2_regularization": trial.suggest_float(p + "l2_regularization", 1e-3, 10.0, log=True),
    }


def fit(params: dict, data: Data, report: Report) -> Fitted:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    cls = HistGradientBoostingClassifier if data.classify else HistGradientBoostingRegressor
    est = cls(
        max_iter=0,
        warm_start=True,
        learning_rate=params["learning_rate"],
        max_leaf_nodes=params["max_leaf_nodes"],
        min_samples_leaf=params["min_samples_leaf"],
        l2_regularization=params["l2_regularization"],
        early_stopping=False,
        random_state=data.seed,
    )
    fitted = Fitted(est, data.kind, "hist_gradient_boosting")
    for step, n in enumerate(range(50, params["iterations"] + 1, 50)):
        est.set_params(max_iter=n)  # warm start: adds 50 iterations to the ones fitted
        est.fit(data.x_train, data.y_train)
        report(step, validation_loss(data.kind, data.y_val, fitted.predict(data.x_val)))
    return fitted


FAMILY = Family("hist_gradient_boosting", suggest, fit)
