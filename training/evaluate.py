"""`smap evaluate <task>`: the champion's test metrics next to the oracle and a naive baseline."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd

from configs.settings import Settings
from training.dataset import TrainingSet, build_training_set
from training.registry import current_champion
from training.search import score
from training.tasks import TaskError, get_task
from training.tracking import use_tracking


def naive_baseline(ts: TrainingSet, test: pd.DataFrame) -> np.ndarray:
    """What a person would do without a model, per task kind."""
    name = ts.task.name
    if name in ("engagement", "virality"):
        fallback = ts.part("train").target.mean() if name == "engagement" else 0.0
        return test.engagement_rate_28d.astype(float).fillna(fallback).to_numpy()
    if name == "churn":
        return test.days_since_last_activity.astype(float).to_numpy()
    return test.seasonal_naive.astype(float).to_numpy()


def evaluate(settings: Settings, task_name: str) -> dict[str, object]:
    task = get_task(task_name)
    if task.kind == "clustering":
        raise TaskError(f"{task.name}: evaluated by silhouette in `smap segment`")
    client = use_tracking(settings)
    version = current_champion(client, task.name)
    if version is None:
        raise TaskError(f"{task.name}: no champion registered yet (run `smap train {task.name}`)")
    ts = build_training_set(settings, task)
    test = ts.part("test")
    model = mlflow.pyfunc.load_model(f"models:/{task.name}@champion").unwrap_python_model()
    champion = score(ts, test, model.predict_frame(test), model.threshold)
    has_oracle = test.oracle.notna().all()
    oracle = score(ts, test, test.oracle.to_numpy()) if has_oracle else {}
    baseline = score(ts, test, naive_baseline(ts, test))
    return {
        "task": task.name,
        "metric": task.metric,
        "model_version": version,
        "champion_value": champion[task.metric],
        "oracle_value": oracle.get(task.metric, float("nan")),
        "baseline_value": baseline[task.metric],
        "champion": champion,
        "oracle": oracle,
        "baseline": baseline,
        "test_rows": len(test),
        "test_window": {"start": ts.window["test_start"], "end": ts.window["test_end"]},
    }
