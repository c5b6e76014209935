"""`smap models history | rollback`: the champion registry's record of a task, on a typed
Settings.

Importing this module loads MLflow (through training/), so the CLI imports it inside the
commands that use it: `smap --help` stays light.
"""

from __future__ import annotations

import pandas as pd

from configs.settings import Settings
from ingestion.warehouse import open_warehouse
from training.registry import Decision, history, rollback
from training.tasks import get_task
from training.tracking import use_tracking


def champion_history(settings: Settings, task: str) -> pd.DataFrame:
    """Every gate decision of `task`, reconciled with the registry first: a gate stopped
    mid-way is recorded as it ended."""
    return history(open_warehouse(settings), get_task(task), use_tracking(settings))


def rollback_champion(settings: Settings, task: str) -> Decision:
    """Give `champion` back to the previous champion."""
    return rollback(use_tracking(settings), open_warehouse(settings), get_task(task))
