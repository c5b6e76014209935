"""A small Keras multilayer perceptron on the standardised features."""

from __future__ import annotations

from training.families.base import Data, Family, Fitted, Report
from training.families.network import KERAS_REQUIREMENTS, fit_network


def suggest(trial, p: str) -> dict:
    return {
        "units": trial.suggest_int(p + "units", 16, 128, log=True),
        "layers": trial.suggest_int(p + "layers", 1, 3),
        "dropout": trial.suggest_float(p + "dropout", 0.0, 0.4),
        "learning_rate": trial.suggest_float(p + "learning_rate", 1e-4, 1e-2, log=True),
        "epochs": trial.suggest_int(p + "epochs", 5, 30, step=5),
    }


def fit(params: dict, data: Data, report: Report) -> Fitted:
    import keras

    keras.utils.set_random_seed(data.seed)
    model = keras.Sequential([keras.Input(shape=(data.x_train.shape[1],))])
    for _ in range(params["layers"]):
        model.add(keras.layers.Dense(params["units"], activation="relu"))
        if params["dropout"] > 0:
            model.add(keras.layers.Dropout(params["dropout"]))
    model.add(keras.layers.Dense(1, activation="sigmoid" if data.classify else None))
    model.compile(
        optimizer=keras.optimizers.Adam(params["learning_rate"]),
        loss="binary_crossentropy" if data.classify else "mse",
    )
    return fit_network(model, "mlp", params, data, report)


FAMILY = Family("mlp", suggest, fit, requirements=KERAS_REQUIREMENTS, scaled=True)
