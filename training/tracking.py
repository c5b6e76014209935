"""MLflow: experiment per task, a nested run per Optuna trial, lineage and plots on the parent."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import socket
import subprocess
import tempfile
from datetime import datetime
from pathlib import Path
from typing import cast

import mlflow
import numpy as np
import optuna
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from configs.errors import SmapError
from configs.settings import TRACKING_STORES, Settings
from ingestion.warehouse import ensure_server_database, process_alive, retry_on_race
from training import tags as tag
from training.dataset import TrainingSet


class TrackingUnreachable(SmapError, RuntimeError):
    """The profile's MLflow tracking backend cannot be reached or does not answer."""


def use_tracking(settings: Settings) -> MlflowClient:
    """Point MLflow at the profile's backend; never at the working directory by accident."""
    settings.root.mkdir(parents=True, exist_ok=True)
    ensure_server_database(TRACKING_STORES[settings.mlflow.backend].server_database(settings))
    uri = settings.mlflow_tracking_uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    # a tracking server that stops answering: MLflow reads these on every HTTP request
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(settings.mlflow.request_timeout_seconds)
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(settings.mlflow.request_max_retries)
    # over HTTP MLflow prints a "View run at" link per run on stdout, where --json output goes
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

    def connect() -> MlflowClient:
        client = MlflowClient()  # the first client on a fresh database creates the schema
        client.search_experiments(max_results=1)
        return client

    try:  # only a fresh database has a schema-creation race to retry
        return connect() if uri.startswith(("http://", "https://")) else retry_on_race(connect)
    except (MlflowException, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        message = f"MLflow at {_masked(uri)} is not reachable: {reason}"
        password = settings.postgres.password.get_secret_value()
        if password:
            message = message.replace(password, "***")
        raise TrackingUnreachable(message) from None


def _masked(uri: str) -> str:
    """The URI without its password, fit for an error line."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(uri).render_as_string(hide_password=True)
    except ArgumentError:
        return uri


def artifact_location(settings: Settings, experiment: str) -> str | None:
    """A new experiment's artifact folder; None leaves it to a tracking server's own store."""
    root = settings.mlflow_artifact_root
    return f"{root}/{experiment}" if root else None


def experiment_for(settings: Settings, task_name: str, note: str | None = None) -> str:
    """The task's experiment (created on first use), made active and labelled for the UI."""
    name = f"{settings.mlflow.experiment_prefix}-{task_name}"

    def ensure() -> None:
        if mlflow.get_experiment_by_name(name) is None:
            mlflow.create_experiment(name, artifact_location=artifact_location(settings, name))
            retire_empty_default(MlflowClient())

    retry_on_race(ensure)
    experiment = mlflow.set_experiment(name)
    label_experiment(MlflowClient(), experiment.experiment_id, note)
    return name


def label_experiment(client: MlflowClient, experiment_id: str, note: str | None) -> None:
    """Tag the experiment as model training, so MLflow 3's UI opens its model-training view
    rather than the GenAI one, and give it its description (`note`)."""
    wanted = {tag.EXPERIMENT_KIND: tag.MODEL_TRAINING} | ({tag.NOTE: note} if note else {})
    have = client.get_experiment(experiment_id).tags
    for key, value in wanted.items():
        if have.get(key) == value:
            continue  # labelled already: most runs write nothing
        try:
            client.set_experiment_tag(experiment_id, key, value)
        except MlflowException:
            # workers starting together: MLflow's SQL store inserts a new tag without an
            # upsert, so the second insert fails; the first one's label stands
            if client.get_experiment(experiment_id).tags.get(key) != value:
                raise


def retire_empty_default(client: MlflowClient) -> None:
    """MLflow's SQL store creates an experiment `Default` (id 0) in every new database, and
    recreates it if it is missing; smap logs nothing there. Once smap's own experiments exist,
    an empty Default is deleted through the public API (restorable, and no longer listed)."""
    from mlflow.entities import ViewType

    try:
        default = client.get_experiment("0")
    except MlflowException:
        return
    if default.name != "Default" or default.lifecycle_stage != "active":
        return
    if client.search_runs(["0"], max_results=1, run_view_type=ViewType.ALL):
        return
    try:
        client.delete_experiment("0")
    except MlflowException:
        pass  # another worker deleted it first: the outcome is the same


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
            tag.TASK: ts.task.name,
            tag.FEATURES: ts.task.feature_service,
            tag.DATA: ts.fingerprint,
            tag.STUDY: study.study_name,
            tag.COMMIT: git_commit(),
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
    """Optuna callback: one nested MLflow run per finished trial (params, curve, state, why)."""

    def __init__(self, client: MlflowClient, parent_run_id: str, experiment_id: str):
        self.client, self.parent, self.experiment_id = client, parent_run_id, experiment_id

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        log_trial(self.client, self.experiment_id, self.parent, study.study_name, trial)


TRIAL_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}


