"""`smap evaluate <task>`: the champion's test metrics next to the oracle and a naive baseline."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any, cast

import mlflow
import numpy as np
import pandas as pd

from configs.settings import Settings
from ingestion.etl import ENGAGEMENT_TARGETS, engagement_denominator
from ingestion.warehouse import open_warehouse
from training import tags as tag
from training.baseline import naive_prediction
from training.dataset import TrainingSet
from training.errors import TaskError
from training.registry import current_champion, why_no_champion
from training.task import Task
from training.tracking import use_tracking

if TYPE_CHECKING:
    from training.trainers import Untrainable

ORACLE_NOTE = (
    "the oracle is the simulator's ground truth: it exists only for simulated data "
    "(on imported data judge the champion against the naive baseline)"
)


# what scoring reads of a stored set besides the champion's features: targets, the oracle, the
# baselines' inputs and the accounts the split summary counts (a set holds sixty columns)
SCORED_COLUMNS = (
    "target",
    "oracle",
    "event_timestamp",
    "user_id",
    "engagement_rate_28d",
    "days_since_last_activity",
    "seasonal_naive",
    "horizon",
    "majority_category",
)


def naive_baseline(ts: TrainingSet, test: pd.DataFrame) -> np.ndarray:
    """What a person would do without a model (the same definition the gate uses)."""
    return naive_prediction(ts.task, test)


def target_definition(settings: Settings, task: Task) -> str:
    """What the task's target measures on this warehouse (the engagement denominator)."""
    task_name = task.name
    if task_name not in ("engagement", "virality"):
        return task.target or task_name
    warehouse = open_warehouse(settings)
    definition = (
        warehouse.read("engagement_definition")
        if warehouse.exists("engagement_definition")
        else None
    )
    denominator = engagement_denominator(definition)
    if task_name == "engagement":
        return ENGAGEMENT_TARGETS[denominator]
    if denominator == "none":
        return "top 3% of posts by shares in their first 7 days"
    return f"top 3% of posts by shares / {denominator} in their first 7 days"


def split_summary(ts: TrainingSet) -> dict[str, object]:
    """Rows per part, and how many test accounts the model saw in training: a test part of
    mostly unseen accounts measures something else than one of known accounts."""
    rows = {name: len(getattr(ts.split, name)) for name in ("train", "validation", "test")}
    if "user_id" not in ts.frame.columns:
        return {"rows": rows}
    seen = set(ts.part("train").user_id)
    test_accounts = set(ts.part("test").user_id)
    return {
        "rows": rows,
        "test_accounts": len(test_accounts),
        "test_accounts_seen_in_training": len(test_accounts & seen),
    }


def _json_safe(value):
    """NaN and infinity are not JSON: they become null."""
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def report_json(report: dict[str, object]) -> str:
    """The evaluate report as strict JSON (null, never NaN)."""
    return json.dumps(_json_safe(report), default=str, allow_nan=False, indent=2)


def evaluate(settings: Settings, task: Task, rebuild: bool = False) -> dict[str, Any]:
    """Score the champion on the stored test split of the current data (built if needed)."""
    trainer = task.trainer
    if not trainer.trainable:
        raise cast("Untrainable", trainer).refuse(task)
    client = use_tracking(settings)
    version = current_champion(client, task.name)
    if version is None:
        raise TaskError(why_no_champion(client, task.name))
    model = mlflow.pyfunc.load_model(f"models:/{task.name}@champion").unwrap_python_model()
    columns = [*model.features, *SCORED_COLUMNS]
    stored = trainer.build(settings, task, rebuild=rebuild, columns=columns)
    ts = stored.training_set
    trained_on = tag.read(client.get_model_version(task.name, str(version)).tags, tag.DATA)
    test = ts.part("test")
    predicted = model.predict_frame(trainer.model_input(ts, test))
    champion = trainer.score(ts, test, predicted, model.threshold)
    has_oracle = bool(test.oracle.notna().all())
    oracle = trainer.score(ts, test, test.oracle.to_numpy()) if has_oracle else {}
    baseline = trainer.score(ts, test, naive_prediction(task, test))
    report: dict[str, object] = {
        "task": task.name,
        "metric": task.metric,
        "target": target_definition(settings, task),
        "model_version": version,
        "champion_value": champion[task.metric],
        "oracle_value": oracle.get(task.metric, float("nan")),
        "baseline_value": baseline[task.metric],
        "baseline_definition": task.baseline,
        "oracle_available": has_oracle,
        **({} if has_oracle else {"oracle_note": ORACLE_NOTE}),
        "split": split_summary(ts),
        "champion": champion,
        "oracle": oracle,
        "baseline": baseline,
        "test_rows": len(test),
        "test_window": {"start": ts.window["test_start"], "end": ts.window["test_end"]},
        "training_set": {
            "path": str(stored.path),
            "fingerprint": ts.fingerprint,
            "reused": stored.reused,
            "champion_trained_on_it": trained_on == ts.fingerprint,
        },
    }
    report.update(trainer.evaluate_extras(ts, model, predicted))
    return report
