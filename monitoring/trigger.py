"""When drift starts a retrain, and on which window: the newest labelled days (post-drift
data included); `pipelines.training.retrain` runs the stages on it."""

from __future__ import annotations

import json

import pandas as pd

from configs.settings import Settings
from monitoring.checks import DRIFT, CheckResult, checks, outcome_evidence
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


def _utc(when) -> pd.Timestamp:
    stamp = pd.Timestamp(when)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def last_retrain(past: pd.DataFrame):
    """When the newest retrain that ran (done or failed; not skipped) was checked, or None."""
    ran = [
        at
        for at, record in zip(past.checked_at, past.retrain, strict=True)
        if record and "skipped" not in json.loads(record)
    ]
    return max(ran) if ran else None


def retrain_decision(settings: Settings, warehouse, result: CheckResult) -> tuple[bool, str]:
    """Whether this check starts a retrain, and when a due streak is held back, why. Due: this
    check says drift and so did the `consecutive - 1` before it (debounced). Held back: the
    drift is in the inputs only (no label drift, no quality drop on matured labels: the
    traffic may be odd, not the world changed), or the task was retrained less than
    `retrain_cooldown_minutes` ago."""
    monitoring = settings.monitoring
    if result.verdict != DRIFT or not monitoring.retrain:
        return False, ""
    past = checks(warehouse, result.task)
    if drift_streak(past, result.version) + 1 < monitoring.consecutive:
        return False, ""
    task = get_task(result.task)
    if not outcome_evidence(task, result, monitoring.for_task(result.task)):
        return False, (
            f"retrain held back: the drift is in the inputs only, with no label drift or "
            f"quality drop on matured labels ({result.labelled} labelled)"
        )
    last = last_retrain(past)
    cooldown = pd.Timedelta(minutes=monitoring.retrain_cooldown_minutes)
    if last is not None and _utc(result.checked_at) - _utc(last) < cooldown:
        return False, (
            f"retrain held back: {result.task} was retrained at {_utc(last):%Y-%m-%d %H:%M:%S}"
            f" UTC, within the {monitoring.retrain_cooldown_minutes:g}-minute cooldown"
        )
    return True, ""


def should_retrain(settings: Settings, warehouse, result: CheckResult) -> bool:
    """This check starts a retrain (`retrain_decision`)."""
    return retrain_decision(settings, warehouse, result)[0]


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
