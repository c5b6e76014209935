"""One retrain of a task at a time, on both profiles: the warehouse's named lock is exclusive
across processes and freed when its holder is killed; `monitor` skips a due retrain that
another process is running, or has just run, and records the skip.

No training: the check is a real Evidently drift run on a synthetic shifted window recorded
through the real warehouse and MLflow; only the training call is replaced, by one that fails
the test when it is not expected.
"""

from __future__ import annotations

import json
import multiprocessing
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from configs.settings import DriftThresholds
from ingestion.warehouse import open_warehouse
from monitoring.checks import DRIFT, OK, CheckResult, checks, record
from training.reference import PREDICTION, Reference, column_kinds, sketch

pytestmark = pytest.mark.integration

TASK = "engagement"
LOCK = f"retrain.{TASK}"
FORK = multiprocessing.get_context("fork")  # children get the test's settings as they are


def _try(settings, name: str, answer) -> None:
    with open_warehouse(settings).exclusive(name) as held:
        answer.put(held)


def _hold(settings, name: str, answer) -> None:
    with open_warehouse(settings).exclusive(name) as held:
        answer.put(held)
        time.sleep(600)


def taken_elsewhere(settings, name: str = LOCK) -> bool:
    """Whether another process gets the lock `name` now."""
    answer = FORK.Queue()
    child = FORK.Process(target=_try, args=(settings, name, answer))
    child.start()
    got = answer.get(timeout=60)
    child.join(timeout=30)
    return got


@contextmanager
def held_elsewhere(settings, name: str = LOCK):
    """Another process holding the lock `name` until the block ends (then it is killed)."""
    answer = FORK.Queue()
    holder = FORK.Process(target=_hold, args=(settings, name, answer), daemon=True)
    holder.start()
    try:
        assert answer.get(timeout=60) is True
        yield holder
    finally:
        holder.kill()
        holder.join(timeout=30)


def test_the_lock_is_one_holders_at_a_time(any_settings):
    warehouse = open_warehouse(any_settings)
    with warehouse.exclusive(LOCK) as held:
        assert held is True
        assert taken_elsewhere(any_settings) is False
        assert taken_elsewhere(any_settings, "retrain.virality") is True  # names are apart
        with warehouse.exclusive(LOCK) as again:  # another holder in this process too
            assert again is False
    assert taken_elsewhere(any_settings) is True


def test_a_killed_holder_frees_the_lock(any_settings):
    warehouse = open_warehouse(any_settings)
    with held_elsewhere(any_settings) as holder:
        with warehouse.exclusive(LOCK) as held:
            assert held is False
        holder.kill()
        holder.join(timeout=30)
        deadline = time.monotonic() + 10  # the server notices the closed session at once
        while True:
            with warehouse.exclusive(LOCK) as held:
                if held or time.monotonic() > deadline:
                    break
            time.sleep(0.1)
        assert held is True


@pytest.fixture(scope="module")
def drift():
    """A real Evidently drift result and snapshot of a shifted window."""
    from monitoring.drift import run_drift

    rng = np.random.default_rng(3)

    def window(shift: float) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "followers": rng.lognormal(6.0 + shift, 1.0, 400),
                "caption_length": rng.normal(120, 30, 400),
                PREDICTION: rng.normal(0.05 + 0.03 * shift, 0.01, 400),
            }
        )

    before, after = window(0.0), window(1.5)
    columns = list(before.columns)
    reference = Reference(TASK, "run", sketch(before, columns), column_kinds(before, columns),
                          len(before), "r2", 0.4, {})  # fmt: skip
    return run_drift(reference, after, DriftThresholds())


