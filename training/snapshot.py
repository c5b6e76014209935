"""Stored training sets: built once per state of the data, reused by evaluate and promote.

A set is stored as Parquet under `<data_dir>/training_sets/<task>/<key>.parquet` with a JSON
sidecar. The key is known before anything is built: a hash of the task, its feature service's
definition and the version of every source table (file sizes and mtimes on local, row counts
and the newest writing transaction on PostgreSQL). So "has the data changed?" costs a stat or a
scan, not a rebuild. Training logs the same set as an MLflow dataset input of its run (digest =
the set's fingerprint); monitoring reads it as its reference.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from dataclasses import dataclass, replace
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as pkg_version
from pathlib import Path
from types import ModuleType
from typing import cast

import pandas as pd

from configs.settings import Settings
from feature_repo.store import open_store, registry_file
from ingestion.schema import ANALYTICS_TABLES, RAW_TABLES, TRUTH_TABLES
from ingestion.warehouse import open_warehouse
from training.dataset import (
    ALL_DATA,
    DataWindow,
    TrainingSet,
    build_training_set,
    feature_service,
    time_split,
)
from training.task import Task

# what a label query or a feature view can read; model and prediction tables are left out so
# that a gate decision or a served prediction does not make the data look changed
SOURCE_TABLES = tuple(sorted({*RAW_TABLES, *TRUTH_TABLES, *ANALYTICS_TABLES}))


@dataclass(frozen=True)
class StoredSet:
    training_set: TrainingSet
    path: Path
    reused: bool  # True when read back from a set built earlier on the same data


def _smap_version() -> str:
    try:
        return pkg_version("smap")
    except PackageNotFoundError:
        return "unknown"


def definitions(task: Task, store) -> list[str]:
    """The task's feature service as the registry holds it: its views' features, every view's
    TTL and every on-demand transformation (on-demand views read other views)."""
    service = feature_service(store, task.feature_service)
    views = {
        p.name: [(f.name, str(f.dtype)) for f in p.features]
        for p in service.feature_view_projections
    }
    ttls = {v.name: str(v.ttl) for v in store.list_feature_views()}
    udfs = {
        v.name: getattr(v.feature_transformation, "udf_string", "")
        for v in store.list_on_demand_feature_views()
    }
    return [json.dumps(part, sort_keys=True) for part in (views, ttls, udfs)]


def source_key(settings: Settings, task: Task, store, window: DataWindow = ALL_DATA) -> str:
    """A key that changes when the task's inputs could have changed."""
    return _key(settings, task, definitions(task, store), window)


def _key(settings: Settings, task: Task, defined: list[str], window: DataWindow) -> str:
    digest = hashlib.sha256()
    for part in (
        task.name,
        task.feature_service,
        *defined,
        inspect.getsource(cast(ModuleType, inspect.getmodule(task.label_query))),  # label code
        str(task.label_days),
        settings.feast.offline_store,
        _smap_version(),
        open_warehouse(settings).version(SOURCE_TABLES),
        window.key(),
    ):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def _registry_stamp(settings: Settings) -> str | None:
    """Changes whenever the local Feast registry file is rewritten (apply, materialize); None
    when there is no file to look at (a SQL registry): then the registry is always read."""
    path = registry_file(settings)
    if path is None or not path.is_file():
        return None
    stat = path.stat()
    return f"{settings.feast.project}:{stat.st_size}:{stat.st_mtime_ns}"


def _definitions_path(settings: Settings, task: Task) -> Path:
    return set_dir(settings, task) / f"{task.feature_service}.definitions.json"


def _remembered_definitions(settings: Settings, task: Task) -> list[str] | None:
    """The definitions read from the registry last time, if the registry is unchanged since:
    a stored set is then found without importing Feast (seconds of a reused `evaluate`)."""
    stamp = _registry_stamp(settings)
    path = _definitions_path(settings, task)
    if stamp is None or not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return saved["definitions"] if saved.get("registry") == stamp else None


def _remember_definitions(
    settings: Settings, task: Task, stamp: str | None, defined: list[str]
) -> None:
    if stamp is None:
        return
    path = _definitions_path(settings, task)
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_suffix(f".json.{os.getpid()}.tmp")
    staged.write_text(json.dumps({"registry": stamp, "definitions": defined}))
    os.replace(staged, path)


def set_dir(settings: Settings, task: Task) -> Path:
    return settings.root / "training_sets" / task.name


