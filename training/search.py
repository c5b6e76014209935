"""Optuna search over model families and their hyperparameters, with pruning.

The study lives in the profile's storage under a stable name, so a second `smap train`
continues it and several workers on one PostgreSQL storage share it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import optuna

from configs.settings import Settings
from ingestion.warehouse import ensure_database, retry_on_race
from training.dataset import TrainingSet
from training.metrics import classification_report, forecast_report, regression_report
from training.models import SCALED_FAMILIES, Data, FeatureEncoder, fit, suggest
from training.packaging import from_training_scale, input_frame, training_target


def study_name(prefix: str, task_name: str, feature_service: str) -> str:
    return f"{prefix}-{task_name}-{feature_service}"


def score(ts: TrainingSet, part_frame, pred: np.ndarray, threshold: float | None = None) -> dict:
    """All metrics of the task on one part of the data; the headline is `ts.task.metric`."""
    kind, y = ts.task.kind, part_frame.target.to_numpy()
    if kind == "regression":
        return regression_report(y, pred)
    if kind == "classification":
        return classification_report(y, pred, threshold)
    return forecast_report(y, pred, part_frame.seasonal_naive.to_numpy(), part_frame.horizon)


@dataclass
class Prepared:
    """Encoders and matrices computed once per process and shared by all trials."""

    encoders: dict[bool, FeatureEncoder]
    data: dict[bool, Data]


def history_columns(names: list[str]) -> tuple[int, ...]:
    """Encoded positions of the `lag_k` columns, oldest (largest k) first."""
    lags = [
        (int(n.split("_")[1]), i)
        for i, n in enumerate(names)
        if n.startswith("lag_") and n.split("_")[1].isdigit()
    ]
    return tuple(i for _, i in sorted(lags, reverse=True))


def prepare(ts: TrainingSet, seed: int) -> Prepared:
    train, val = ts.part("train"), ts.part("validation")
    fit_kind = "regression" if ts.task.kind == "forecast" else ts.task.kind
    encoders, data = {}, {}
    for scaled in (False, True):
        enc = FeatureEncoder.fit(
            input_frame(train, ts.features, ts.categorical),
            ts.features,
            ts.categorical,
            scale=scaled,
        )
        encoders[scaled] = enc
        data[scaled] = Data(
            enc.transform(input_frame(train, ts.features, ts.categorical)),
            training_target(ts.task.kind, train),
            enc.transform(input_frame(val, ts.features, ts.categorical)),
            training_target(ts.task.kind, val),
            fit_kind,
            seed,
            history_columns(enc.names),
        )
    return Prepared(encoders, data)


class Objective:
    """Given its data once; each call fits one candidate and returns its validation metric."""

    def __init__(
        self, ts: TrainingSet, prepared: Prepared, families: tuple[str, ...], direction: str
    ):
        self.ts, self.prepared, self.families = ts, prepared, families
        self.sign = -1.0 if direction == "maximize" else 1.0

    def __call__(self, trial: optuna.Trial) -> float:
        family = trial.suggest_categorical("family", list(self.families))
        params = suggest(trial, family, self.ts.task.kind)
        data = self.prepared.data[family in SCALED_FAMILIES]

        def report(step: int, loss: float) -> None:
            trial.report(self.sign * loss, step)
            if trial.should_prune():
                raise optuna.TrialPruned()

        fitted = fit(family, params, data, report)
        validation = self.ts.part("validation")
        pred = from_training_scale(self.ts.task.kind, fitted.predict(data.x_val), validation)
        metrics = score(self.ts, self.ts.part("validation"), pred)
        for name, value in metrics.items():
            trial.set_user_attr(f"val_{name}", value)
        value = metrics[self.ts.task.metric]
        if not np.isfinite(value):
            raise optuna.TrialPruned(f"validation {self.ts.task.metric} is not finite")
        return value


def study_storage(settings: Settings) -> str:
    """The profile's Optuna storage URL, its PostgreSQL database created on first use."""
    if settings.optuna.storage == "postgres":
        ensure_database(settings.postgres.companion("optuna"))
    return settings.optuna_storage_url


def open_study(storage_url: str, name: str, direction: str, seed: int) -> optuna.Study:
    """Create or load the study; the sampler seed moves on with the study's history."""
    study = retry_on_race(
        lambda: optuna.create_study(
            study_name=name, storage=storage_url, direction=direction, load_if_exists=True
        )
    )
    offset = len(study.trials)
    study.sampler = optuna.samplers.TPESampler(seed=seed + offset, n_startup_trials=5)
    study.pruner = optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=1)
    return study


def tune(
    study: optuna.Study, objective: Objective, trials: int, timeout: float | None, callbacks=()
) -> optuna.Study:
    study.optimize(
        objective,
        n_trials=trials,
        timeout=timeout,
        callbacks=list(callbacks),
        catch=(ValueError, ArithmeticError),
    )
    return study