def a_check(drift_result, verdict: str = DRIFT, ago: timedelta = timedelta(0), **changes):
    now = datetime.now(UTC) - ago
    result = CheckResult(
        check_id=uuid.uuid4().hex[:12], task=TASK, version=3, run_id="run", checked_at=now,
        window_start=now - timedelta(hours=1), window_end=now, rows=400,
        drifted_share=drift_result.drifted_share,
        drifted_columns=[asdict(c) for c in drift_result.drifted_columns],
        # matured labels drifted too: feature drift alone starts no retrain
        prediction_score=drift_result.prediction.score, label_score=0.3, labelled=400,
        metric="r2", quality_value=float("nan"), test_value=0.4, verdict=verdict,
        reasons=["data drift", "label drift"],
    )  # fmt: skip
    return replace(result, **changes)


@pytest.fixture
def due(any_settings, drift, monkeypatch):
    """A drift streak one check short of `monitoring.consecutive`, a check that drifts, and a
    training call that fails the test unless a test replaces it."""
    settings = any_settings
    warehouse = open_warehouse(settings)
    for n in range(settings.monitoring.consecutive - 1):
        record(warehouse, a_check(drift[0], ago=timedelta(hours=2 + n)))
    monkeypatch.setattr(
        "monitoring.checks.run_check", lambda s, task, w=None: (a_check(drift[0]), drift[1])
    )

    def no_training(*args, **kwargs):
        raise AssertionError("trained although another process retrains this task")

    monkeypatch.setattr("pipelines.training.retrain", no_training)
    return settings


def test_a_due_retrain_runs_while_holding_the_lock(due, monkeypatch):
    from pipelines.monitoring import monitor

    held_while_training = []

    def training(settings, warehouse, task, progress=None):
        held_while_training.append(not taken_elsewhere(settings))
        return {"version": 4, "decision": "promoted", "since": "2026-01-01", "reason": "better"}

    monkeypatch.setattr("pipelines.training.retrain", training)
    result = monitor(due, TASK)
    assert held_while_training == [True]
    assert result.retrain["decision"] == "promoted"
    assert taken_elsewhere(due) is True  # released after publishing


def test_a_retrain_running_elsewhere_is_skipped_and_recorded(due, capsys, monkeypatch):
    from pipelines.cli import print_check, print_checks_summary
    from pipelines.monitoring import monitor

    monkeypatch.setenv("COLUMNS", "200")  # each row of the summary on one line

    with held_elsewhere(due):
        result = monitor(due, TASK)
    why = f"another process is retraining {TASK}"
    assert result.retrain == {"skipped": why}
    stored = checks(open_warehouse(due), TASK)
    assert json.loads(stored.retrain.iloc[-1]) == {"skipped": why}
    assert stored.check_id.iloc[-1] == result.check_id

    print_check(result)
    assert f"skipped: {why}" in capsys.readouterr().out
    print_checks_summary(stored)
    summary = capsys.readouterr().out
    assert "skipped" in summary and "error" not in summary


@pytest.mark.parametrize("meanwhile", ["retrain", "ok"])
def test_what_another_process_recorded_meanwhile_is_read_under_the_lock(
    due, drift, monkeypatch, meanwhile
):
    """Another process's check lands between this check and the retrain lock (a process that
    does not claim the window first: the check lock `check.<task>` keeps new ones out): its
    retrain answered the same drift (skip, recorded), or its calm check ended the streak (no
    retrain due)."""
    from pipelines.monitoring import monitor

    kind = type(open_warehouse(due))
    exclusive = kind.exclusive

    def after_another_check(self, name):
        if not name.startswith("retrain."):  # the check's claim of its window
            return exclusive(self, name)
        other = (
            a_check(drift[0], ago=timedelta(minutes=5), retrain={"version": 4, "decision": "kept"})
            if meanwhile == "retrain"
            else a_check(drift[0], verdict=OK, ago=timedelta(minutes=5))
        )
        record(self, other)
        return exclusive(self, name)

    monkeypatch.setattr(kind, "exclusive", after_another_check)
    result = monitor(due, TASK)
    skipped = f"another process retrained {TASK} while this check ran"
    assert result.retrain == ({"skipped": skipped} if meanwhile == "retrain" else {})
    assert checks(open_warehouse(due), TASK).check_id.iloc[-1] == result.check_id
