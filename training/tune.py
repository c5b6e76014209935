"""Stage: tune. Trials of the task's study on a stored training set, the best of this run
refitted and logged to MLflow as the run's model, with its test scores and lineage.

It logs into the MLflow run the caller opened (`training_run`), so the pipeline can register
and gate inside the same run: a worker killed at any point leaves a RUNNING run (and at
most a pending version), which the next worker marks failed (`reap_orphaned_runs`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import mlflow
import numpy as np
import optuna
from mlflow.tracking import MlflowClient

from configs.settings import Settings
from training import tags as tag
from training.descriptions import experiment_note
from training.engines import require_offered, start_engines
from training.errors import TaskError
from training.search import (
    FAMILY,
    GRACE_SECONDS,
    best_of_run,
    open_study,
    run_trials,
    study_name,
    study_storage,
)
from training.search import tune as run_study
from training.snapshot import StoredSet, log_training_set
from training.task import Task
from training.tracking import (
    StaleTrialReporter,
    TrialLogger,
    experiment_for,
    log_json,
    log_lineage,
    reap_orphaned_runs,
    use_tracking,
    worker_tags,
)

if TYPE_CHECKING:
    from training.trainers import Untrainable


@dataclass(frozen=True)
class Tuned:
    """What a tune stage leaves in its run: the model at `runs:/<run_id>/model`."""

    task: str
    run_id: str
    study: str
    best_trial: int
    trials_in_study: int
    validation_value: float
    family: str
    test_metrics: dict[str, float]
    fingerprint: str

    @property
    def model_uri(self) -> str:
        return f"runs:/{self.run_id}/model"


def check_budget(trials: int | None, timeout: float | None) -> None:
    """Refuse a trial count or timeout that would run nothing (or fall back silently)."""
    if trials is not None and trials < 1:
        raise TaskError(f"--trials: must be at least 1 (got {trials})")
    if timeout is not None and not timeout > 0:
        raise TaskError(f"--timeout: must be more than 0 seconds (got {timeout})")


def choose_families(settings: Settings, task: Task, families: tuple[str, ...] | None):
    """The families this run searches: asked for, else configured, else the task's own."""
    if not task.trainer.trainable:
        raise cast("Untrainable", task.trainer).refuse(task)
    candidates = task.trainer.candidates(task)
    chosen = tuple(families or settings.training.families or task.families)
    unknown = [f for f in chosen if f not in candidates]
    if unknown:
        raise TaskError(
            f"families: {', '.join(unknown)} not candidates for {task.name} "
            f"(choose from {', '.join(candidates)})"
        )
    require_offered(settings, chosen)
    return chosen


@contextmanager
def training_run(settings: Settings, task: Task) -> Iterator[tuple[MlflowClient, str, str]]:
    """The parent MLflow run of one `smap train` worker: (client, experiment id, run id).
    Runs of workers on this host that died are failed first."""
    client = use_tracking(settings)
    experiment = mlflow.get_experiment_by_name(
        experiment_for(settings, task.name, experiment_note(task))
    )
    assert experiment is not None  # experiment_for created it
    experiment_id = experiment.experiment_id
    reap_orphaned_runs(client, experiment_id)
    with mlflow.start_run(run_name=f"train-{task.name}", tags=worker_tags()) as run:
        yield client, experiment_id, run.info.run_id


def open_task_study(settings: Settings, task: Task, client: MlflowClient, experiment_id: str):
    """The task's study in the profile's storage; a dead worker's stale trial fails its run."""
    return open_study(
        study_storage(settings),
        study_name(settings.optuna.study_prefix, task.name, task.feature_service),
        task.direction,
        settings.training.seed,
        on_stale=StaleTrialReporter(client, experiment_id, GRACE_SECONDS),
    )


def tune(
    settings: Settings,
    task: Task,
    stored: StoredSet,
    run: tuple[MlflowClient, str, str],
    families: tuple[str, ...],
    trials: int | None = None,
    timeout: float | None = None,
) -> Tuned:
    """Add trials to the task's study, refit this run's best and log it as the run's model."""
    client, experiment_id, run_id = run
    trainer, ts = task.trainer, stored.training_set
    study = open_task_study(settings, task, client, experiment_id)
    log_lineage(ts, study, ts.features)
    log_training_set(stored)
    start_engines(settings, families)
    objective = trainer.objective(ts, families, run_id, settings.training)
    run_study(
        study,
        objective,
        trials or settings.training.trials,
        timeout or settings.training.timeout_seconds,
        callbacks=[TrialLogger(client, run_id, experiment_id)],
    )
    best = best_of_run(study, run_id, task.name)
    return log_best(settings, task, stored, objective, study, best, run_id)


def log_best(
    settings: Settings,
    task: Task,
    stored: StoredSet,
    objective,
    study: optuna.Study,
    best: optuna.trial.FrozenTrial,
    run_id: str,
) -> Tuned:
    """Refit `best` on this run's data and log it, its test scores and extras as the run's
    model (the caller's active MLflow run)."""
    assert best.value is not None  # a complete trial
    trainer, ts = task.trainer, stored.training_set
    model = trainer.best_model(ts, objective, best, study)
    # what the run keeps may be an anchor or a blend rather than its best trial (selection.py)
    selection = getattr(model, "selection", None)
    chosen = selection["chosen"] if selection else {}
    family = str(chosen.get("family", best.user_attrs[FAMILY]))
    value = float(chosen.get("value", best.value))
    test_input = trainer.model_input(ts, ts.part("test"))
    pred = model.predict_frame(test_input)
    test_metrics = trainer.score(ts, ts.part("test"), pred, model.threshold)
    test_metrics.update(trainer.test_extras(ts, model, pred))
    mlflow.log_metrics({f"test_{k}": v for k, v in test_metrics.items() if np.isfinite(v)})
    mlflow.log_metric(f"validation_{task.metric}", value)
    if selection:
        mlflow.log_metric(f"validation_{task.metric}_spread", float(chosen["spread"]))
        mlflow.log_metric("validation_folds", len(chosen["folds"]))
        log_json(selection, "selection.json")
    mlflow.log_params(
        {
            "best_family": family,
            "best_trial": best.number,
            "trials_in_study": len(study.trials),
            "trials_in_run": len(run_trials(study, run_id)),
            "seed": settings.training.seed,
        }
    )
    mlflow.set_tags({tag.BEST_TRIAL_ID: str(best._trial_id), tag.BEST_TRIAL: str(best.number)})
    log_json(
        {"family": family, "members": chosen["members"]}
        if selection
        else {"family": family, **best.params},
        "best_params.json",
    )
    mlflow.set_tag(tag.CHOSEN, str(chosen.get("label", f"trial {best.number}")))
    trainer.log_extras(ts, model, study, test_metrics)
    trainer.log_model(model, test_input.head(5).reset_index(drop=True), family)
    return Tuned(
        task.name,
        run_id,
        study.study_name,
        best.number,
        len(study.trials),
        value,
        family,
        test_metrics,
        ts.fingerprint,
    )
