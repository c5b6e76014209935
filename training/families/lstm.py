"""An LSTM over the usage history, joined with the tabular features (trend only)."""

from __future__ import annotations

from training.families.base import Data, Family, Fitted, Report
from training.families.network import KERAS_REQUIREMENTS, fit_network


def suggest(trial, p: str) -> dict:
    return {
        "units": trial.suggest_int(p + "units", 8, 64, log=True),
        "dense": trial.suggest_int(p + "dense", 8, 64, log=True),
        "learning_rate": trial.suggest_float(p + "learning_rate", 3e-4, 1e-2, log=True),
        "epochs": trial.suggest_int(p + "epochs", 5, 25, step=5),
    }


def fit(params: dict, data: Data, report: Report) -> Fitted:
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
    return fit_network(model, "lstm", params, data, report, data.sequence)


FAMILY = Family(
    "lstm", suggest, fit, requirements=KERAS_REQUIREMENTS, scaled=True, needs_sequence=True
)