def log_trial(
    client: MlflowClient,
    experiment_id: str,
    parent_run_id: str,
    study_name: str,
    trial: optuna.trial.FrozenTrial,
    fail_reason: str | None = None,
) -> str:
    """A nested run for one finished trial under `parent_run_id`; FAILED runs say why."""
    reason = fail_reason or trial.user_attrs.get("fail_reason")
    tags = {
        "mlflow.parentRunId": parent_run_id,
        "smap.trial_state": trial.state.name,
        "smap.optuna_study": study_name,
        "smap.trial_id": str(trial._trial_id),
    }
    if reason:
        tags["smap.fail_reason"] = reason
    run = client.create_run(experiment_id, run_name=f"trial-{trial.number}", tags=tags)
    stamp = int(
        (trial.datetime_complete or trial.datetime_start or datetime.now()).timestamp() * 1000
    )
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
    if "family" in trial.user_attrs:
        params.append(Param("family", str(trial.user_attrs["family"])))
    client.log_batch(run.info.run_id, metrics=metrics, params=params)
    client.set_terminated(run.info.run_id, status=TRIAL_STATUS.get(trial.state.name, "KILLED"))
    return run.info.run_id


# a registered version moves from pending to ready only when its `smap train` run finished;
# a version left pending (the worker died) or abandoned is never taken as a candidate
VERSION_STATE = tag.STATE
PENDING, READY, ABANDONED = "pending", "ready", "abandoned"


def worker_tags() -> dict[str, str]:
    """Which process runs a parent run, so a later worker on this host can tell it died."""
    return {"smap.host": socket.gethostname(), "smap.pid": str(os.getpid())}


def fail_run(client: MlflowClient, run_id: str, reason: str) -> None:
    """Mark a dead worker's run FAILED with why, and its pending versions abandoned."""
    run = client.get_run(run_id)
    if run.info.status != "RUNNING":
        return
    client.set_tag(run_id, "smap.fail_reason", reason)
    client.set_terminated(run_id, status="FAILED")
    for version in client.search_model_versions(f"run_id='{run_id}'"):
        if tag.read(version.tags, VERSION_STATE) == PENDING:
            client.set_model_version_tag(version.name, version.version, VERSION_STATE, ABANDONED)


def reap_orphaned_runs(client: MlflowClient, experiment_id: str) -> list[str]:
    """Fail the RUNNING parent runs of workers on this host whose process is gone."""
    host = socket.gethostname()
    orphans = []
    for run in client.search_runs(
        [experiment_id],
        filter_string=f"attributes.status = 'RUNNING' and tags.`smap.host` = '{host}'",
    ):
        pid = run.data.tags.get("smap.pid", "")
        if pid.isdigit() and int(pid) != os.getpid() and not process_alive(int(pid)):
            fail_run(client, run.info.run_id, f"worker {host}:{pid} exited before finishing")
            orphans.append(run.info.run_id)
    return orphans


class StaleTrialReporter:
    """Heartbeat-stale trial callback: record the trial as a failed nested run and fail the
    dead worker's parent run (the worker may have been on another host)."""

    def __init__(self, client: MlflowClient, experiment_id: str, grace_seconds: int):
        self.client, self.experiment_id, self.grace = client, experiment_id, grace_seconds

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        parent = trial.user_attrs.get("smap.run_id")
        if not parent:
            return
        reason = f"worker stopped: no heartbeat for over {self.grace} s"
        log_trial(self.client, self.experiment_id, parent, study.study_name, trial, reason)
        fail_run(self.client, parent, reason)


