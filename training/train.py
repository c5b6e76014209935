"""`smap train <task>`: Feast training set, Optuna search, MLflow logging, registry, gate."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from importlib.metadata import version as pkg_version
from pathlib import Path

import mlflow
import numpy as np
import optuna

from configs.settings import Settings
from training.dataset import ALL_DATA, DataWindow, TrainingSet
from training.metrics import best_f1_threshold
from training.models import SCALED_FAMILIES, fit
from training.packaging import (
    INTERVAL_LEVEL,
    SmapModel,
    forecast_intervals,
    input_frame,
    model_code,
)
from training.readiness import require_inputs
from training.reference import log_reference
from training.registry import Decision, promote
from training.search import (
    FAMILY,
    GRACE_SECONDS,
    Objective,
    best_of_run,
    open_study,
    prepare,
    run_trials,
    score,
    study_name,
    study_storage,
    tune,
)
from training.snapshot import StoredSet, log_training_set, training_set
from training.tasks import Task, TaskError, get_task
from training.tracking import (
    PENDING,
    READY,
    VERSION_STATE,
    StaleTrialReporter,
    TrialLogger,
    experiment_for,
    is_candidate,
    log_json,
    log_lineage,
    log_plots,
    reap_orphaned_runs,
    register_version,
    use_tracking,
    worker_tags,
)

BASE_REQUIREMENTS = ("mlflow", "numpy", "pandas", "scikit-learn", "xgboost", "lightgbm")


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


def requirements(family: str) -> list[str]:
    """Pinned pip requirements (skips MLflow's slow inference subprocess)."""
    keras_based = family in ("mlp", "lstm")
    names = list(BASE_REQUIREMENTS) + (["tensorflow-cpu", "keras"] if keras_based else [])
    return [f"{n}=={pkg_version(n)}" for n in names]


def refit_best(ts: TrainingSet, prepared, best: optuna.trial.FrozenTrial) -> SmapModel:
    family = best.user_attrs[FAMILY]
    params = {k.split(".", 1)[1]: v for k, v in best.params.items() if k.startswith(family + ".")}
    scaled = family in SCALED_FAMILIES
    fitted = fit(family, params, prepared.data[scaled], lambda step, loss: None)
    model = SmapModel(prepared.encoders[scaled], fitted, ts.task.kind, ts.features)
    if ts.task.kind == "forecast":  # intervals from residuals on rows the fit never saw
        val = ts.part("validation")
        pred = model.predict_frame(input_frame(val, ts.features, ts.categorical))
        model.intervals = forecast_intervals(val.target, pred, val.horizon, INTERVAL_LEVEL)
        model.interval_level = INTERVAL_LEVEL
    if ts.task.kind == "classification":
        val = ts.part("validation")
        model.threshold, _ = best_f1_threshold(
            val.target.to_numpy(),
            model.predict_frame(input_frame(val, ts.features, ts.categorical)),
        )
    return model


def holdout_scorer(ts: TrainingSet):
    return lambda frame, pred: score(ts, frame, pred)


def check_budget(trials: int | None, timeout: float | None) -> None:
    """Refuse a trial count or timeout that would run nothing (or fall back silently)."""
    if trials is not None and trials < 1:
        raise TaskError(f"--trials: must be at least 1 (got {trials})")
    if timeout is not None and not timeout > 0:
        raise TaskError(f"--timeout: must be more than 0 seconds (got {timeout})")


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
    """Tune, log, register and gate one task; `progress(done, total)` follows the Feast join.

    The version registered is the best trial of this run among `families`, fitted on this
    run's training set (the labelled rows of `window`); earlier trials of the study only
    guide the sampler. The gate scores champion and challenger on this set's test part.
    """
    check_budget(trials, timeout)
    task: Task = get_task(task_name)
    if task.kind == "clustering":
        raise TaskError(f"{task.name}: use `smap segment` (clustering has no Optuna target)")
    if task.kind == "multiclass":  # text from the warehouse, not a Feast training set
        from training.content import train_content

        return train_content(settings, trials, timeout, run_promotion, families, window)
    chosen = families or settings.training.families or task.families
    unknown = [f for f in chosen if f not in task.families]
    if unknown:
        raise TaskError(
            f"families: {', '.join(unknown)} not candidates for {task.name} "
            f"(choose from {', '.join(task.families)})"
        )
    require_inputs(settings, task.name)  # before any slow work: trend without hashtags
    client = use_tracking(settings)
    stored = training_set(settings, task, rebuild=rebuild, progress=progress, window=window)
    ts = stored.training_set
    seed = settings.training.seed
    prepared = prepare(ts, seed)
    experiment_id = mlflow.get_experiment_by_name(experiment_for(settings, task.name)).experiment_id
    reap_orphaned_runs(client, experiment_id)
    study = open_study(
        study_storage(settings),
        study_name(settings.optuna.study_prefix, task.name, task.feature_service),
        task.direction,
        seed,
        on_stale=StaleTrialReporter(client, experiment_id, GRACE_SECONDS),
    )
    with mlflow.start_run(run_name=f"train-{task.name}", tags=worker_tags()) as run:
        run_id = run.info.run_id
        log_lineage(ts, study, ts.features)
        log_training_set(stored)
        tune(
            study,
            Objective(ts, prepared, tuple(chosen), task.direction, run_id),
            trials or settings.training.trials,
            timeout or settings.training.timeout_seconds,
            callbacks=[TrialLogger(client, run_id, experiment_id)],
        )
        best = best_of_run(study, run_id, task.name)
        family = best.user_attrs[FAMILY]
        model = refit_best(ts, prepared, best)
        test = ts.part("test")
        test_input = input_frame(test, ts.features, ts.categorical)
        pred = model.predict_frame(test_input)
        test_metrics = score(ts, test, pred, model.threshold)
        if model.intervals:  # how often the test target falls inside its interval
            lower, upper = model.bounds(pred, test.horizon.to_numpy())
            y = test.target.to_numpy()
            test_metrics["interval_coverage"] = float(np.mean((y >= lower) & (y <= upper)))
            log_json(
                {"level": model.interval_level, "log1p_residual_quantiles": model.intervals},
                "intervals.json",
            )
        mlflow.log_metrics({f"test_{k}": v for k, v in test_metrics.items() if np.isfinite(v)})
        mlflow.log_metric(f"validation_{task.metric}", best.value)
        everything = input_frame(ts.frame, ts.features, ts.categorical)
        log_reference(
            task,
            everything,
            ts.features,
            model.predict_frame(everything),
            ts.frame.target,
            test_metrics.get(task.metric, float("nan")),
            ts.window,
        )
        mlflow.log_params(
            {
                "best_family": family,
                "best_trial": best.number,
                "trials_in_study": len(study.trials),
                "trials_in_run": len(run_trials(study, run_id)),
                "seed": seed,
            }
        )
        mlflow.set_tags(
            {"smap.best_trial_id": str(best._trial_id), "smap.best_trial_number": str(best.number)}
        )
        log_json({"family": family, **best.params}, "best_params.json")
        example = test_input.head(5)
        with tempfile.TemporaryDirectory() as code:
            mlflow.pyfunc.log_model(
                name="model",
                python_model=model,
                signature=mlflow.models.infer_signature(example, model.predict_frame(example)),
                input_example=example,
                pip_requirements=requirements(family),
                code_paths=model_code(Path(code)),
            )
        log_plots(
            study,
            model.encoder.names,
            model.fitted.importances(len(model.encoder.names)),
            test.target.to_numpy(),
            pred,
            task.kind,
        )
        # registered and gated inside the run: a worker killed from here on leaves a RUNNING
        # run and a pending version, which the next worker marks failed and abandoned
        version = register_version(
            f"runs:/{run_id}/model",
            task.name,
            tags={
                VERSION_STATE: PENDING,
                "smap.data_fingerprint": ts.fingerprint,
                "smap.feature_service": task.feature_service,
            },
        )
        decision = None
        if run_promotion:
            from ingestion.warehouse import open_warehouse

            decision = promote(
                client,
                open_warehouse(settings),
                task,
                version,
                test,
                holdout_scorer(ts),
                settings.training.promote_margin,
            )
        client.set_model_version_tag(task.name, str(version), VERSION_STATE, READY)
    return TrainResult(
        task.name,
        run_id,
        f"models:/{task.name}/{version}",
        version,
        study.study_name,
        best.number,
        len(study.trials),
        float(best.value),
        test_metrics,
        decision,
    )


def promote_version(
    settings: Settings,
    task_name: str,
    version: int | None = None,
    rebuild: bool = False,
    stored: StoredSet | None = None,
) -> Decision:
    """Run the champion gate for `version` (default: the newest) on the current holdout,
    read from the stored training set of the current data (`stored`, or looked up)."""
    from ingestion.warehouse import open_warehouse

    task = get_task(task_name)
    if task.kind == "multiclass":
        from training.content import promote_content

        return promote_content(settings, version)
    client = use_tracking(settings)
    found = client.search_model_versions(f"name='{task.name}'")
    versions = [int(v.version) for v in found]
    candidates = [int(v.version) for v in found if is_candidate(v)]
    if not candidates and version is None:
        raise TaskError(f"{task.name}: no registered versions (run `smap train {task.name}`)")
    chosen = version or max(candidates)
    if chosen not in versions:
        raise TaskError(f"version: {task.name} has no version {chosen}")
    if chosen not in candidates:
        raise TaskError(f"version: {task.name} version {chosen} did not finish training")
    stored = stored or training_set(settings, task, rebuild=rebuild)
    ts = stored.training_set
    decision = promote(
        client,
        open_warehouse(settings),
        task,
        chosen,
        ts.part("test"),
        holdout_scorer(ts),
        settings.training.promote_margin,
    )
    return decision
