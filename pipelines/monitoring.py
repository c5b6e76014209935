"""Monitoring flows: check a task, retrain when drift persists, publish; loop with --watch."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from configs.settings import Settings
from ingestion.warehouse import open_warehouse
from monitoring import checks, trigger


def monitor(settings: Settings, task: str, retrain: bool = True, progress=None):
    """check -> (debounced) retrain behind the gate -> report, run and record. One process
    at a time retrains a task: the others record the retrain as skipped."""
    warehouse = open_warehouse(settings)
    seen = trigger.retrains(warehouse, task) if retrain else frozenset()
    result, snapshot = checks.run_check(settings, task, warehouse)
    if not (retrain and trigger.should_retrain(settings, warehouse, result)):
        return checks.publish(settings, warehouse, result, snapshot)
    # published under the lock too: the next holder reads this retrain, which ends the streak
    with warehouse.exclusive(f"retrain.{task}") as held:
        skipped = trigger.skip_reason(warehouse, task, held, seen)
        if skipped:
            result = replace(result, retrain={"skipped": skipped})
        elif trigger.should_retrain(settings, warehouse, result):  # another check may have ended it
            try:
                from pipelines.training import retrain  # defers MLflow and the model libraries

                outcome = retrain(settings, warehouse, task, progress)
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


def monitor_all(settings: Settings, retrain: bool = True, on_result: Callable | None = None):
    """Check every monitored task; a task that cannot be judged is reported, not fatal."""
    results, problems = [], {}
    for task in settings.monitoring.tasks:
        try:
            result = monitor(settings, task, retrain)
        except checks.MonitorError as exc:
            problems[task] = str(exc)
            continue
        results.append(result)
        if on_result:
            on_result(result)
    return results, problems


def watch(
    settings: Settings,
    tasks: list[str],
    interval: float,
    on_result: Callable,
    on_wait: Callable,
    rounds: int | None = None,
) -> None:
    """Check `tasks` every `interval` seconds (forever, or `rounds` times); windows with too
    few rows wait for the next round."""
    done = 0
    while rounds is None or done < rounds:
        for task in tasks:
            try:
                on_result(monitor(settings, task))
            except checks.NotEnoughRows as exc:
                on_wait(str(exc))
        done += 1
        if rounds is None or done < rounds:
            time.sleep(interval)