def register_version(
    model_uri: str,
    name: str,
    tags: dict[str, str],
    description: str = "",
    model_description: str = "",
) -> int:
    """Register a logged model with the descriptions the registry shows; MLflow's notices,
    which it prints on stderr, go to the log."""
    notices = io.StringIO()
    with contextlib.redirect_stderr(notices):
        registered = mlflow.register_model(model_uri, name, tags=tags)
    for line in notices.getvalue().splitlines():
        logging.getLogger("mlflow.registry").info(line)
    client = MlflowClient()
    if model_description:
        client.update_registered_model(name, description=model_description)
    if description:
        client.update_model_version(name, registered.version, description=description)
    return int(registered.version)


def is_candidate(version) -> bool:
    """A version a gate may pick by default: its training run finished (or it predates states)."""
    return tag.read(version.tags, VERSION_STATE, READY) == READY


def log_plots(
    study: optuna.Study,
    names: list[str],
    importances: np.ndarray | None,
    y_true: np.ndarray,
    pred: np.ndarray,
    calibration: bool,
) -> None:
    """Feature importance, residuals (or calibration, for a probability), and Optuna's
    history / importances."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

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
        if calibration:
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
        fig.savefig(out / ("calibration.png" if calibration else "residuals.png"))
        plt.close(fig)
        completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if completed:
            from optuna.visualization.matplotlib import (
                plot_optimization_history,
                plot_param_importances,
            )

            history = plot_optimization_history(study).figure
            cast(Figure, history).savefig(out / "optuna_history.png")
            if len(completed) >= 2:
                try:
                    param_plot = plot_param_importances(study).figure
                    cast(Figure, param_plot).savefig(out / "optuna_param_importances.png")
                except (RuntimeError, ValueError):
                    pass  # importances need at least two distinct completed configurations
            plt.close("all")
        mlflow.log_artifacts(str(out), "plots")


def log_reliability(y_true: np.ndarray, raw: np.ndarray, calibrated: np.ndarray, method: str):
    """`plots/reliability.png`: observed positive rate against the stated probability in 10
    equal-width bins, the raw scores beside the calibrated ones (test part), with each
    bin's share of rows, so a reader sees where the probabilities were off and by how much."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y_true = np.asarray(y_true, dtype=float)
    fig, (curve, counts) = plt.subplots(
        2, 1, figsize=(6, 7), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    curve.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect")
    for name, scores in (("raw", raw), (f"calibrated ({method})", calibrated)):
        scores = np.asarray(scores, dtype=float)
        at = np.clip((scores * 10).astype(int), 0, 9)
        filled = [b for b in range(10) if (at == b).any()]
        stated = [scores[at == b].mean() for b in filled]
        observed = [y_true[at == b].mean() for b in filled]
        curve.plot(stated, observed, marker="o", label=name)
        counts.hist(scores, bins=10, range=(0, 1), histtype="step", label=name)
    curve.set_ylabel("observed positive rate")
    curve.set_title("reliability (test)")
    curve.legend()
    counts.set_yscale("log")
    counts.set_xlabel("stated probability")
    counts.set_ylabel("rows")
    fig.tight_layout()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "reliability.png"
        fig.savefig(path)
        plt.close(fig)
        mlflow.log_artifact(str(path), "plots")


def log_json(data: dict, path: str) -> None:
    mlflow.log_text(json.dumps(data, indent=2, default=str), path)


def log_pyfunc(model, example, pip_requirements: list[str], code_paths: list[str] | None = None):
    """The model as the run's pyfunc `model`, its signature read off `example` (a few rows of
    its input); returns MLflow's ModelInfo."""
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=model,
        signature=mlflow.models.infer_signature(example, model.predict_frame(example)),
        input_example=example,
        pip_requirements=pip_requirements,
        code_paths=code_paths,
    )
