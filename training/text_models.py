"""What the text tasks' models share (content, sentiment): the small Keras network and its fit
reported to Optuna epoch by epoch, and the pinned requirements. Each task keeps its own
inputs, search space and model class (`training/content.py`, `training/sentiment.py`)."""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import version as pkg_version
from typing import Any

import numpy as np

KERAS_FAMILIES = {"keras_text"}
MAX_TOKENS = 20_000  # TextVectorization vocabulary

Texts = tuple[np.ndarray, np.ndarray]  # texts and their class codes


def fit_keras(
    params: dict,
    train: Texts,
    validation: Texts,
    classes: int,
    seed: int,
    report: Callable[[int, float], None],
    batch_size: int,
    **vectorize: Any,
) -> Any:
    """A small text network (TextVectorization given `vectorize`, embedding, average pooling,
    dense) over `classes` classes, fitted on `train`; `report(epoch, validation loss)` after
    each epoch, so Optuna can prune it."""
    import keras

    keras.utils.set_random_seed(seed)
    tokens = keras.layers.TextVectorization(max_tokens=MAX_TOKENS, **vectorize)
    tokens.adapt(train[0])
    model = keras.Sequential(
        [
            keras.Input(shape=(), dtype="string"),
            tokens,
            keras.layers.Embedding(MAX_TOKENS, params["embedding"], mask_zero=True),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(params["units"], activation="relu"),
            keras.layers.Dropout(params["dropout"]),
            keras.layers.Dense(classes, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(params["learning_rate"]),
        loss="sparse_categorical_crossentropy",
    )

    class Reporter(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            report(epoch, float(logs["val_loss"]))

    model.fit(
        *train,
        validation_data=validation,
        epochs=params["epochs"],
        batch_size=batch_size,
        verbose=0,
        callbacks=[Reporter()],
    )
    return model


def requirements(base: tuple[str, ...], family: str) -> list[str]:
    """`base` and what the family adds, pinned to what is installed (skips MLflow's slow
    inference subprocess)."""
    names = list(base) + (["tensorflow-cpu", "keras"] if family in KERAS_FAMILIES else [])
    return [f"{n}=={pkg_version(n)}" for n in names]
