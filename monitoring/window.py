"""The current window of a check: what the service really answered, from the prediction log,
with the labels that have matured since.

A window holds the rows one champion version answered after the task's previous check (at
most `monitoring.max_rows`, the newest). Rows `best_posting_time` scored as candidate hours
are left out: they are what-ifs, not posts anyone made. Rows that repeat an identical feature
vector (a load test, a bot sending the same draft) count once: drift is judged on distinct
requests, and the repeats are counted. A log part that cannot be read is moved aside, named
in the window, and the window is read without it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd

from configs.errors import SmapError
from configs.settings import Settings
from serving.prediction_log import PREDICTION_LOGS, Compaction, LogRead, LogUnreadable
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
    duplicates: int = 0  # logged rows left out: they repeat a feature vector of the window
    quarantined: tuple[str, ...] = ()  # log parts moved aside: they cannot be read

    @property
    def labelled(self) -> int:
        return int(self.frame["label"].notna().sum()) if len(self.frame) else 0

    @property
    def logged(self) -> int:
        """Answers logged in the window, repeats included."""
        return len(self.frame) + self.duplicates


def read_log(settings: Settings, task: str, version: int, after=None) -> LogRead:
    """Raw log rows of `task` answered by `version`, logged after `after`, newest kept, and
    the parts moved aside because they cannot be read."""
    limit = settings.monitoring.max_rows
    try:
        read = PREDICTION_LOGS[settings.warehouse.type].rows(settings, task, version, after, limit)
    except LogUnreadable as exc:
        raise WindowError(str(exc)) from None
    rows = read.rows
    if rows.empty:
        return read
    rows["logged_at"] = pd.to_datetime(rows["logged_at"], utc=True)
    if after is not None:
        rows = rows[rows.logged_at > pd.Timestamp(after)]
    rows = rows.sort_values("logged_at", kind="stable").tail(limit).reset_index(drop=True)
    return LogRead(rows, read.quarantined)


def logged_rows(settings: Settings, task: str, version: int, after=None) -> pd.DataFrame:
    """Raw log rows of `task` answered by `version`, logged after `after`, newest kept."""
    return read_log(settings, task, version, after).rows


def compact_log(settings: Settings, warehouse) -> Compaction:
    """Compact the log's older parts (on a store of part files) before a check reads it."""
    return PREDICTION_LOGS[settings.warehouse.type].compact(settings, warehouse)


def distinct(frame: pd.DataFrame, key: list[str]) -> tuple[pd.DataFrame, int]:
    """The rows of `frame` whose `key` columns (a feature vector and its prediction) no later
    row repeats, and how many rows were left out: a thousand identical requests are one."""
    columns = [c for c in key if c in frame]
    if frame.empty or not columns:
        return frame, 0
    values = frame[columns].copy()
    for column in values.columns:  # lists or dicts in a vector: compared as their text
        if values[column].dtype == object:
            values[column] = values[column].map(str)
    repeated = values.duplicated(keep="last").to_numpy()
    return frame[~repeated].reset_index(drop=True), int(repeated.sum())


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


def current_window(
    settings: Settings,
    warehouse,
    task: Task,
    version: int,
    after=None,
    key: list[str] | None = None,
) -> Window:
    """The rows `version` answered since `after`, parsed, each distinct `key` (the features
    and the prediction) once, and labelled where possible."""
    read = read_log(settings, task.name, version, after)
    frame = parse(read.rows)
    start = frame.logged_at.min() if len(frame) else None
    end = frame.logged_at.max() if len(frame) else None  # repeats included: the next starts after
    frame, duplicates = distinct(frame, [*key, "prediction"]) if key else (frame, 0)
    frame["label"] = matured_labels(warehouse, task, frame)
    return Window(task.name, version, start, end, frame, duplicates, read.quarantined)
