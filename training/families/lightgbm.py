"""Gradient-boosted trees with LightGBM, every 10th round reported; predicts via its Booster."""

from __future__ import annotations

import numpy as np

from training.families.base import Data, Family, Fitted, Report, common_loss


class LightGBMFitted(Fitted):
    """Predicts through the Booster itself: the scikit-learn wrapper re-reads and validates
    its params on every call, a third of a one-draft answer. Same trees, same best iteration;
    a binary classifier's Booster gives the probability of class 1."""

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.estimator.booster_.predict(x)


def suggest(trial, p: str) -> dict:
    return {
        "rounds": trial.suggest_int(p + "rounds", 100, 600, step=100),
        "learning_rate": trial.suggest_float(p + "learning_rate", 0.01, 0.3, log=True),
        "num_leaves": trial.suggest_int(p + "num_leaves", 7, 127, log=True),
        "min_child_samples": trial.suggest_int(p + "min_child_samples", 5, 200, log=True),
        "subsample": trial.suggest_float(p + "subsample", 0.5, 1.0),
        "colsample": trial.suggest_float(p + "colsample", 0.5, 1.0),
        "reg_lambda": trial.suggest_float(p + "reg_lambda", 1e-3, 10.0, log=True),
    }


def fit(params: dict, data: Data, report: Report) -> Fitted:
    import lightgbm as lgb

    def reporter(env):
        if env.iteration % 10 == 9:
            _, metric, value, _ = env.evaluation_result_list[0]
            report(env.iteration, common_loss(metric, value))

    common = dict(
        n_estimators=params["rounds"],
        learning_rate=params["learning_rate"],
        num_leaves=params["num_leaves"],
        min_child_samples=params["min_child_samples"],
        subsample=params["subsample"],
        subsample_freq=1,
        colsample_bytree=params["colsample"],
        reg_lambda=params["reg_lambda"],
        random_state=data.seed,
        n_jobs=2,
        verbose=-1,
    )
    cls = lgb.LGBMClassifier if data.classify else lgb.LGBMRegressor
    est = cls(**common)
    est.fit(data.x_train, data.y_train, eval_X=data.x_val, eval_y=data.y_val, callbacks=[reporter])
    return LightGBMFitted(est, data.kind, "lightgbm")


FAMILY = Family("lightgbm", suggest, fit, requirements=("lightgbm",))
