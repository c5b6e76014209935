"""The task table: one row per model. Adding a task is adding a row and its label query."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from ingestion.warehouse import Warehouse
from training import labels
from training.errors import TaskError

Kind = Literal["regression", "classification", "forecast", "clustering", "multiclass"]


@dataclass(frozen=True)
class Task:
    name: str
    entity: str
    kind: Kind
    feature_service: str
    metric: str  # the headline test metric, also the Optuna objective on validation
    direction: Literal["maximize", "minimize"]
    families: tuple[str, ...]
    label_query: Callable[[Warehouse], pd.DataFrame]
    label_days: int  # label window; time splits keep at least this gap
    passthrough: tuple[str, ...] = ()  # label-query columns that are model inputs too
    # time column the split is made on; forecasts split on the day they predict, with a gap of
    # at least the longest horizon, so every horizon is tested and no target leaks back
    split_on: str = "event_timestamp"


# fmt: off
TASKS: dict[str, Task] = {t.name: t for t in [
    Task("engagement", "post", "regression", "engagement_v2", "r2", "maximize",
         ("linear", "forest", "xgboost", "lightgbm", "mlp"), labels.engagement_labels, 7),
    Task("virality", "post", "classification", "virality_v2", "pr_auc", "maximize",
         ("linear", "forest", "xgboost", "lightgbm", "mlp"), labels.virality_labels, 7),
    Task("churn", "user", "classification", "churn_v1", "roc_auc", "maximize",
         ("linear", "forest", "xgboost", "lightgbm", "mlp"), labels.churn_labels, 28),
    # trend_v2 computes the inputs from the hashtag's history; the horizon is request data
    Task("trend", "hashtag", "forecast", "trend_v2", "mase", "minimize",
         ("lightgbm", "xgboost", "forest", "mlp", "lstm"), labels.trend_labels, 30,
         passthrough=("horizon",), split_on="target_timestamp"),
    Task("segmentation", "user", "clustering", "segmentation_v1", "silhouette", "maximize",
         ("kmeans",), labels.segmentation_labels, 0),
    # text in, category out; content_v1 names the request inputs, read from the warehouse
    # rather than Feast (training/content.py says why)
    Task("content", "post", "multiclass", "content_v1", "macro_f1", "maximize",
         ("tfidf_logreg", "tfidf_svc", "keras_text"), labels.content_labels, 0),
]}
# fmt: on


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise TaskError(f"task: unknown task {name!r} (choose {', '.join(TASKS)})")
    return TASKS[name]
