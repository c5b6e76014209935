"""The champion gate: aliases move only when a challenger wins on the same recent holdout.

Every decision is appended to the `champion_history` table (and tagged on the version), so
`smap models history` answers which version was champion at any time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ingestion.schema import MODEL_TABLES
from ingestion.warehouse import Warehouse
from training.baseline import BASELINES, naive_prediction
from training.tasks import Task, TaskError

CHAMPION, CHALLENGER = "champion", "challenger"


@dataclass(frozen=True)
class Decision:
    task: str
    version: int
    decision: str  # first_champion | promoted | kept_champion | below_baseline | rollback
    champion_before: int | None
    champion_after: int | None  # None: still no champion (the first model lost to the baseline)
    metric: str
    challenger_value: float
    champion_value: float
    reason: str


def current_champion(client: MlflowClient, task: str) -> int | None:
    try:
        return int(client.get_model_version_by_alias(task, CHAMPION).version)
    except MlflowException:
        return None


def score_version(task: Task, version: int, holdout: pd.DataFrame, scorer) -> float:
    model = mlflow.pyfunc.load_model(f"models:/{task.name}/{version}")
    inner = model.unwrap_python_model()
    return float(scorer(holdout, inner.predict_frame(holdout))[task.metric])


def beats(task: Task, challenger: float, champion: float, margin: float) -> bool:
    if not np.isfinite(challenger):
        return False
    if not np.isfinite(champion):
        return True
    if task.direction == "maximize":
        return challenger > champion + margin
    return challenger < champion - margin


def record(warehouse: Warehouse, client: MlflowClient, d: Decision) -> Decision:
    row = pd.DataFrame([{**d.__dict__, "decided_at": datetime.now(UTC)}])
    warehouse.append(MODEL_TABLES["champion_history"], row)
    client.set_model_version_tag(d.task, str(d.version), "smap.gate_decision", d.decision)
    client.set_model_version_tag(
        d.task, str(d.version), f"smap.gate_{d.metric}", f"{d.challenger_value:.6g}"
    )
    return d


def promote(
    client: MlflowClient,
    warehouse: Warehouse,
    task: Task,
    version: int,
    holdout: pd.DataFrame,
    scorer,
    margin: float,
) -> Decision:
    """Score challenger and champion on `holdout`; move `champion` only if it wins by `margin`.

    A challenger that does not beat the naive baseline on the same holdout is never crowned,
    not even as the first champion: it stays `challenger` and the reason says why.
    """
    before = current_champion(client, task.name)
    new_value = score_version(task, version, holdout, scorer)
    baseline_value = float(scorer(holdout, naive_prediction(task, holdout))[task.metric])
    if not beats(task, new_value, baseline_value, 0.0):
        client.set_registered_model_alias(task.name, CHALLENGER, str(version))
        return record(
            warehouse,
            client,
            Decision(
                task.name,
                version,
                "below_baseline",
                before,
                before,
                task.metric,
                new_value,
                float("nan"),
                f"{task.metric} {new_value:.4f} does not beat the naive baseline's "
                f"{baseline_value:.4f} ({BASELINES[task.name]}) on the holdout; "
                f"version {version} stays challenger",
            ),
        )
    if before is None:
        client.set_registered_model_alias(task.name, CHAMPION, str(version))
        return record(
            warehouse,
            client,
            Decision(
                task.name,
                version,
                "first_champion",
                None,
                version,
                task.metric,
                new_value,
                float("nan"),
                "no champion yet",
            ),
        )
    if before == version:
        raise TaskError(f"{task.name}: version {version} is already the champion")
    old_value = score_version(task, before, holdout, scorer)
    if beats(task, new_value, old_value, margin):
        client.set_registered_model_alias(task.name, CHAMPION, str(version))
        decision, after = "promoted", version
        reason = f"{task.metric} {new_value:.4f} beats {old_value:.4f} by more than {margin}"
    else:
        client.set_registered_model_alias(task.name, CHALLENGER, str(version))
        decision, after = "kept_champion", before
        reason = f"{task.metric} {new_value:.4f} does not beat {old_value:.4f} by {margin}"
    return record(
        warehouse,
        client,
        Decision(
            task.name, version, decision, before, after, task.metric, new_value, old_value, reason
        ),
    )


def history(warehouse: Warehouse, task: str) -> pd.DataFrame:
    if not warehouse.exists("champion_history"):
        return MODEL_TABLES["champion_history"].conform(
            pd.DataFrame({c: [] for c in MODEL_TABLES["champion_history"].columns})
        )
    table = warehouse.read("champion_history")
    return table[table.task == task].sort_values("decided_at").reset_index(drop=True)


def champion_at(warehouse: Warehouse, task: str, when: datetime) -> int | None:
    """Which version held `champion` at `when` (None before the first champion)."""
    past = history(warehouse, task)
    past = past[(past.decided_at <= pd.Timestamp(when)) & past.champion_after.notna()]
    return None if past.empty else int(past.champion_after.iloc[-1])


def rollback(client: MlflowClient, warehouse: Warehouse, task: Task) -> Decision:
    """Give `champion` back to the version that held it before the current one."""
    current = current_champion(client, task.name)
    past = history(warehouse, task.name)
    past = past[past.champion_after.notna()]
    changes = past[
        (past.champion_after == current)
        & past.champion_before.notna()
        & (past.champion_before != past.champion_after)
    ]
    if current is None or changes.empty:
        raise TaskError(f"{task.name}: there is no previous champion to roll back to")
    previous = int(changes.champion_before.iloc[-1])
    client.set_registered_model_alias(task.name, CHAMPION, str(previous))
    return record(
        warehouse,
        client,
        Decision(
            task.name,
            previous,
            "rollback",
            current,
            previous,
            task.metric,
            float("nan"),
            float("nan"),
            f"rolled back from version {current}",
        ),
    )
