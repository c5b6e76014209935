"""`smap evaluate <task>`: the champion's test metrics next to the oracle, the naive baseline
and a plain linear model on the same features; `--version N` puts a registered version (a
challenger the gate refused, say) beside the champion, so its owner sees by how much."""

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
from training.linear_baseline import fit_linear
from training.registry import current_champion, gate_decision, why_no_champion
from training.task import Task
from training.tracking import is_candidate, use_tracking

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


def checked_version(client, task: Task, version: int) -> int:
    """`version` if the task has it and its training finished; else one line naming --version."""
    found = client.search_model_versions(f"name='{task.name}'")
    known = sorted(int(v.version) for v in found)
    if version not in known:
        listed = ", ".join(map(str, known)) or "none"
        raise TaskError(f"--version: {task.name} has no version {version} (registered: {listed})")
    if not any(int(v.version) == version and is_candidate(v) for v in found):
        raise TaskError(f"--version: {task.name} version {version} did not finish training")
    return version


def _load(client, task: Task, version: int):
    """The smap model inside a registered version, from `client`'s registry."""
    uri = client.get_model_version_download_uri(task.name, str(version))
    return mlflow.pyfunc.load_model(uri).unwrap_python_model()


def evaluate(
    settings: Settings, task: Task, rebuild: bool = False, version: int | None = None
) -> dict[str, Any]:
    """Score the champion (and registered `version`, if given) on the stored test split of
    the current data (built if needed), next to the baselines and the oracle."""
    trainer = task.trainer
    if not trainer.trainable:
        raise cast("Untrainable", trainer).refuse(task)
    client = use_tracking(settings)
    champion_version = current_champion(client, task.name)
    if version is None and champion_version is None:
        raise TaskError(why_no_champion(client, task.name))
    if version is not None:
        checked_version(client, task, version)
    models = {v: _load(client, task, v) for v in (champion_version, version) if v is not None}
    features = [f for m in models.values() for f in m.features]
    columns = list(dict.fromkeys([*features, *SCORED_COLUMNS]))
    stored = trainer.build(settings, task, rebuild=rebuild, columns=columns)
    ts = stored.training_set
    test = ts.part("test")
    predicted = {
        v: model.predict_frame(trainer.model_input(ts, test)) for v, model in models.items()
    }
    scores = {
        v: trainer.score(ts, test, predicted[v], model.threshold) for v, model in models.items()
    }
    has_oracle = bool(test.oracle.notna().all())
    oracle = trainer.score(ts, test, test.oracle.to_numpy()) if has_oracle else {}
    baseline = trainer.score(ts, test, naive_prediction(task, test))
    linear_model = fit_linear(ts)
    linear = (
        {}
        if linear_model is None
        else trainer.score(ts, test, linear_model.predict(test), linear_model.threshold)
    )
    champion = scores.get(champion_version, {}) if champion_version else {}

    def trained_on_it(v: int) -> bool:
        tags = client.get_model_version(task.name, str(v)).tags
        return tag.read(tags, tag.DATA) == ts.fingerprint

    nan = float("nan")
    report: dict[str, object] = {
        "task": task.name,
        "metric": task.metric,
        "target": target_definition(settings, task),
        "model_version": champion_version,
        "champion_value": champion.get(task.metric, nan),
        "oracle_value": oracle.get(task.metric, nan),
        "baseline_value": baseline[task.metric],
        "baseline_definition": task.baseline,
        "linear_name": None if linear_model is None else linear_model.name,
        "linear_value": linear.get(task.metric, nan),
        "linear_definition": None if linear_model is None else linear_model.definition,
        "oracle_available": has_oracle,
        **({} if has_oracle else {"oracle_note": ORACLE_NOTE}),
        "split": split_summary(ts),
        "champion": champion,
        "oracle": oracle,
        "baseline": baseline,
        "linear": linear,
        "test_rows": len(test),
        "test_window": {"start": ts.window["test_start"], "end": ts.window["test_end"]},
        "training_set": {
            "path": str(stored.path),
            "fingerprint": ts.fingerprint,
            "reused": stored.reused,
            "champion_trained_on_it": (
                trained_on_it(champion_version) if champion_version is not None else None
            ),
        },
    }
    if version is not None:
        decided = gate_decision(client, task.name, version)
        report["version"] = {
            "version": version,
            "value": scores[version][task.metric],
            "metrics": scores[version],
            "is_champion": version == champion_version,
            "trained_on_it": trained_on_it(version),
            "gate": None
            if decided is None
            else {"decision": decided.decision, "reason": decided.reason},
        }
    shown = version if version is not None else champion_version
    assert shown is not None
    report.update(trainer.evaluate_extras(ts, models[shown], predicted[shown]))
    return report
