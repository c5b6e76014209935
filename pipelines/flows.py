"""Flows wire stages: each is a short list of calls on a typed Settings, returning references.

The stages are imported here at module level; only training, which loads MLflow, Optuna and
the model libraries, is imported inside `train_task`.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from configs.settings import Settings
from feature_repo import store
from ingestion.csv_import import import_posts, preview_posts
from ingestion.etl import ANALYTICS_TABLES, run_etl
from ingestion.schema import ALL_TABLES
from ingestion.simulator import simulate as generate
from ingestion.spark import spark_step
from ingestion.warehouse import open_warehouse
from pipelines.progress import steps, transfer
from pipelines.serving import demo_serving
from training.dataset import ALL_DATA, DataWindow
from training.readiness import missing_input
from training.tasks import get_task


def simulate(
    settings: Settings,
    preset: str | None = None,
    seed: int | None = None,
    shift_at: int | None = None,
    experiments: bool = False,
) -> dict[str, int]:
    """Generate a platform and write its raw and truth tables to the warehouse."""
    warehouse = open_warehouse(settings)  # fails fast when the warehouse is unreachable
    sim = settings.simulator
    with steps("simulate", 11) as tick:
        tables = generate(
            preset or sim.preset,
            seed if seed is not None else sim.seed,
            sim.start_date,
            shift_at,
            progress=tick,
            experiments=experiments,
            platforms=settings.platforms,
        )
    counts = {}
    # one lock for all tables: an ETL or import never sees half of a new platform
    with warehouse.writing(), steps("write raw tables", len(tables)) as tick:
        for name, frame in tables.items():
            counts[name] = warehouse.write(ALL_TABLES[name], frame)
            tick(name)
    return counts


def ingest(settings: Settings, since: str | None = None) -> dict[str, int]:
    """Run the ETL: raw tables -> analytics tables, replacing date partitions from `since`."""
    start = pd.Timestamp(since) if since else None
    warehouse = open_warehouse(settings)
    # raw tables read and analytics tables written with no import or simulation in between
    with spark_step(), warehouse.writing(), steps("ingest", len(ANALYTICS_TABLES) + 1) as tick:
        return run_etl(settings, warehouse, since=start, progress=tick)


def ingest_csv(settings: Settings, path: Path, mapping: Path | None):
    """Load a user's own post export into the raw tables (all-or-nothing per file), in
    chunks with a progress bar by bytes read."""
    warehouse = open_warehouse(settings)
    with transfer(f"import {path.name}") as update:
        return import_posts(
            path,
            mapping,
            warehouse,
            settings.root / "rejects",
            chunk_rows=settings.warehouse.import_chunk_rows,
            progress=update,
        )


def preview_csv(settings: Settings, path: Path, mapping: Path | None):
    """What importing an export would do, checked against the warehouse, writing nothing."""
    warehouse = open_warehouse(settings)
    with transfer(f"check {path.name}") as update:
        return preview_posts(
            path, mapping, warehouse, settings.warehouse.import_chunk_rows, progress=update
        )


def apply_features(settings: Settings) -> list[str]:
    """Register the Feast definitions for the active profile."""
    return store.apply(settings)


def materialize_features(settings: Settings, end: datetime | None = None) -> dict[str, int]:
    """Load the online store (first run: whole history; later runs: incremental)."""
    store.check_online_store(settings)
    n_views = len(store.online_views(store.open_store(settings)))
    with spark_step(), steps("materialize", n_views) as tick:
        return store.materialize(settings, end=end, progress=tick)


DEMO_FAMILIES = ("linear", "xgboost", "lightgbm")  # the demo skips the slow TensorFlow import


def prepare_data(settings: Settings, preset: str | None = None) -> dict[str, object]:
    """simulate -> ingest -> apply -> materialize: everything training and serving read."""
    return {
        "simulate": simulate(settings, preset=preset),
        "ingest": ingest(settings),
        "apply": apply_features(settings),
        "materialize": materialize_features(settings),
    }


DEMO_TASKS = ("engagement",)  # on simulated data
OWN_DATA_TASKS = ("engagement", "trend")  # on imported posts: trend when the export has hashtags


def has_imported_posts(settings: Settings) -> bool:
    """True when the warehouse holds posts a user imported (only an import writes the
    engagement definition), which the demo must use rather than simulate over."""
    warehouse = open_warehouse(settings)
    return (
        warehouse.exists("engagement_definition")
        and not warehouse.read("engagement_definition").empty
    )


def ready_tasks(settings: Settings, tasks: tuple[str, ...]) -> tuple[list[str], dict[str, str]]:
    """Tasks whose inputs are in the warehouse, and why each other one is skipped
    (a few table reads, no training set built)."""
    warehouse = open_warehouse(settings)
    reasons = {task: missing_input(task, warehouse) for task in tasks}
    return [t for t, why in reasons.items() if why is None], {
        t: why for t, why in reasons.items() if why
    }


def _demo_families(task_name: str) -> tuple[str, ...]:
    return tuple(f for f in DEMO_FAMILIES if f in get_task(task_name).families)


def train_task(settings: Settings, task: str, trials: int, window: DataWindow = ALL_DATA):
    """Train and gate `task` on the demo's families (rows of `window`)."""
    from pipelines.training import train  # defers MLflow and the model libraries

    return train(settings, task, trials=trials, families=_demo_families(task), window=window)


def demo(
    settings: Settings,
    preset: str | None = None,
    trials: int = 6,
    tasks: tuple[str, ...] | None = None,
) -> dict[str, object]:
    """The main job on the active profile: prepare the data (your imported posts if the
    warehouse has some, else a simulated platform), then train and gate each task whose
    inputs are there; the others are skipped with the reason."""
    t0 = time.perf_counter()
    if has_imported_posts(settings):
        timings: dict[str, Any] = {  # stage -> its counts, timings or results
            "ingest": ingest(settings),
            "apply": apply_features(settings),
            "materialize": materialize_features(settings),
        }
        tasks = tasks or OWN_DATA_TASKS
    else:
        timings = prepare_data(settings, preset)
        tasks = tasks or DEMO_TASKS
    ready, timings["skipped"] = ready_tasks(settings, tasks)
    timings["trained"] = {task: train_task(settings, task, trials) for task in ready}
    engagement = timings["trained"].get("engagement")
    if engagement and engagement.decision and engagement.decision.champion_after:
        timings["serve"] = demo_serving(settings)  # the champion answers drafts over HTTP
    timings["seconds"] = round(time.perf_counter() - t0, 1)
    return timings
