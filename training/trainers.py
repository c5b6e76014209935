"""How each kind of task is trained and scored: one trainer per kind, all through the same
stages (build the set, tune, register, gate).

A trainer answers every question the stages, the gate, `smap evaluate` and monitoring would
otherwise ask by switching on a task's kind: where its set comes from, what a trial fits,
which model a run keeps, how a prediction is scored, what is logged beside the model.
Tabular tasks (regression, classification, forecast) read a Feast training set; the text
trainer reads the warehouse and keeps its models in `training/content.py`; clustering has no
Optuna target (`smap segment`). Heavy modules load when a trainer first needs them, so the
task registry that declares these trainers stays light.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from importlib.metadata import version as pkg_version
from pathlib import Path

import numpy as np
import pandas as pd

from training.dataset import ALL_DATA, TrainingSet
from training.errors import TaskError
from training.families import FAMILIES, requirements
from training.reference import log_reference
from training.snapshot import StoredSet, training_set
from training.task import Task


def _packaging():
    """The logged model's module (its classes subclass MLflow's): loaded when a model is
    fitted or logged, so the task registry stays light for `smap --help`."""
    from training import packaging

    return packaging


def _search():
    """The Optuna search (objective, prepared matrices): loaded when a task is tuned."""
    from training import search

    return search


def _selection():
    """Which candidate a run keeps (anchors, blends): loaded when a task is tuned."""
    from training import selection

    return selection


def _metrics():
    """The task metrics (scikit-learn): loaded when a prediction is scored."""
    from training import metrics

    return metrics


def _content():
    """The content task's text models (scikit-learn pipelines, Keras, MLflow's model class)."""
    from training import content

    return content


def _tracking():
    """MLflow logging helpers, loaded when a run logs."""
    from training import tracking

    return tracking


def pinned(names: tuple[str, ...] | list[str]) -> list[str]:
    """pip requirements pinned to what is installed (skips MLflow's slow inference)."""
    return [f"{n}=={pkg_version(n)}" for n in names]


@dataclass(frozen=True)
class Untrainable:
    """A task trained by its own command (clustering: no Optuna target, no gate here)."""

    name: str
    command: str

    trainable = False
    refits = False

    def refuse(self, task: Task) -> TaskError:
        return TaskError(f"{task.name}: trained, gated and evaluated by `{self.command}`")


class Tabular:
    """Feast training set, the model families' search, a `SmapModel` with its encoder."""

    name = "tabular"
    trainable = True
    refits = True
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

    def objective(self, ts, families, run_id, selection):
        search = _search()
        prepared = search.prepare(ts, selection.seed, self, selection)
        return search.Objective(ts, prepared, families, ts.task.direction, run_id, self, selection)

    def training_target(self, frame: pd.DataFrame) -> np.ndarray:
        return _packaging().training_target(self.name, frame)

    def from_training_scale(self, raw: np.ndarray, frame: pd.DataFrame) -> np.ndarray:
        return _packaging().from_training_scale(self.name, raw, frame)

    def best_model(self, ts, objective, best, study=None):
        """The run's chosen candidate (its best trial, an anchor or a blend: selection.py)
        refitted on this run's prepared data, with what was considered recorded on it."""
        selection = _selection()
        chosen = selection.choose(objective, study, best, objective.selection)
        encoder, fitted = selection.refit(objective, chosen.chosen)
        model = _packaging().SmapModel(encoder, fitted, self.name, ts.features)
        model.selection = chosen.summary()
        self.calibrate(ts, model)
        return model

    def calibrate(self, ts: TrainingSet, model) -> None:
        """Anything the model learns from the validation part after its fit (nothing here)."""

    def model_input(self, ts, frame):
        return _packaging().input_frame(frame, ts.features, ts.categorical)

    def score(self, ts, frame, pred, threshold=None):
        return self.quality(frame.target.to_numpy(), pred)

    def quality(self, y, pred):
        return _metrics().regression_report(y, pred)

    def test_extras(self, ts: TrainingSet, model, pred: np.ndarray) -> dict[str, float]:
        """Test figures beyond the task's metrics (logged as `test_<name>`)."""
        return {}

    def evaluate_extras(self, ts: TrainingSet, model, predicted) -> dict[str, object]:
        """What `smap evaluate` adds to (or replaces in) its report for this kind."""
        return {}

    def log_extras(self, ts, model, study, test_metrics):
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
        _tracking().log_plots(
            study,
            model.encoder.names,
            model.fitted.importances(len(model.encoder.names)),
            test.target.to_numpy(),
            pred,
            calibration=self.binary_label,
        )

    def log_model(self, model, example, family):
        with tempfile.TemporaryDirectory() as code:
            _tracking().log_pyfunc(
                model,
                example,
                pinned(model_requirements(model, family)),
                _packaging().model_code(Path(code)),
            )


class Regression(Tabular):
    """A value with a 90% split-conformal interval learnt on the validation part (rows the
    fit never saw), its width scaled by the prediction (`ConformalInterval`)."""

    name = "regression"

    def calibrate(self, ts, model):
        val = ts.part("validation")
        pred = model.predict_frame(self.model_input(ts, val))
        model.conformal = _packaging().ConformalInterval.fit(val.target.to_numpy(), pred)

    def test_extras(self, ts, model, pred):
        """Coverage and mean width of the interval on the test part (none without one)."""
        if getattr(model, "conformal", None) is None:
            return {}
        test = ts.part("test")
        low, high = model.interval(pred)
        return _metrics().interval_report(test.target.to_numpy(), low, high)

    def log_extras(self, ts, model, study, test_metrics):
        super().log_extras(ts, model, study, test_metrics)
        if model.conformal is not None:
            _tracking().log_json(asdict(model.conformal), "interval.json")

    def evaluate_extras(self, ts, model, predicted):
        """The interval's coverage and width on the test part, as training logged them."""
        return {"uncertainty": self.test_extras(ts, model, predicted)}


class Classification(Tabular):
    """A probability; the label threshold is the F1-best one on validation."""

    name = "classification"
    fit_kind = "classification"
    binary_label = True

    def calibrate(self, ts, model):
        """A calibrator (Platt or isotonic, `choose_calibration`) on the validation scores,
        then the F1-best threshold on the calibrated ones."""
        val = ts.part("validation")
        y, model_input = val.target.to_numpy(), self.model_input(ts, val)
        raw = model.raw_frame(model_input)
        packaging = _packaging()
        if len(np.unique(y)) == 2:  # one class in validation: nothing to calibrate against
            method = packaging.choose_calibration(y, raw)
            model.calibrator = packaging.fit_calibrator(method, y, raw)
        model.threshold, _ = _metrics().best_f1_threshold(y, model.predict_frame(model_input))

    def test_extras(self, ts, model, pred):
        """Brier score and ECE before and after calibration, and the raw ranking (ROC-AUC,
        PR-AUC), so calibration is seen not to cost any."""
        test = ts.part("test")
        y = test.target.to_numpy()
        if len(np.unique(y)) < 2:
            return {}
        metrics = _metrics()
        raw = model.raw_frame(self.model_input(ts, test))
        ranking = metrics.classification_report(y, raw)
        return {
            **metrics.calibration_report(y, raw, pred),
            "roc_auc_raw": ranking["roc_auc"],
            "pr_auc_raw": ranking["pr_auc"],
        }

    def evaluate_extras(self, ts, model, predicted):
        """Brier score and ECE before and after calibration on the test part."""
        return {"uncertainty": self.test_extras(ts, model, predicted)}

    def log_extras(self, ts, model, study, test_metrics):
        super().log_extras(ts, model, study, test_metrics)
        test = ts.part("test")
        model_input = self.model_input(ts, test)
        method = getattr(model.calibrator, "method", "none")
        tracking = _tracking()
        tracking.log_reliability(
            test.target.to_numpy(),
            model.raw_frame(model_input),
            model.predict_frame(model_input),
            method,
        )
        val = ts.part("validation").target.to_numpy()
        rarer = int(min(val.sum(), len(val) - val.sum()))
        tracking.log_json(
            {
                "method": method,
                "validation_rarer_class_rows": rarer,
                "platt_below_rows": _packaging().PLATT_BELOW_POSITIVES,
            },
            "calibration.json",
        )

    def score(self, ts, frame, pred, threshold=None):
        return _metrics().classification_report(frame.target.to_numpy(), pred, threshold)

    def quality(self, y, pred):
        return _metrics().classification_report(y, pred)


class Forecast(Tabular):
    """Usage ahead, fitted on the log ratio to a recent level, with prediction bounds from
    validation residuals (rows the fit never saw)."""

    name = "forecast"

    def calibrate(self, ts, model):
        val = ts.part("validation")
        pred = model.predict_frame(self.model_input(ts, val))
        packaging = _packaging()
        level = packaging.INTERVAL_LEVEL
        model.intervals = packaging.forecast_intervals(val.target, pred, val.horizon, level)
        model.interval_level = level

    def score(self, ts, frame, pred, threshold=None):
        y = frame.target.to_numpy()
        return _metrics().forecast_report(y, pred, frame.seasonal_naive.to_numpy(), frame.horizon)

    def quality(self, y, pred):
        raise TaskError("forecast: answers are judged against matured usage, not monitored")

    def log_extras(self, ts, model, study, test_metrics):
        super().log_extras(ts, model, study, test_metrics)
        _tracking().log_json(
            {"level": model.interval_level, "log1p_residual_quantiles": model.intervals},
            "intervals.json",
        )

    def test_extras(self, ts, model, pred):
        """How often the test target falls inside its interval."""
        test = ts.part("test")
        lower, upper = model.bounds(pred, test.horizon.to_numpy())
        y = test.target.to_numpy()
        return {"interval_coverage": float(np.mean((y >= lower) & (y <= upper)))}


def model_requirements(model, family: str) -> list[str]:
    """pip names of every family the model holds (a blend holds several)."""
    selection = getattr(model, "selection", None)
    members = selection["chosen"]["members"] if selection else [{"family": family}]
    names = [n for m in members for n in requirements(str(m["family"]))]
    return list(dict.fromkeys(names))


REGRESSION, CLASSIFICATION, FORECAST = Regression(), Classification(), Forecast()
CLUSTERING = Untrainable("clustering", "smap segment")


class TextTrainer:
    """The content task through the common stages: a set read from the warehouse, the text
    families' search, the best model of the run kept as fitted (no refit). The text models
    themselves live in `training/content.py`; another text task subclasses this trainer,
    naming its own models and what it adds (`training/sentiment_trainer.py`)."""

    name = "text"
    trainable = True
    refits = False
    binary_label = False
    subject = "content"  # the task, in errors
    table = "content_posts"  # the warehouse table the set is read from

    def models(self):
        """The module of the task's text models, loaded when first needed."""
        return _content()

    def read(self, settings, task, window) -> TrainingSet:
        return self.models().content_set(settings, task, window)

    def data(self, ts, seed: int):
        """What each trial's `fit` takes, built once per run."""
        return self.models().ContentData.of(ts, seed)

    def candidates(self, task: Task) -> tuple[str, ...]:
        return task.families

    def build(
        self, settings, task, window=ALL_DATA, rebuild=False, progress=None, columns=None
    ) -> StoredSet:
        """Read afresh every time (text is not stored as a set): `rebuild` changes nothing."""
        ts = self.read(settings, task, window)
        return StoredSet(ts, (settings.warehouse_dir / self.table).resolve(), reused=False)

    def objective(self, ts, families, run_id, selection):
        return self.models().objective(ts, self.data(ts, selection.seed), families, run_id)

    def best_model(self, ts, objective, best, study=None):
        if objective.best is None or objective.best[1] != best.number:
            raise TaskError(
                f"{ts.task.name}: the best trial's model was not kept; nothing registered"
            )
        return objective.best[2]

    def model_input(self, ts, frame: pd.DataFrame) -> pd.DataFrame:
        return frame[self.models().INPUTS].reset_index(drop=True)

    def score(self, ts, frame, pred, threshold=None) -> dict[str, float]:
        return self.models().score(frame, pred)

    def quality(self, y, pred) -> dict[str, float]:
        raise TaskError(f"{self.subject}: answers are not monitored")

    def test_extras(self, ts, model, pred) -> dict[str, float]:
        """The simulator's answer on the test rows, as `oracle_<metric>`."""
        oracle = self.models().oracle_scores(ts.part("test"))
        return {f"oracle_{k}": v for k, v in oracle.items()}

    def log_extras(self, ts, model, study, test_metrics) -> None:
        self.models().log_extras(ts, model)

    def log_model(self, model, example, family) -> None:
        self.models().log_model(model, example, family)

    def evaluate_extras(self, ts, model, predicted) -> dict[str, object]:
        return self.models().evaluate_extras(ts, model, predicted)


TEXT = TextTrainer()
