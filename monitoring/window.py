"""The current window of a check: what the service really answered, from the prediction log,
with the labels that have matured since.

A window holds the rows one champion version answered after the task's previous check (at
most `monitoring.max_rows`, the newest). Rows `best_posting_time` scored as candidate hours
are left out: they are what-ifs, not posts anyone made.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from configs.errors import SmapError
from configs.settings import Settings
from serving.prediction_log import PREDICTION_LOGS, LogUnreadable
from training.labels import CHURN_DAYS
from training.tasks import Task


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


def _post_labels(warehouse, task: Task, frame: pd.DataFrame) -> pd.Series:
    """A draft's outcome is the post its author published at the planned time."""
    label = pd.Series(float("nan"), index=frame.index)
    if "key_planned_at" not in frame:
        return label
    truth = task.label_query(warehouse)[["user_id", "event_timestamp", "target"]]
    truth = truth.assign(
        event_timestamp=pd.to_datetime(truth.event_timestamp, utc=True)
    ).drop_duplicates(["user_id", "event_timestamp"])
    keys = pd.DataFrame(
        {
            "user_id": pd.to_numeric(frame["key_user_id"], errors="coerce"),
            "event_timestamp": pd.to_datetime(frame["key_planned_at"], utc=True, errors="coerce"),
        }
    )
    merged = keys.merge(truth, on=["user_id", "event_timestamp"], how="left")
    return pd.Series(merged["target"].to_numpy(dtype=float), index=frame.index)


def snapshot_days(logged_at: pd.Series) -> pd.Series:
    """The day whose metrics a request at `logged_at` sees: a `user_engagement_metrics` row
    of day d is stamped at d + 1 day 00:00 UTC, as `churn_labels` snapshots are."""
    stamps = pd.to_datetime(logged_at, utc=True).dt.tz_localize(None)
    return (stamps - pd.Timedelta(days=1)).dt.floor("D")


def churn_outcomes(
    activity: pd.DataFrame, users: np.ndarray, days: pd.Series, last_day: pd.Timestamp | None
) -> np.ndarray:
    """1.0 when user u has no `user_activity` row on days d+1 .. d+28 after snapshot day d,
    0.0 when it has one, NaN when day d+28 is past `last_day` (the outcome has not matured):
    `churn_labels`' target, for any (user, day)."""
    out = np.full(len(users), np.nan)
    if last_day is None or not len(users):
        return out
    epoch = pd.Timestamp("1970-01-01")
    day = ((pd.to_datetime(days) - epoch) // pd.Timedelta(days=1)).to_numpy()
    act_day = ((pd.to_datetime(activity.date) - epoch) // pd.Timedelta(days=1)).to_numpy()
    # one sorted key per (user, day) with activity: a range count per prediction
    span = 1 << 20  # more days than any epoch day number
    keys = np.sort(activity.user_id.to_numpy(dtype=np.int64) * span + act_day)
    base = np.asarray(users, dtype=np.int64) * span + day
    after = np.searchsorted(keys, base + CHURN_DAYS, "right") - np.searchsorted(keys, base + 1)
    matured = day + CHURN_DAYS <= (last_day - epoch) // pd.Timedelta(days=1)
    out[matured] = (after[matured] == 0).astype(float)
    return out


def _churn_labels(warehouse, task: Task, frame: pd.DataFrame) -> pd.Series:
    """A request's outcome is whether its user was active in the 28 days after it."""
    label = pd.Series(float("nan"), index=frame.index)
    if "key_user_id" not in frame or not warehouse.exists("user_activity"):
        return label
    users = pd.to_numeric(frame["key_user_id"], errors="coerce")
    known = users.notna() & frame.logged_at.notna()
    if not known.any():
        return label
    days = snapshot_days(frame.logged_at[known])
    # from the first day some request counts to the data's end, which says what has matured:
    # the table holds every user's every active day since the data began
    first = days.min() + pd.Timedelta(days=1)
    activity = warehouse.read(
        "user_activity", columns=["user_id", "date"], between=("date", first, None)
    )
    last_day = pd.to_datetime(activity.date).max() if len(activity) else None
    label[known] = churn_outcomes(activity, users[known].to_numpy(), days, last_day)
    return label


# how a task's logged answers get their outcome; other tasks' answers stay unlabelled
LABELLERS = {"engagement": _post_labels, "virality": _post_labels, "churn": _churn_labels}


def matured_labels(warehouse, task: Task, frame: pd.DataFrame) -> pd.Series:
    """The actual outcome of each logged row where it is known by now, else NaN."""
    labeller = LABELLERS.get(task.name)
    if frame.empty or labeller is None:
        return pd.Series(float("nan"), index=frame.index)
    return labeller(warehouse, task, frame)


def current_window(settings: Settings, warehouse, task: Task, version: int, after=None) -> Window:
    """The rows `version` answered since `after`, parsed and labelled where possible."""
    frame = parse(logged_rows(settings, task.name, version, after))
    frame["label"] = matured_labels(warehouse, task, frame)
    start = frame.logged_at.min() if len(frame) else None
    end = frame.logged_at.max() if len(frame) else None
    return Window(task.name, version, start, end, frame)
