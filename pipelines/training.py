"""`smap train` and the drift retrain as one composition of the training stages:
build the training set -> tune -> register -> gate."""

from __future__ import annotations

from dataclasses import dataclass

import mlflow

from configs.settings import Settings
from ingestion.spark import spark_step
from ingestion.warehouse import open_warehouse
from monitoring.trigger import retrain_window
from training.dataset import ALL_DATA, DataWindow
from training.engines import at_scale, start_engines
from training.errors import TaskError
from training.gate import gate, mark_ready, register
from training.readiness import require_inputs
from training.registry import Decision
from training.snapshot import StoredSet, log_training_set
from training.task import Task
from training.tasks import get_task
from training.tracking import TrialLogger, log_lineage, use_tracking
from training.tune import (
    Tuned,
    check_budget,
    choose_families,
    log_best,
    open_task_study,
    training_run,
    tune,
)
from training.workers import (
    best_of_round,
    finish_round,
    join_round,
    mark_gated,
    require_refits,
    run_round,
)


@dataclass(frozen=True)
class TrainResult:
    task: str
    run_id: str
    model_uri: str
    version: int
    study: str
    best_trial: int
    trials_in_study: int
    validation_value: float
    test_metrics: dict[str, float]
    decision: Decision | None


def train(
    settings: Settings,
    task_name: str,
    trials: int | None = None,
    timeout: float | None = None,
    run_promotion: bool = True,
    families: tuple[str, ...] | None = None,
    progress=None,
    rebuild: bool = False,
    window: DataWindow = ALL_DATA,
) -> TrainResult:
    """Tune, register and gate one task on the labelled rows of `window`;
    `progress(done, total)` follows the Feast join.

    The version registered is the best trial of this run among `families`, fitted on this
    run's training set; earlier trials of the study only guide the sampler. The gate scores
    champion and challenger on this set's test part.
    """
    check_budget(trials, timeout)
    task = get_task(task_name)
    chosen = choose_families(settings, task, families)
    require_inputs(settings, task.name)  # before any slow work: trend without hashtags
    use_tracking(settings)  # this profile's registry from here on, whatever fails next
    fallback = getattr(task.trainer, "fallback", None)  # a model needing no labels (VADER)
    crowned = fallback(settings, task) if fallback is not None and run_promotion else None
    try:
        with spark_step():  # the set is built (Feast's Spark join ends its application)
            stored = task.trainer.build(
                settings, task, window=window, rebuild=rebuild, progress=progress
            )
    except TaskError:
        if crowned is None:
            raise
        run_id = mlflow.MlflowClient().get_model_version(task.name, str(crowned.version)).run_id
        return TrainResult(
            task.name, run_id or "", f"models:/{task.name}/{crowned.version}", crowned.version,
            "", -1, 0, float("nan"), {}, crowned,
        )  # fmt: skip
    chosen = scaled_families(settings, stored, chosen, families)
    with spark_step(), training_run(settings, task) as run:
        tuned = tune(settings, task, stored, run, chosen, trials, timeout)
        version = register(task, tuned, stored.training_set.window)
        return gate_registered(settings, run[0], task, stored, tuned, version, run_promotion)


def gate_registered(
    settings: Settings,
    client,
    task: Task,
    stored: StoredSet,
    tuned: Tuned,
    version: int,
    run_promotion: bool,
) -> TrainResult:
    """Gate the registered `version` against the champion (unless `run_promotion` is off),
    mark it ready, and say what the run left."""
    decision = None
    if run_promotion:
        decision = gate(settings, client, open_warehouse(settings), task, version, stored)
    mark_ready(client, task, version)
    return TrainResult(
        task.name,
        tuned.run_id,
        f"models:/{task.name}/{version}",
        version,
        tuned.study,
        tuned.best_trial,
        tuned.trials_in_study,
        tuned.validation_value,
        tuned.test_metrics,
        decision,
    )


def scaled_families(
    settings: Settings, stored: StoredSet, chosen: tuple[str, ...], asked: tuple[str, ...] | None
) -> tuple[str, ...]:
    """Families named with `--families` as they are; the default ones swapped for their Spark
    counterparts on a training set past `training.spark_min_rows`, where the profile offers
    Spark."""
    if asked:
        return chosen
    return at_scale(settings, chosen, len(stored.training_set.split.train))


@dataclass(frozen=True)
class WorkerResult:
    """One worker of a round: the trials it ran and, for the one that gated, the result."""

    task: str
    run_id: str
    study: str
    budget: int
    first_trial: int
    trials_run: tuple[int, ...]
    gated: TrainResult | None
    reason: str  # why this worker did not gate (who does), empty when it gated


def train_worker(
    settings: Settings,
    task_name: str,
    trials: int | None = None,
    timeout: float | None = None,
    run_promotion: bool = True,
    families: tuple[str, ...] | None = None,
    progress=None,
    rebuild: bool = False,
) -> WorkerResult:
    """`smap train TASK --worker`: join the task's study round, run trials until its budget
    (`trials`, recorded by the round's first worker) is spent; the last worker to finish refits
    the round's best trial, registers and gates it (workers.py says how only one does)."""
    check_budget(trials, timeout)
    task = get_task(task_name)
    chosen = choose_families(settings, task, families)
    require_refits(task)
    require_inputs(settings, task.name)
    use_tracking(settings)
    with spark_step():
        stored = task.trainer.build(settings, task, rebuild=rebuild, progress=progress)
    chosen = scaled_families(settings, stored, chosen, families)
    ts = stored.training_set
    with spark_step(), training_run(settings, task) as run:
        client, experiment_id, run_id = run
        study = open_task_study(settings, task, client, experiment_id)
        round_ = join_round(settings, study, ts.fingerprint, trials)
        mlflow.set_tags(round_.tags())
        log_lineage(ts, study, ts.features)
        log_training_set(stored)
        start_engines(settings, chosen)
        objective = task.trainer.objective(ts, chosen, run_id, settings.training)
        mine = run_round(
            settings,
            study,
            round_,
            objective,
            timeout or settings.training.timeout_seconds,
            callbacks=[TrialLogger(client, run_id, experiment_id)],
        )
        result = None
        with finish_round(settings, study, round_) as turn:
            if turn.gates:
                best = best_of_round(study, round_, task.name)
                tuned = log_best(settings, task, stored, objective, study, best, run_id)
                version = register(task, tuned)
                result = gate_registered(
                    settings, client, task, stored, tuned, version, run_promotion
                )
                mark_gated(study, round_, run_id, version)
    return WorkerResult(
        task.name,
        run_id,
        study.study_name,
        round_.budget,
        round_.first_trial,
        tuple(mine),
        result,
        turn.reason,
    )


def retrain(settings: Settings, warehouse, task_name: str, progress=None) -> dict:
    """The drift retrain: the same composition on the newest labelled days, with the
    retrain's trials and families; returns what happened, for the check's record."""
    window = retrain_window(settings, warehouse, task_name)
    m = settings.monitoring
    candidates = get_task(task_name).families
    families = tuple(f for f in m.retrain_families or () if f in candidates) or None
    result = train(
        settings,
        task_name,
        trials=m.retrain_trials,
        families=families,
        window=window,
        progress=progress,
    )
    decision = result.decision
    return {
        "since": str(window.since),
        "version": result.version,
        "run_id": result.run_id,
        "decision": decision.decision if decision else "not_gated",
        "champion_after": decision.champion_after if decision else None,
        "challenger_value": decision.challenger_value if decision else None,
        "champion_value": decision.champion_value if decision else None,
        "reason": decision.reason if decision else "",
    }
