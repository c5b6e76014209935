"""When drift starts a retrain, and on which window: the newest labelled days (post-drift
data included); `pipelines.training.retrain` runs the stages on it."""

from __future__ import annotations

import pandas as pd

from configs.settings import Settings
from monitoring.checks import DRIFT, CheckResult, checks
from training.dataset import DataWindow
from training.tasks import get_task


def drift_streak(past: pd.DataFrame, version: int) -> int:
    """Drift verdicts in a row for `version`, newest last, counted since its last retrain."""
    rows = past[past.version == version]
    streak = 0
    for verdict, retrain in zip(rows.verdict[::-1], rows.retrain[::-1], strict=True):
        if verdict != DRIFT or retrain:
            break
        streak += 1
    return streak


def should_retrain(settings: Settings, warehouse, result: CheckResult) -> bool:
    """This check says drift and so did the `consecutive - 1` before it (debounced)."""
    if result.verdict != DRIFT or not settings.monitoring.retrain:
        return False
    earlier = drift_streak(checks(warehouse, result.task), result.version)
    return earlier + 1 >= settings.monitoring.consecutive


def retrains(warehouse, task: str) -> frozenset[str]:
    """Ids of the task's checks that carry a retrain record (done, failed or skipped)."""
    past = checks(warehouse, task)
    return frozenset(past.check_id[past.retrain != ""])


def skip_reason(warehouse, task: str, held: bool, seen: frozenset[str]) -> str:
    """Why a due retrain must not run in this process, or "": another process holds the
    task's retrain lock, or recorded a retrain since this check began (`seen`: the retrain
    records before it), which answered the same drift."""
    if not held:
        return f"another process is retraining {task}"
    if retrains(warehouse, task) - seen:
        return f"another process retrained {task} while this check ran"
    return ""


def retrain_window(settings: Settings, warehouse, task_name: str) -> DataWindow:
    """The newest `retrain_days` of labelled rows: after a drift, older behaviour would
    outvote what the model must learn now."""
    rows = get_task(task_name).label_query(warehouse)
    newest = pd.to_datetime(rows.event_timestamp, utc=True).max()
    return DataWindow(since=newest - pd.Timedelta(days=settings.monitoring.retrain_days))
