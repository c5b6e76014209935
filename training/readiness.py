"""Before any slow work: does the data hold what a task needs? (One line naming what is missing.)

Deliberately imports neither the task table nor Feast, MLflow or the models, so that
`smap train trend` on an export without hashtags says so at once.
"""

from __future__ import annotations

from configs.settings import Settings
from ingestion.warehouse import Warehouse, open_warehouse
from training.errors import TaskError

# task -> (raw table that must have rows, why not, and what would enable the task)
NEEDS: dict[str, tuple[str, str]] = {
    "trend": (
        "hashtags",
        "the data has no hashtag usage to forecast (import a hashtags column)",
    ),
}


def missing_input(task_name: str, warehouse: Warehouse) -> str | None:
    """Why the task cannot train on this warehouse, or None when its inputs are there."""
    if task_name not in NEEDS:
        return None
    table, reason = NEEDS[task_name]
    if not warehouse.exists(table) or warehouse.read(table).empty:
        return f"{task_name}: {reason}"
    return None


def require_inputs(settings: Settings, task_name: str) -> None:
    """Raise TaskError when a task's inputs are absent, before any training set is built."""
    reason = missing_input(task_name, open_warehouse(settings))
    if reason:
        raise TaskError(reason)
