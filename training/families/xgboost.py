"""Gradient-boosted trees with XGBoost's histogram method, every 10th round reported."""

from __future__ import annotations

from training.families.base import Data, Family, Fitted, Report, common_loss


def suggest(trial, p: str) -> dict:
    return {
        "rounds": trial.suggest_int(p + "rounds", 100, 600, step=100),
        "eta": trial.suggest_float(p + "eta", 0.01, 0.3, log=True),
        "max_depth": trial.suggest_int(p + "max_depth", 2, 8),
        "subsample": trial.suggest_float(p + "subsample", 0.5, 1.0),
        "colsample": trial.suggest_float(p + "colsample", 0.5, 1.0),
        "min_child_weight": trial.suggest_float(p + "min_child_weight", 1.0, 50.0, log=True),
        "lambda": trial.suggest_float(p + "lambda", 1e-3, 10.0, log=True),
    }


def booster_params(params: dict, seed: int) -> dict:
    """A trial's parameters as XGBoost's estimator arguments: the same for the in-process
    family and `xgboost_spark`, so a study's trials mean the same on either."""
    return dict(
        n_estimators=params["rounds"],
        learning_rate=params["eta"],
        max_depth=params["max_depth"],
        subsample=params["subsample"],
        colsample_bytree=params["colsample"],
        min_child_weight=params["min_child_weight"],
        reg_lambda=params["lambda"],
        random_state=seed,
    )


def fit(params: dict, data: Data, report: Report) -> Fitted:
    import xgboost as xgb

    class Reporter(xgb.callback.TrainingCallback):
        def after_iteration(self, model, epoch, evals_log):
            if epoch % 10 == 9:
                metric, history = next(iter(evals_log["validation_0"].items()))
                report(epoch, common_loss(metric, history[-1]))
            return False

    common = dict(
        **booster_params(params, data.seed),
        n_jobs=2,
        tree_method="hist",
        callbacks=[Reporter()],
    )
    if data.classify:
        est = xgb.XGBClassifier(eval_metric="logloss", **common)
    else:
        est = xgb.XGBRegressor(eval_metric="rmse", **common)
    est.fit(data.x_train, data.y_train, eval_set=[(data.x_val, data.y_val)], verbose=False)
    est.set_params(callbacks=None)  # the reporter closes over the trial: keep it out of the model
    return Fitted(est, data.kind, "xgboost")


# on a training set past `training.spark_min_rows`, where the profile offers Spark
FAMILY = Family("xgboost", suggest, fit, requirements=("xgboost",), at_scale="xgboost_spark")
