"""What the Keras families share: fitting with per-epoch pruning on a standardised target."""

from __future__ import annotations

import numpy as np

from training.families.base import Data, Fitted, Report

KERAS_REQUIREMENTS = ("tensorflow-cpu", "keras")


def split_sequence(x: np.ndarray, sequence: tuple[int, ...]) -> list[np.ndarray]:
    """[history as (rows, steps, 1), the other columns] for a two-input network."""
    rest = [i for i in range(x.shape[1]) if i not in set(sequence)]
    return [x[:, list(sequence)][..., None], x[:, rest]]


class NetworkFitted(Fitted):
    """A Keras model fitted on a standardised target, put back on the target's scale."""

    def __init__(
        self,
        estimator,
        kind: str,
        family: str,
        y_shift: float = 0.0,
        y_scale: float = 1.0,
        sequence: tuple[int, ...] = (),
    ):
        super().__init__(estimator, kind, family)
        self.y_shift, self.y_scale, self.sequence = y_shift, y_scale, sequence

    def predict(self, x: np.ndarray) -> np.ndarray:
        inputs = split_sequence(x, self.sequence) if self.sequence else x
        return self.estimator.predict(inputs, verbose=0).ravel() * self.y_scale + self.y_shift

    def importances(self, n_features: int) -> np.ndarray | None:
        return None


def fit_network(model, family: str, params, data: Data, report: Report, sequence=()) -> Fitted:
    """Fit a compiled Keras model, reporting each epoch's validation loss for pruning.

    Regression targets are standardised for the network; the reported loss is put back on the
    target's own scale so trials of every family compare.
    """
    import keras

    shift, scale = (
        (0.0, 1.0)
        if data.classify
        else (float(data.y_train.mean()), float(data.y_train.std() or 1.0))
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
    return NetworkFitted(model, data.kind, family, shift, scale, sequence)
