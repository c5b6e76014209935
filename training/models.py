"""Candidate model families, each with its search space and a fit that reports per step.

A family's `fit` calls `report(step, loss)` after every boosting round, tree batch or epoch;
the search turns that into Optuna pruning. Every family reports the same loss
(`validation_loss`: MSE or log loss on the validation part), so trials of different families
compare at the pruner. Fitted predictors share one interface,
`predict(X: np.ndarray) -> np.ndarray` (scores for classifiers, values otherwise).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

Report = Callable[[int, float], None]
FOREST_NAN = -1.0  # sentinel the trees can split on where a feature is missing


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
        filled = np.where(np.isnan(raw), self.medians, raw)
        return (filled - self.means) / self.stds


@dataclass(frozen=True)
class Data:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    kind: str  # regression | classification (forecasts are fitted as regression)
    seed: int
    sequence: tuple[int, ...] = ()  # columns holding a time-ordered history, oldest first


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
    """A trained estimator behind one `predict` returning scores or values."""

    def __init__(
        self,
        estimator: Any,
        kind: str,
        family: str,
        y_shift: float = 0.0,
        y_scale: float = 1.0,
        sequence: tuple[int, ...] = (),
    ):
        self.estimator, self.kind, self.family = estimator, kind, family
        self.y_shift, self.y_scale = y_shift, y_scale  # networks fit a standardised target
        self.sequence = sequence

    def predict(self, x: np.ndarray) -> np.ndarray:
        if self.family in NETWORK_FAMILIES:
            inputs = split_sequence(x, self.sequence) if self.sequence else x
            return self.estimator.predict(inputs, verbose=0).ravel() * self.y_scale + self.y_shift
        if self.family == "forest":
            x = np.nan_to_num(x, nan=FOREST_NAN)  # random forests take no NaN
        if self.family == "lightgbm":
            # the Booster itself: the scikit-learn wrapper re-reads and validates its params
            # on every call, a third of a one-draft answer. Same trees, same best iteration;
            # a binary classifier's Booster gives the probability of class 1
            return self.estimator.booster_.predict(x)
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


# ---- families -------------------------------------------------------------------------------


def suggest(trial, family: str, kind: str) -> dict[str, Any]:
    """All `suggest_*` calls of a family, in one visible block per family."""
    p = f"{family}."
    if family == "linear":
        return {"alpha": trial.suggest_float(p + "alpha", 1e-4, 10.0, log=True)}
    if family == "forest":
        return {
            "trees": trial.suggest_int(p + "trees", 50, 300, step=50),
            "max_depth": trial.suggest_int(p + "max_depth", 4, 16),
            "min_samples_leaf": trial.suggest_int(p + "min_samples_leaf", 1, 50, log=True),
            "max_features": trial.suggest_float(p + "max_features", 0.3, 1.0),
        }
    if family == "xgboost":
        return {
            "rounds": trial.suggest_int(p + "rounds", 100, 600, step=100),
            "eta": trial.suggest_float(p + "eta", 0.01, 0.3, log=True),
            "max_depth": trial.suggest_int(p + "max_depth", 2, 8),
            "subsample": trial.suggest_float(p + "subsample", 0.5, 1.0),
            "colsample": trial.suggest_float(p + "colsample", 0.5, 1.0),
            "min_child_weight": trial.suggest_float(p + "min_child_weight", 1.0, 50.0, log=True),
            "lambda": trial.suggest_float(p + "lambda", 1e-3, 10.0, log=True),
        }
    if family == "lightgbm":
        return {
            "rounds": trial.suggest_int(p + "rounds", 100, 600, step=100),
            "learning_rate": trial.suggest_float(p + "learning_rate", 0.01, 0.3, log=True),
            "num_leaves": trial.suggest_int(p + "num_leaves", 7, 127, log=True),
            "min_child_samples": trial.suggest_int(p + "min_child_samples", 5, 200, log=True),
            "subsample": trial.suggest_float(p + "subsample", 0.5, 1.0),
            "colsample": trial.suggest_float(p + "colsample", 0.5, 1.0),
            "reg_lambda": trial.suggest_float(p + "reg_lambda", 1e-3, 10.0, log=True),
        }
    if family == "lstm":
        return {
            "units": trial.suggest_int(p + "units", 8, 64, log=True),
            "dense": trial.suggest_int(p + "dense", 8, 64, log=True),
            "learning_rate": trial.suggest_float(p + "learning_rate", 3e-4, 1e-2, log=True),
            "epochs": trial.suggest_int(p + "epochs", 5, 25, step=5),
        }
    if family == "mlp":
        return {
            "units": trial.suggest_int(p + "units", 16, 128, log=True),
            "layers": trial.suggest_int(p + "layers", 1, 3),
            "dropout": trial.suggest_float(p + "dropout", 0.0, 0.4),
            "learning_rate": trial.suggest_float(p + "learning_rate", 1e-4, 1e-2, log=True),
            "epochs": trial.suggest_int(p + "epochs", 5, 30, step=5),
        }
    raise ValueError(f"family: unknown model family {family!r}")


def _fit_linear(params, data: Data, report: Report):
    from sklearn.linear_model import LogisticRegression, Ridge

    if data.kind == "classification":
        est = LogisticRegression(C=1.0 / params["alpha"], max_iter=500, class_weight="balanced")
    else:
        est = Ridge(alpha=params["alpha"], random_state=data.seed)
    est.fit(data.x_train, data.y_train)
    fitted = Fitted(est, data.kind, "linear")
    report(0, validation_loss(data.kind, data.y_val, fitted.predict(data.x_val)))
    return fitted


def _fit_forest(params, data: Data, report: Report):
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    cls = RandomForestClassifier if data.kind == "classification" else RandomForestRegressor
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
    fitted = Fitted(est, data.kind, "forest")
    for step, n in enumerate(range(50, params["trees"] + 1, 50)):
        est.set_params(n_estimators=n)
        est.fit(x, data.y_train)
        report(step, validation_loss(data.kind, data.y_val, fitted.predict(data.x_val)))
    return fitted


def _fit_xgboost(params, data: Data, report: Report):
    import xgboost as xgb

    class Reporter(xgb.callback.TrainingCallback):
        def after_iteration(self, model, epoch, evals_log):
            if epoch % 10 == 9:
                metric, history = next(iter(evals_log["validation_0"].items()))
                report(epoch, common_loss(metric, history[-1]))
            return False

    common = dict(
        n_estimators=params["rounds"],
        learning_rate=params["eta"],
        max_depth=params["max_depth"],
        subsample=params["subsample"],
        colsample_bytree=params["colsample"],
        min_child_weight=params["min_child_weight"],
        reg_lambda=params["lambda"],
        random_state=data.seed,
        n_jobs=2,
        tree_method="hist",
        callbacks=[Reporter()],
    )
    if data.kind == "classification":
        est = xgb.XGBClassifier(eval_metric="logloss", **common)
    else:
        est = xgb.XGBRegressor(eval_metric="rmse", **common)
    est.fit(data.x_train, data.y_train, eval_set=[(data.x_val, data.y_val)], verbose=False)
    est.set_params(callbacks=None)  # the reporter closes over the trial: keep it out of the model
    return Fitted(est, data.kind, "xgboost")


def _fit_lightgbm(params, data: Data, report: Report):
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
    cls = lgb.LGBMClassifier if data.kind == "classification" else lgb.LGBMRegressor
    est = cls(**common)
    est.fit(data.x_train, data.y_train, eval_X=data.x_val, eval_y=data.y_val, callbacks=[reporter])
    return Fitted(est, data.kind, "lightgbm")


def _fit_network(model, family: str, params, data: Data, report: Report, sequence=()):
    """Fit a compiled Keras model, reporting each epoch's validation loss for pruning.

    Regression targets are standardised for the network; the reported loss is put back on the
    target's own scale so trials of every family compare.
    """
    import keras

    classify = data.kind == "classification"
    shift, scale = (
        (0.0, 1.0) if classify else (float(data.y_train.mean()), float(data.y_train.std() or 1.0))
    )

    def inputs(x: np.ndarray):
        return split_sequence(x, sequence) if sequence else x

    class Reporter(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            report(epoch, float(logs["val_loss"]) * scale**2)

    model.fit(
        inputs(data.x_train),
        (data.y_train - shift) / scale,
        validation_data=(inputs(data.x_val), (data.y_val - shift) / scale),
        epochs=params["epochs"],
        batch_size=256,
        verbose=0,
        callbacks=[Reporter()],
    )
    return Fitted(model, data.kind, family, shift, scale, sequence)


def _fit_mlp(params, data: Data, report: Report):
    import keras

    keras.utils.set_random_seed(data.seed)
    model = keras.Sequential([keras.Input(shape=(data.x_train.shape[1],))])
    for _ in range(params["layers"]):
        model.add(keras.layers.Dense(params["units"], activation="relu"))
        if params["dropout"] > 0:
            model.add(keras.layers.Dropout(params["dropout"]))
    classify = data.kind == "classification"
    model.add(keras.layers.Dense(1, activation="sigmoid" if classify else None))
    model.compile(
        optimizer=keras.optimizers.Adam(params["learning_rate"]),
        loss="binary_crossentropy" if classify else "mse",
    )
    return _fit_network(model, "mlp", params, data, report)


def split_sequence(x: np.ndarray, sequence: tuple[int, ...]) -> list[np.ndarray]:
    """[history as (rows, steps, 1), the other columns] for a two-input network."""
    rest = [i for i in range(x.shape[1]) if i not in set(sequence)]
    return [x[:, list(sequence)][..., None], x[:, rest]]


def _fit_lstm(params, data: Data, report: Report):
    """An LSTM over the usage history, joined with the tabular features (trend only)."""
    import keras

    if not data.sequence:
        raise ValueError("family: lstm needs a history sequence (trend task only)")
    keras.utils.set_random_seed(data.seed)
    seq_in = keras.Input(shape=(len(data.sequence), 1))
    rest_in = keras.Input(shape=(data.x_train.shape[1] - len(data.sequence),))
    hidden = keras.layers.Concatenate()([keras.layers.LSTM(params["units"])(seq_in), rest_in])
    hidden = keras.layers.Dense(params["dense"], activation="relu")(hidden)
    model = keras.Model([seq_in, rest_in], keras.layers.Dense(1)(hidden))
    model.compile(optimizer=keras.optimizers.Adam(params["learning_rate"]), loss="mse")
    return _fit_network(model, "lstm", params, data, report, data.sequence)


FITTERS: dict[str, Callable[[dict, Data, Report], Any]] = {
    "linear": _fit_linear,
    "forest": _fit_forest,
    "xgboost": _fit_xgboost,
    "lightgbm": _fit_lightgbm,
    "mlp": _fit_mlp,
    "lstm": _fit_lstm,
}
NETWORK_FAMILIES = {"mlp", "lstm"}
SCALED_FAMILIES = {"linear"} | NETWORK_FAMILIES


def fit(family: str, params: dict, data: Data, report: Report):
    return FITTERS[family](params, data, report)
