"""Stages: register a tuned run's model as a new version, and gate a version against the
champion on the current holdout (`smap gate TASK --version N` runs the gate alone)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, cast

from mlflow.tracking import MlflowClient

from configs.settings import Settings
from ingestion.warehouse import Warehouse
from training import tags as tag
from training.descriptions import model_description, version_description
from training.errors import TaskError
from training.linear_baseline import fit_linear
from training.registry import Decision, promote
from training.snapshot import StoredSet
from training.task import Task
from training.tracking import (
    PENDING,
    READY,
    VERSION_STATE,
    is_candidate,
    register_version,
    use_tracking,
)
from training.tune import Tuned

if TYPE_CHECKING:
    from training.trainers import Untrainable


def register(task: Task, tuned: Tuned, window: Mapping[str, str] | None = None) -> int:
    """A new version of the task's registered model, pending until `mark_ready`: a worker
    that dies before then leaves a version no gate picks by default. `window` (the training
    set's time bounds) goes into the version's description."""
    return register_version(
        tuned.model_uri,
        task.name,
        tags={
            VERSION_STATE: PENDING,
            tag.DATA: tuned.fingerprint,
            tag.FEATURES: task.feature_service,
        },
        description=version_description(task, window or {}, tuned.fingerprint),
        model_description=model_description(task),
    )


def mark_ready(client: MlflowClient, task: Task, version: int) -> None:
    client.set_model_version_tag(task.name, str(version), VERSION_STATE, READY)


def holdout_scorer(stored: StoredSet):
    ts = stored.training_set
    return lambda frame, pred: ts.task.trainer.score(ts, frame, pred)


def gate(
    settings: Settings,
    client: MlflowClient,
    warehouse: Warehouse,
    task: Task,
    version: int,
    stored: StoredSet,
) -> Decision:
    """Champion and challenger scored on the stored set's test part; the alias moves only if
    the challenger beats the naive baseline and the champion (by `promote_margin`), and a
    plain linear model fitted on the set's train part does not beat it (by that margin)."""
    return promote(
        client,
        warehouse,
        task,
        version,
        stored.training_set.part("test"),
        holdout_scorer(stored),
        settings.training.promote_margin,
        fit_linear(stored.training_set),
    )


def gate_version(
    settings: Settings,
    warehouse: Warehouse,
    task: Task,
    version: int | None = None,
    rebuild: bool = False,
    stored: StoredSet | None = None,
) -> Decision:
    """The gate on its own, for `version` (default: the newest finished one) on the current
    data's holdout (`stored`, or the task's set built or read back)."""
    if not task.trainer.trainable:
        raise cast("Untrainable", task.trainer).refuse(task)
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
    stored = stored or task.trainer.build(settings, task, rebuild=rebuild)
    return gate(settings, client, warehouse, task, chosen, stored)
