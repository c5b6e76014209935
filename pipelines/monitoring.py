"""Monitoring flows: check a task, retrain when drift persists, publish; loop with --watch."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from configs.settings import Settings
from ingestion.warehouse import open_warehouse
from monitoring import checks, trigger

log = logging.getLogger(__name__)


def monitor(settings: Settings, task: str, retrain: bool = True, progress=None):
    """check -> (debounced) retrain behind the gate -> report, run and record. The check
    claims the task's window under the warehouse's named lock `check.<task>`: a second
    process checking the task meanwhile is refused (`CheckBusy`), so a window is checked and
    recorded once. One process at a time retrains a task: the others record the retrain as
    skipped."""
    warehouse = open_warehouse(settings)
    with warehouse.exclusive(f"check.{task}") as claimed:
        if not claimed:
            raise checks.CheckBusy(
                f"{task}: another process is checking its window now (it records the check)"
            )
        return _check_and_retrain(settings, warehouse, task, retrain, progress)


def _check_and_retrain(settings: Settings, warehouse, task: str, retrain: bool, progress):
    seen = trigger.retrains(warehouse, task) if retrain else frozenset()
    result, snapshot = checks.run_check(settings, task, warehouse)
    due, held_back = trigger.retrain_decision(settings, warehouse, result)
    if held_back and retrain:
        result = replace(result, notes=[*result.notes, held_back])
    if not (retrain and due):
        return checks.publish(settings, warehouse, result, snapshot)
    # published under the lock too: the next holder reads this retrain, which ends the streak
    with warehouse.exclusive(f"retrain.{task}") as held:
        skipped = trigger.skip_reason(warehouse, task, held, seen)
        if skipped:
            result = replace(result, retrain={"skipped": skipped})
        elif trigger.should_retrain(settings, warehouse, result):  # another check may have ended it
            try:
                from pipelines.training import retrain as run_retrain  # defers MLflow and models

                outcome = run_retrain(settings, warehouse, task, progress)
            except Exception as exc:  # recorded with the check, then raised: never lost
                checks.publish(
                    settings, warehouse, replace(result, retrain={"error": str(exc)}), snapshot
                )
                raise
            result = replace(result, retrain=outcome)
        return checks.publish(settings, warehouse, result, snapshot)


def recent_checks(settings: Settings, task: str | None, n: int = 20):
    """The `n` newest recorded checks (of `task`, or of every task), oldest first."""
    return checks.checks(open_warehouse(settings), task).tail(n)


WAITING = (checks.NotEnoughRows, checks.CheckBusy)  # judged later: not failures


def monitor_all(settings: Settings, retrain: bool = True, on_result: Callable | None = None):
    """Check every monitored task, whatever one of them does. Returns the results, the tasks
    that cannot be judged (no champion, too few rows: reported, not fatal) and the tasks whose
    check failed (an unreadable log, a failed retrain: reported, and the run fails), each with
    one line saying why."""
    results, problems, failures = [], {}, {}
    for task in settings.monitoring.tasks:
        try:
            result = monitor(settings, task, retrain)
        except checks.MonitorError as exc:
            problems[task] = str(exc)
            continue
        except Exception as exc:  # noqa: BLE001 - the next task is checked all the same
            log.exception("monitor %s failed", task)
            failures[task] = f"{task}: {_one_line(exc)}"
            continue
        results.append(result)
        if on_result:
            on_result(result)
    return results, problems, failures


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
