"""How each kind of task is trained and scored: one trainer per kind, all through the same
stages (build the set, tune, register, gate).

A trainer answers every question the stages, the gate, `smap evaluate` and monitoring would
otherwise ask by switching on a task's kind: where its set comes from, what a trial fits,
which model a run keeps, how a prediction is scored, what is logged beside the model.
Tabular tasks (regression, classification, forecast) read a Feast training set; the text
trainer lives with the content task (`training/content.py`); clustering has no Optuna target.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from importlib.metadata import version as pkg_version
from pathlib import Path

import numpy as np
import pandas as pd

from training import packaging
from training.dataset import ALL_DATA, TrainingSet
from training.errors import TaskError
from training.families import FAMILIES, fit, requirements
from training.metrics import (
    best_f1_threshold,
    classification_report,
    forecast_report,
    regression_report,
)
from training.packaging import INTERVAL_LEVEL, SmapModel, forecast_intervals, input_frame
from training.reference import log_reference
from training.search import FAMILY, Objective, Prepared, prepare
from training.snapshot import StoredSet, training_set
from training.task import Task
from training.tracking import log_json, log_plots


def pinned(names: tuple[str, ...] | list[str]) -> list[str]:
    """pip requirements pinned to what is installed (skips MLflow's slow inference)."""
    return [f"{n}=={pkg_version(n)}" for n in names]


@dataclass(frozen=True)
class Untrainable:
    """A task trained by its own command (clustering: no Optuna target, no gate here)."""

    name: str
    command: str

    trainable = False

    def refuse(self, task: Task) -> TaskError:
        return TaskError(f"{task.name}: trained, gated and evaluated by `{self.command}`")


class Tabular:
    """Feast training set, the model families' search, a `SmapModel` with its encoder."""

    name = "tabular"
    trainable = True
    fit_kind = "regression"  # what the estimators fit
    binary_label = False  # monitoring compares a 0/1 label's class shares

    def candidates(self, task: Task) -> tuple[str, ...]:
        """Families `--families` may name: the task's own first (its default search), then
        every other registered family that fits plain tabular data."""
        others = [n for n, f in FAMILIES.items() if n not in task.families and not f.needs_sequence]
        return (*task.families, *others)

    def build(
        self, settings, task, window=ALL_DATA, rebuild=False, progress=None, columns=None
    ) -> StoredSet:
        return training_set(
            settings, task, rebuild=rebuild, progress=progress, window=window, columns=columns
        )

    def objective(self, ts, families, run_id, seed) -> Objective:
        return Objective(ts, prepare(ts, seed, self), families, ts.task.direction, run_id, self)

    def training_target(self, frame: pd.DataFrame) -> np.ndarray:
        return packaging.training_target(self.name, frame)

    def from_training_scale(self, raw: np.ndarray, frame: pd.DataFrame) -> np.ndarray:
        return packaging.from_training_scale(self.name, raw, frame)

    def best_model(self, ts, objective: Objective, best) -> SmapModel:
        """The best trial's family and parameters refitted on this run's prepared data."""
        prepared: Prepared = objective.prepared
        family = best.user_attrs[FAMILY]
        prefix = family + "."
        params = {k[len(prefix) :]: v for k, v in best.params.items() if k.startswith(prefix)}
        scaled = FAMILIES[family].scaled
        fitted = fit(family, params, prepared.data[scaled], lambda step, loss: None)
        model = SmapModel(prepared.encoders[scaled], fitted, self.name, ts.features)
        self.calibrate(ts, model)
        return model

    def calibrate(self, ts: TrainingSet, model: SmapModel) -> None:
        """Anything the model learns from the validation part after its fit (nothing here)."""

    def model_input(self, ts, frame):
        return input_frame(frame, ts.features, ts.categorical)

    def score(self, ts, frame, pred, threshold=None):
        return self.quality(frame.target.to_numpy(), pred)

    def quality(self, y, pred):
        return regression_report(y, pred)

    def test_extras(self, ts: TrainingSet, model, pred: np.ndarray) -> dict[str, float]:
        """Test figures beyond the task's metrics (logged as `test_<name>`)."""
        return {}

    def evaluate_extras(self, ts: TrainingSet, model, predicted) -> dict[str, object]:
        """What `smap evaluate` adds to (or replaces in) its report for this kind."""
        return {}

    def log_extras(self, ts, model: SmapModel, study, test_metrics):
        test = ts.part("test")
        pred = model.predict_frame(self.model_input(ts, test))
        everything = self.model_input(ts, ts.frame)
        log_reference(
            ts.task,
            everything,
            ts.features,
            model.predict_frame(everything),
            ts.frame.target,
            test_metrics.get(ts.task.metric, float("nan")),
            ts.window,
            self.binary_label,
        )
        log_plots(
            study,
            model.encoder.names,
            model.fitted.importances(len(model.encoder.names)),
            test.target.to_numpy(),
            pred,
            calibration=self.binary_label,
        )

    def log_model(self, model, example, family):
        import mlflow

        with tempfile.TemporaryDirectory() as code:
            mlflow.pyfunc.log_model(
                name="model",
                python_model=model,
                signature=mlflow.models.infer_signature(example, model.predict_frame(example)),
                input_example=example,
                pip_requirements=pinned(requirements(family)),
                code_paths=packaging.model_code(Path(code)),
            )


class Regression(Tabular):
    name = "regression"


class Classification(Tabular):
    """A probability; the label threshold is the F1-best one on validation."""

    name = "classification"
    fit_kind = "classification"
    binary_label = True

    def calibrate(self, ts, model):
        val = ts.part("validation")
        model.threshold, _ = best_f1_threshold(
            val.target.to_numpy(), model.predict_frame(self.model_input(ts, val))
        )

    def score(self, ts, frame, pred, threshold=None):
        return classification_report(frame.target.to_numpy(), pred, threshold)

    def quality(self, y, pred):
        return classification_report(y, pred)


class Forecast(Tabular):
    """Usage ahead, fitted on the log ratio to a recent level, with prediction bounds from
    validation residuals (rows the fit never saw)."""

    name = "forecast"

    def calibrate(self, ts, model):
        val = ts.part("validation")
        pred = model.predict_frame(self.model_input(ts, val))
        model.intervals = forecast_intervals(val.target, pred, val.horizon, INTERVAL_LEVEL)
        model.interval_level = INTERVAL_LEVEL

    def score(self, ts, frame, pred, threshold=None):
        y = frame.target.to_numpy()
        return forecast_report(y, pred, frame.seasonal_naive.to_numpy(), frame.horizon)

    def quality(self, y, pred):
        raise TaskError("forecast: answers are judged against matured usage, not monitored")

    def log_extras(self, ts, model, study, test_metrics):
        super().log_extras(ts, model, study, test_metrics)
        log_json(
            {"level": model.interval_level, "log1p_residual_quantiles": model.intervals},
            "intervals.json",
        )

    def test_extras(self, ts, model, pred):
        """How often the test target falls inside its interval."""
        test = ts.part("test")
        lower, upper = model.bounds(pred, test.horizon.to_numpy())
        y = test.target.to_numpy()
        return {"interval_coverage": float(np.mean((y >= lower) & (y <= upper)))}


REGRESSION, CLASSIFICATION, FORECAST = Regression(), Classification(), Forecast()
CLUSTERING = Untrainable("clustering", "smap segment")
