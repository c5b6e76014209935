"""How the label of a served answer matures: the outcome monitoring compares it with.

A task names its labeller (`Task.matured_labels`); each takes the warehouse, the task and the
parsed prediction-log rows (`key_*` columns hold the request's entity keys) and returns the
outcome per row where it is known by now, else NaN.
"""

from __future__ import annotations

import pandas as pd

from training.labels import churn_outcomes
from training.task import Task


def post_outcomes(warehouse, task: Task, frame: pd.DataFrame) -> pd.Series:
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


def churn_request_outcomes(warehouse, task: Task, frame: pd.DataFrame) -> pd.Series:
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
