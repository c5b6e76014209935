"""When drift starts a retrain, and the retrain itself: fresh trials on the newest labelled
days (post-drift data included), then the champion gate on that window's recent holdout."""

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


def retrain(settings: Settings, warehouse, task_name: str, progress=None) -> dict:
    """Tune on the retrain window with this run's own trials, register, and gate against the
    champion on the same window's holdout; returns what happened, for the check's record."""
    from training.train import train

    window = retrain_window(settings, warehouse, task_name)
    m = settings.monitoring
    candidates = get_task(task_name).families
    families = tuple(f for f in m.retrain_families or () if f in candidates) or None
    result = train(
        settings,
        task_name,
        trials=m.retrain_trials,
        families=families,
        window=window,
        progress=progress,
    )
    decision = result.decision
    return {
        "since": str(window.since),
        "version": result.version,
        "run_id": result.run_id,
        "decision": decision.decision if decision else "not_gated",
        "champion_after": decision.champion_after if decision else None,
        "challenger_value": decision.challenger_value if decision else None,
        "champion_value": decision.champion_value if decision else None,
        "reason": decision.reason if decision else "",
    }
