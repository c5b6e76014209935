"""`smap train <task>`: Feast training set, Optuna search, MLflow logging, registry, gate."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import version as pkg_version

import mlflow
import numpy as np
import optuna

from configs.settings import Settings
from training.dataset import TrainingSet, build_training_set
from training.metrics import best_f1_threshold
from training.models import SCALED_FAMILIES, fit
from training.packaging import SmapModel, input_frame
from training.registry import Decision, promote
from training.search import (
    Objective,
    open_study,
    prepare,
    score,
    study_name,
    study_storage,
    tune,
)
from training.tasks import Task, TaskError, get_task
from training.tracking import (
    TrialLogger,
    experiment_for,
    log_json,
    log_lineage,
    log_plots,
    use_tracking,
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
    family = best.params["family"]
    params = {k.split(".", 1)[1]: v for k, v in best.params.items() if k.startswith(family + ".")}
    scaled = family in SCALED_FAMILIES
    fitted = fit(family, params, prepared.data[scaled], lambda step, loss: None)
    model = SmapModel(prepared.encoders[scaled], fitted, ts.task.kind, ts.features)
    if ts.task.kind == "classification":
        val = ts.part("validation")
        model.threshold, _ = best_f1_threshold(
            val.target.to_numpy(),
            model.predict_frame(input_frame(val, ts.features, ts.categorical)),
        )
    return model


def holdout_scorer(ts: TrainingSet):
    return lambda frame, pred: score(ts, frame, pred)


def train(
    settings: Settings,
    task_name: str,
    trials: int | None = None,
    timeout: float | None = None,
    run_promotion: bool = True,
    families: tuple[str, ...] | None = None,
    progress=None,
) -> TrainResult:
    """Tune, log, register and gate one task; `progress(done, total)` follows the Feast join."""
    task: Task = get_task(task_name)
    if task.kind == "clustering":
        raise TaskError(f"{task.name}: use `smap segment` (clustering has no Optuna target)")
    chosen = families or settings.training.families or task.families
    unknown = [f for f in chosen if f not in task.families]
    if unknown:
        raise TaskError(
            f"families: {', '.join(unknown)} not candidates for {task.name} "
            f"(choose from {', '.join(task.families)})"
        )
    client = use_tracking(settings)
    ts = build_training_set(settings, task, progress=progress)
    seed = settings.training.seed
    prepared = prepare(ts, seed)
    study = open_study(
        study_storage(settings),
        study_name(settings.optuna.study_prefix, task.name, task.feature_service),
        task.direction,
        seed,
    )
    experiment_for(settings, task.name)
    with mlflow.start_run(run_name=f"train-{task.name}") as run:
        log_lineage(ts, study, ts.features)
        tune(
            study,
            Objective(ts, prepared, tuple(chosen), task.direction),
            trials or settings.training.trials,
            timeout or settings.training.timeout_seconds,
            callbacks=[TrialLogger(client, run.info.run_id, run.info.experiment_id)],
        )
        completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if not completed:
            raise TaskError(f"{task.name}: no trial completed; nothing to register")
        best = study.best_trial
        model = refit_best(ts, prepared, best)
        test = ts.part("test")
        test_input = input_frame(test, ts.features, ts.categorical)
        pred = model.predict_frame(test_input)
        test_metrics = score(ts, test, pred, model.threshold)
        mlflow.log_metrics({f"test_{k}": v for k, v in test_metrics.items() if np.isfinite(v)})
        mlflow.log_metric(f"validation_{task.metric}", best.value)
        mlflow.log_params(
            {
                "best_family": best.params["family"],
                "best_trial": best.number,
                "trials_in_study": len(study.trials),
                "seed": seed,
            }
        )
        mlflow.set_tags(
            {"smap.best_trial_id": str(best._trial_id), "smap.best_trial_number": str(best.number)}
        )
        log_json(best.params, "best_params.json")
        example = test_input.head(5)
        mlflow.pyfunc.log_model(
            name="model",
            python_model=model,
            signature=mlflow.models.infer_signature(example, model.predict_frame(example)),
            input_example=example,
            pip_requirements=requirements(best.params["family"]),
        )
        log_plots(
            study,
            model.encoder.names,
            model.fitted.importances(len(model.encoder.names)),
            test.target.to_numpy(),
            pred,
            task.kind,
        )
        run_id = run.info.run_id
    registered = mlflow.register_model(f"runs:/{run_id}/model", task.name)
    version = int(registered.version)
    client.set_model_version_tag(task.name, str(version), "smap.data_fingerprint", ts.fingerprint)
    client.set_model_version_tag(
        task.name, str(version), "smap.feature_service", task.feature_service
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


def promote_version(settings: Settings, task_name: str, version: int | None = None) -> Decision:
    """Run the champion gate for `version` (default: the newest) on the current holdout."""
    from ingestion.warehouse import open_warehouse

    task = get_task(task_name)
    client = use_tracking(settings)
    versions = [int(v.version) for v in client.search_model_versions(f"name='{task.name}'")]
    if not versions:
        raise TaskError(f"{task.name}: no registered versions (run `smap train {task.name}`)")
    chosen = version or max(versions)
    if chosen not in versions:
        raise TaskError(f"version: {task.name} has no version {chosen}")
    ts = build_training_set(settings, task)
    return promote(
        client,
        open_warehouse(settings),
        task,
        chosen,
        ts.part("test"),
        holdout_scorer(ts),
        settings.training.promote_margin,
    )
