"""MLflow: experiment per task, a nested run per Optuna trial, lineage and plots on the parent."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import optuna
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from configs.settings import Settings
from ingestion.warehouse import ensure_database, retry_on_race
from training.dataset import TrainingSet


def use_tracking(settings: Settings) -> MlflowClient:
    """Point MLflow at the profile's backend; never at the working directory by accident."""
    settings.root.mkdir(parents=True, exist_ok=True)
    if settings.mlflow.backend == "postgres":
        ensure_database(settings.postgres.companion("mlflow"))
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)

    def connect() -> MlflowClient:
        client = MlflowClient()  # the first client on a fresh database creates the schema
        client.search_experiments(max_results=1)
        return client

    return retry_on_race(connect)


def experiment_for(settings: Settings, task_name: str) -> str:
    name = f"{settings.mlflow.experiment_prefix}-{task_name}"

    def ensure() -> None:
        if mlflow.get_experiment_by_name(name) is None:
            mlflow.create_experiment(
                name, artifact_location=f"{settings.mlflow_artifact_root}/{name}"
            )

    retry_on_race(ensure)
    mlflow.set_experiment(name)
    return name


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def log_lineage(ts: TrainingSet, study: optuna.Study, features: list[str]) -> None:
    mlflow.set_tags(
        {
            "smap.task": ts.task.name,
            "smap.feature_service": ts.task.feature_service,
            "smap.data_fingerprint": ts.fingerprint,
            "smap.optuna_study": study.study_name,
            "smap.git_commit": git_commit(),
        }
    )
    mlflow.log_params(
        {
            "feature_service": ts.task.feature_service,
            "data_fingerprint": ts.fingerprint,
            "rows_train": len(ts.split.train),
            "rows_validation": len(ts.split.validation),
            "rows_test": len(ts.split.test),
            **{f"window_{k}": v for k, v in ts.window.items()},
        }
    )
    mlflow.log_dict(
        {"feature_service": ts.task.feature_service, "features": features}, "lineage/features.json"
    )
    mlflow.log_dict(ts.window | {"fingerprint": ts.fingerprint}, "lineage/data_window.json")


class TrialLogger:
    """Optuna callback: one nested MLflow run per finished trial (params, curve, state)."""

    def __init__(self, client: MlflowClient, parent_run_id: str, experiment_id: str):
        self.client, self.parent, self.experiment_id = client, parent_run_id, experiment_id

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        run = self.client.create_run(
            self.experiment_id,
            run_name=f"trial-{trial.number}",
            tags={
                "mlflow.parentRunId": self.parent,
                "smap.trial_state": trial.state.name,
                "smap.optuna_study": study.study_name,
            },
        )
        stamp = int((trial.datetime_complete or trial.datetime_start).timestamp() * 1000)
        metrics = [
            Metric("intermediate", float(v), stamp, int(step))
            for step, v in trial.intermediate_values.items()
            if np.isfinite(v)
        ]
        if trial.value is not None:
            metrics.append(Metric("validation_value", float(trial.value), stamp, 0))
        metrics += [
            Metric(k, float(v), stamp, 0)
            for k, v in trial.user_attrs.items()
            if isinstance(v, float) and np.isfinite(v)
        ]
        params = [Param(k, str(v)) for k, v in trial.params.items()]
        params.append(Param("trial_number", str(trial.number)))
        tags = [RunTag("smap.trial_id", str(trial._trial_id))]
        self.client.log_batch(run.info.run_id, metrics=metrics, params=params, tags=tags)
        status = "FINISHED" if trial.state == optuna.trial.TrialState.COMPLETE else "KILLED"
        self.client.set_terminated(run.info.run_id, status=status)


def log_plots(
    study: optuna.Study,
    names: list[str],
    importances: np.ndarray | None,
    y_true: np.ndarray,
    pred: np.ndarray,
    kind: str,
) -> None:
    """Feature importance, residuals or calibration, and Optuna's history / importances."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        if importances is not None and len(importances) == len(names):
            order = np.argsort(importances)[-20:]
            fig, ax = plt.subplots(figsize=(7, 6))
            ax.barh([names[i] for i in order], importances[order])
            ax.set_title("feature importance")
            fig.tight_layout()
            fig.savefig(out / "feature_importance.png")
            plt.close(fig)
        fig, ax = plt.subplots(figsize=(6, 5))
        if kind == "classification":
            bins = np.clip((pred * 10).astype(int), 0, 9)
            observed = [
                y_true[bins == b].mean() if (bins == b).any() else np.nan for b in range(10)
            ]
            ax.plot(np.arange(10) / 10 + 0.05, observed, marker="o")
            ax.plot([0, 1], [0, 1], linestyle="--")
            ax.set_title("calibration (test)")
        else:
            ax.scatter(pred, y_true - pred, s=3, alpha=0.3)
            ax.axhline(0, color="k")
            ax.set_title("residuals (test)")
        fig.savefig(out / ("calibration.png" if kind == "classification" else "residuals.png"))
        plt.close(fig)
        completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if completed:
            from optuna.visualization.matplotlib import (
                plot_optimization_history,
                plot_param_importances,
            )

            plot_optimization_history(study).figure.savefig(out / "optuna_history.png")
            if len(completed) >= 2:
                try:
                    plot_param_importances(study).figure.savefig(
                        out / "optuna_param_importances.png"
                    )
                except (RuntimeError, ValueError):
                    pass  # importances need at least two distinct completed configurations
            plt.close("all")
        mlflow.log_artifacts(str(out), "plots")


def log_json(data: dict, path: str) -> None:
    mlflow.log_text(json.dumps(data, indent=2, default=str), path)
