"""The current window of a check: what the service really answered, from the prediction log,
with the labels that have matured since.

A window holds the rows one champion version answered after the task's previous check (at
most `monitoring.max_rows`, the newest). Rows `best_posting_time` scored as candidate hours
are left out: they are what-ifs, not posts anyone made.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd

from configs.errors import SmapError
from configs.settings import Settings
from serving.prediction_log import PREDICTION_LOGS, LogUnreadable
from training.task import Task


class WindowError(SmapError):
    """The prediction log cannot give a window to judge (unreadable, or malformed rows)."""


@dataclass(frozen=True)
class Window:
    task: str
    version: int
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    frame: pd.DataFrame  # features, `prediction`, entity keys, `logged_at`, `label`

    @property
    def labelled(self) -> int:
        return int(self.frame["label"].notna().sum()) if len(self.frame) else 0


def logged_rows(settings: Settings, task: str, version: int, after=None) -> pd.DataFrame:
    """Raw log rows of `task` answered by `version`, logged after `after`, newest kept."""
    limit = settings.monitoring.max_rows
    try:
        rows = PREDICTION_LOGS[settings.warehouse.type].rows(settings, task, version, after, limit)
    except LogUnreadable as exc:
        raise WindowError(str(exc)) from None
    if rows.empty:
        return rows
    rows["logged_at"] = pd.to_datetime(rows["logged_at"], utc=True)
    if after is not None:
        rows = rows[rows.logged_at > pd.Timestamp(after)]
    return rows.sort_values("logged_at", kind="stable").tail(limit).reset_index(drop=True)


def _objects(texts: pd.Series, column: str) -> pd.DataFrame:
    try:
        return pd.DataFrame.from_records([json.loads(t) for t in texts], index=texts.index)
    except (TypeError, ValueError) as exc:
        raise WindowError(
            f"prediction log: a row's {column} is not a JSON object ({exc})"
        ) from None


def parse(rows: pd.DataFrame) -> pd.DataFrame:
    """Feature vectors and entity keys out of their JSON text, beside the prediction."""
    if rows.empty:
        return pd.DataFrame(columns=["logged_at", "prediction"])
    features = _objects(rows["features"], "features")
    entities = _objects(rows["entity"], "entity").add_prefix("key_")
    frame = pd.concat([features, entities], axis=1)
    frame["prediction"] = pd.to_numeric(rows["prediction"], errors="coerce")
    frame["logged_at"] = rows["logged_at"]
    if "key_candidate" in frame:
        frame = frame[frame["key_candidate"].isna()].drop(columns="key_candidate")
    return frame.reset_index(drop=True)


def matured_labels(warehouse, task: Task, frame: pd.DataFrame) -> pd.Series:
    """The actual outcome of each logged row where it is known by now, else NaN."""
    if frame.empty or task.matured_labels is None:
        return pd.Series(float("nan"), index=frame.index)
    return task.matured_labels(warehouse, task, frame)


def current_window(settings: Settings, warehouse, task: Task, version: int, after=None) -> Window:
    """The rows `version` answered since `after`, parsed and labelled where possible."""
    frame = parse(logged_rows(settings, task.name, version, after))
    frame["label"] = matured_labels(warehouse, task, frame)
    start = frame.logged_at.min() if len(frame) else None
    end = frame.logged_at.max() if len(frame) else None
    return Window(task.name, version, start, end, frame)
