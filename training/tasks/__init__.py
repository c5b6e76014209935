"""The task registry: one module per task, one line here.

Everything smap asks of a task (its labels, training-set source, trainer, metric, baseline,
how its labels mature for monitoring) is on its `Task` record; adding a task is a module
declaring one and a line in `TASKS` (or `register` at run time, as a test or a plugin does).
"""

from __future__ import annotations

from training.errors import TaskError
from training.task import Task
from training.tasks import (
    churn,
    content,
    engagement,
    recommendation,
    segmentation,
    sentiment,
    trend,
    virality,
)

TASKS: dict[str, Task] = {
    t.name: t
    for t in [
        engagement.TASK,
        virality.TASK,
        churn.TASK,
        trend.TASK,
        segmentation.TASK,
        content.TASK,
        recommendation.TASK,
        sentiment.TASK,
    ]
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise TaskError(f"task: unknown task {name!r} (choose {', '.join(TASKS)})")
    return TASKS[name]


def register(task: Task) -> Task:
    """Add a task at run time; a name already taken is refused."""
    if task.name in TASKS:
        raise TaskError(f"task: {task.name!r} is already registered")
    TASKS[task.name] = task
    return task


__all__ = ["TASKS", "Task", "TaskError", "get_task", "register"]
