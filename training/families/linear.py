"""Ridge regression, or a class-balanced logistic regression: the cheap, strong start."""

from __future__ import annotations

from training.families.base import Data, Family, Fitted, Report, validation_loss


def suggest(trial, p: str) -> dict:
    return {"alpha": trial.suggest_float(p + "alpha", 1e-4, 10.0, log=True)}


def fit(params: dict, data: Data, report: Report) -> Fitted:
    from sklearn.linear_model import LogisticRegression, Ridge

    if data.classify:
        est = LogisticRegression(C=1.0 / params["alpha"], max_iter=500, class_weight="balanced")
    else:
        est = Ridge(alpha=params["alpha"], random_state=data.seed)
    est.fit(data.x_train, data.y_train)
    fitted = Fitted(est, data.kind, "linear")
    report(0, validation_loss(data.kind, data.y_val, fitted.predict(data.x_val)))
    return fitted


FAMILY = Family("linear", suggest, fit, scaled=True)