def stored_columns(ts: TrainingSet) -> pd.DataFrame:
    """The frame without raw request text that no model reads (captions, hashtag strings):
    a third of the file, and the slowest part to read back."""
    text = [c for c in ts.frame.columns if ts.frame[c].dtype == object and c not in ts.features]
    return ts.frame.drop(columns=text)


def save(settings: Settings, ts: TrainingSet, key: str) -> Path:
    """Write the set and its sidecar; write then rename, so a reader never sees half a set."""
    folder = set_dir(settings, ts.task)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{key}.parquet"
    meta = {
        "task": ts.task.name,
        "feature_service": ts.task.feature_service,
        "features": ts.features,
        "categorical": ts.categorical,
        "fingerprint": ts.fingerprint,
        "window": ts.window,
        "missing": ts.missing,
        "rows": len(ts.frame),
    }
    staged = path.with_suffix(f".parquet.{os.getpid()}.tmp")
    ts.frame.to_parquet(staged, index=False)
    meta_path = path.with_suffix(".json")
    staged_meta = meta_path.with_suffix(f".json.{os.getpid()}.tmp")
    staged_meta.write_text(json.dumps(meta, indent=2))
    os.replace(staged, path)
    os.replace(staged_meta, meta_path)  # the sidecar lands last: it marks the set complete
    return path


def load(
    settings: Settings, task: Task, key: str, columns: list[str] | None = None
) -> StoredSet | None:
    """The stored set for this key, or None when there is none (or it is incomplete); with
    `columns`, only those of them the set holds are read."""
    path = set_dir(settings, task) / f"{key}.parquet"
    meta_path = path.with_suffix(".json")
    if not (path.is_file() and meta_path.is_file()):
        return None
    meta = json.loads(meta_path.read_text())
    if columns is not None:
        import pyarrow.parquet as pq

        held = set(pq.read_schema(path).names)
        columns = [c for c in dict.fromkeys([*columns, task.split_on]) if c in held]
    frame = pd.read_parquet(path, columns=columns)
    ts = TrainingSet(
        task,
        frame,
        meta["features"],
        meta["categorical"],
        time_split(frame[task.split_on], task.label_days),
        meta["fingerprint"],
        meta["window"],
        meta.get("missing", {}),
    )
    return StoredSet(ts, path, reused=True)


def training_set(
    settings: Settings,
    task: Task,
    rebuild: bool = False,
    progress=None,
    window: DataWindow = ALL_DATA,
    columns: list[str] | None = None,
) -> StoredSet:
    """The task's training set on the current data (rows of `window`): read back if stored,
    else built and stored. `columns` narrows what a reused set reads (a build has them all)."""
    if not rebuild:
        defined = _remembered_definitions(settings, task)
        if defined is not None:
            stored = load(settings, task, _key(settings, task, defined, window), columns)
            if stored is not None:
                return stored
    stamp = _registry_stamp(settings)  # before reading: a later change must not look seen
    store = open_store(settings)
    defined = definitions(task, store)
    _remember_definitions(settings, task, stamp, defined)
    key = _key(settings, task, defined, window)
    if not rebuild:
        stored = load(settings, task, key, columns)
        if stored is not None:
            return stored
    built = build_training_set(settings, task, store=store, progress=progress, window=window)
    ts = replace(built, frame=stored_columns(built))  # what is stored is what is used
    return StoredSet(ts, save(settings, ts, key), reused=False)


def log_training_set(stored: StoredSet) -> None:
    """Record the set on the active MLflow run: a dataset input (digest = fingerprint, with
    its window) and the counts of rows that had no value for a feature group."""
    import mlflow
    from mlflow.data.pandas_dataset import from_pandas

    ts = stored.training_set
    dataset = from_pandas(
        ts.frame.head(0),
        source=stored.path.as_uri(),
        name=f"{ts.task.name}-{ts.task.feature_service}",
        digest=ts.fingerprint,
        targets="target",
    )
    tags = {f"window.{k}": v for k, v in ts.window.items()}
    mlflow.log_input(dataset, context="training", tags={**tags, "rows": str(len(ts.frame))})
    mlflow.log_metrics({f"missing_rows.{name}": count for name, count in ts.missing.items()})
    mlflow.set_tag("smap.training_set", str(stored.path))
    mlflow.set_tag("smap.training_set_reused", str(stored.reused).lower())
