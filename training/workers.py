"""Stage: one worker of a study's round. Workers on many hosts share the task's study in the
profile's storage and split one budget of trials without repeats; the last to finish refits
the round's best trial, registers and gates it, once.

A **round** is recorded on the study by its first worker (a study user attribute): its budget
(the number of trials, `--trials`), the number of the study's first trial in it, and the
fingerprint of the training set every trial of it is fitted on. A worker that asks for another
budget, or built a different training set while the round is open, gets a one-line error; a
worker without `--trials` follows the recorded budget. A round that was gated is closed: a
worker on the same data finds its budget spent and runs nothing, a worker on new data (the
ETL ran since) opens the next round on the same study, so the sampler keeps its history.

Two locks, both in the study's storage (PostgreSQL advisory locks on the services and cluster
profiles, file locks beside SQLite's file on local), released by the server or the kernel if
their holder dies:
- *claim*: a worker counts the round's trials and creates its next one under it, so N workers
  never start more than the budget (Optuna's `MaxTrialsCallback` counts after a trial, so
  two workers both seeing one trial left both start one);
- *gate*: taken without waiting by a worker that finds the budget spent and no trial of the
  round running; the round is marked gated before it is released, so a second finisher
  learns who gated instead of registering a second version.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

import optuna
import psycopg2
from optuna.trial import TrialState

from configs.settings import STUDY_STORAGES, PostgresSettings, Settings, SqliteFile
from training.errors import TaskError
from training.search import FAMILY, RUN_ID
from training.task import Task

ROUND = "smap.round"  # study user attr: {budget, first_trial, fingerprint}
GATING = "smap.gating"  # study user attr: {first_trial, worker} of the worker gating
GATED = "smap.gated"  # study user attr: {first_trial, worker, run_id, version} of the last gate
WORKER = "smap.worker"  # trial user attr: host:pid of the worker that ran it
RETRY_OF = "failed_trial"  # Optuna's system attr on a rerun of a dead worker's trial


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# -- locks in the study's storage ------------------------------------------------------------


class StudyLock(Protocol):
    def acquire(self, wait: bool) -> bool: ...
    def release(self) -> None: ...


class AdvisoryLock:
    """A PostgreSQL session advisory lock on a connection of its own."""

    def __init__(self, database: PostgresSettings, key: str):
        self.database, self.key = database, key
        self.conn = None

    def acquire(self, wait: bool) -> bool:
        conn = psycopg2.connect(self.database.dsn())
        conn.autocommit = True
        with conn.cursor() as cur:
            function = "pg_advisory_lock" if wait else "pg_try_advisory_lock"
            cur.execute(f"SELECT {function}(hashtext(%s))", (self.key,))
            got = wait or bool(cur.fetchone()[0])
        if got:
            self.conn = conn
        else:
            conn.close()
        return got

    def release(self) -> None:
        if self.conn is not None:
            self.conn.close()  # ends the session: the server drops its advisory locks
            self.conn = None


class FileLock:
    """An `flock` on a file beside SQLite's database (workers of one host)."""

    def __init__(self, path: Path):
        self.path = path
        self.handle: IO[bytes] | None = None

    def acquire(self, wait: bool) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+b")  # noqa: SIM115 (held until release)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            handle.close()
            return False
        self.handle = handle
        return True

    def release(self) -> None:
        if self.handle is not None:
            self.handle.close()  # closing the file drops its flock
            self.handle = None


def _sqlite_lock(settings: Settings, key: str) -> StudyLock:
    storage = STUDY_STORAGES[settings.optuna.storage]
    assert isinstance(storage, SqliteFile)
    return FileLock(storage.path(settings).with_name(f"optuna.{key}.lock"))


def _postgres_lock(settings: Settings, key: str) -> StudyLock:
    database = STUDY_STORAGES[settings.optuna.storage].server_database(settings)
    assert database is not None
    return AdvisoryLock(database, f"smap.optuna.{database.database}.{key}")


# optuna.storage -> the lock its workers share
STUDY_LOCKS: dict[str, Callable[[Settings, str], StudyLock]] = {
    "sqlite": _sqlite_lock,
    "postgres": _postgres_lock,
}


def study_lock(settings: Settings, study: str, purpose: str) -> StudyLock:
    return STUDY_LOCKS[settings.optuna.storage](settings, f"{study}.{purpose}")


@contextmanager
def held(lock: StudyLock) -> Iterator[StudyLock]:
    lock.acquire(wait=True)
    try:
        yield lock
    finally:
        lock.release()


# -- the round -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Round:
    budget: int
    first_trial: int
    fingerprint: str

    def trials(self, study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
        return [t for t in study.get_trials(deepcopy=False) if t.number >= self.first_trial]

    def tags(self) -> dict[str, str]:
        """For each worker's MLflow run."""
        return {
            "smap.round_first_trial": str(self.first_trial),
            "smap.round_budget": str(self.budget),
        }

    def used(self, study: optuna.Study) -> int:
        """Trials of the budget taken: every trial of the round, a dead worker's trial and its
        rerun counting once."""
        trials = self.trials(study)
        return len(trials) - sum(RETRY_OF in t.system_attrs for t in trials)


def require_refits(task: Task) -> None:
    """The gating worker refits the round's best trial from its parameters: a trainer that
    keeps the model it fitted instead (content's text models) cannot gate others' trials."""
    if not task.trainer.refits:
        raise TaskError(f"--worker: {task.name}'s models are kept as fitted, not refitted; "
                        f"train it with `smap train {task.name}` on one host")  # fmt: skip


def join_round(
    settings: Settings, study: optuna.Study, fingerprint: str, trials: int | None
) -> Round:
    """The study's open round, recorded here if there is none (or the last one was gated and
    the data changed since); a different budget or data is a one-line error."""
    with held(study_lock(settings, study.study_name, "claim")):
        attrs = study.user_attrs
        recorded = Round(**attrs[ROUND]) if ROUND in attrs else None
        gated = attrs.get(GATED, {})
        closed = recorded is not None and gated.get("first_trial") == recorded.first_trial
        if recorded is None or (closed and recorded.fingerprint != fingerprint):
            budget = trials or settings.training.trials
            opened = Round(budget, len(study.get_trials(deepcopy=False)), fingerprint)
            study.set_user_attr(ROUND, opened.__dict__)
            return opened
    if trials is not None and trials != recorded.budget:
        raise TaskError(
            f"--trials: study {study.study_name} has a round of {recorded.budget} trials "
            f"recorded by its first worker (got {trials}); pass --trials {recorded.budget} "
            "or leave it out"
        )
    if recorded.fingerprint != fingerprint:
        raise TaskError(
            f"{study.study_name}: this worker's training set ({fingerprint[:12]}) is not the "
            f"round's ({recorded.fingerprint[:12]}): the data changed while the round runs; "
            "finish the round on the data it started with, then start workers again"
        )
    return recorded


def run_round(
    settings: Settings,
    study: optuna.Study,
    round_: Round,
    objective: Callable[[optuna.Trial], float],
    timeout: float | None = None,
    callbacks=(),
    catch: tuple[type[Exception], ...] = (ValueError, ArithmeticError),
) -> list[int]:
    """Run trials of the round until its budget is spent (or `timeout` seconds have passed):
    each is counted and created under the claim lock, which the trial releases as it starts.
    Returns the numbers of the trials this worker ran."""
    claim = study_lock(settings, study.study_name, "claim")
    me = worker_id()
    mine: list[int] = []
    started = time.monotonic()

    def claimed(trial: optuna.Trial) -> float:
        claim.release()  # the trial exists: other workers may count it and claim theirs
        trial.set_user_attr(WORKER, me)
        mine.append(trial.number)
        return objective(trial)

    while timeout is None or time.monotonic() - started < timeout:
        claim.acquire(wait=True)
        try:
            with warnings.catch_warnings():  # "experimental" since Optuna 2.9
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)  # a dead worker's trial reruns first
            waiting = any(t.state == TrialState.WAITING for t in round_.trials(study))
            if not waiting and round_.used(study) >= round_.budget:
                break
            study.optimize(claimed, n_trials=1, callbacks=list(callbacks), catch=catch)
        finally:
            claim.release()
    return mine


@dataclass(frozen=True)
class Turn:
    """What a worker does once it stops: `gates`, or why not (`reason`, naming who will)."""

    gates: bool
    reason: str = ""


@contextmanager
def finish_round(settings: Settings, study: optuna.Study, round_: Round) -> Iterator[Turn]:
    """Yield whether this worker gates the round; if it does, it holds the gate lock until
    the `with` ends, and the caller marks the round gated with `mark_gated` inside it."""
    trials = round_.trials(study)
    used = round_.used(study)
    if used < round_.budget:
        left = f"{used} of {round_.budget} trials taken; the workers still in the round run"
        yield Turn(False, f"{left} the rest, and the last to finish gates")
        return
    running = [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    if running:
        t = running[0]
        yield Turn(False, f"trial {t.number} still runs on {t.user_attrs.get(WORKER, '?')}: "
                          "the last worker to finish gates")  # fmt: skip
        return
    lock = study_lock(settings, study.study_name, "gate")
    if not lock.acquire(wait=False):
        yield Turn(False, f"{_gating(study, round_)} gates the round")
        return
    try:
        gated = study.user_attrs.get(GATED, {})
        if gated.get("first_trial") == round_.first_trial:
            yield Turn(False, f"budget spent: {gated['worker']} gated the round "
                              f"(version {gated['version']})")  # fmt: skip
            return
        study.set_user_attr(GATING, {"first_trial": round_.first_trial, "worker": worker_id()})
        yield Turn(True)
    finally:
        lock.release()


def _gating(study: optuna.Study, round_: Round) -> str:
    """The worker holding the gate lock, once it has said so (the first thing it does)."""
    for _ in range(50):
        gating = study.user_attrs.get(GATING, {})
        if gating.get("first_trial") == round_.first_trial:
            return f"worker {gating['worker']}"
        time.sleep(0.1)
    return "another worker"


def mark_gated(study: optuna.Study, round_: Round, run_id: str, version: int) -> None:
    study.set_user_attr(
        GATED,
        {
            "first_trial": round_.first_trial,
            "worker": worker_id(),
            "run_id": run_id,
            "version": version,
        },
    )


def best_of_round(study: optuna.Study, round_: Round, task_name: str) -> optuna.trial.FrozenTrial:
    """The round's best completed trial, whichever worker ran it."""
    done = [t for t in round_.trials(study) if t.state == TrialState.COMPLETE]
    if not done:
        raise TaskError(
            f"{task_name}: no trial of the round completed ({len(round_.trials(study))} "
            "finished otherwise); nothing registered"
        )
    pick = max if study.direction == optuna.study.StudyDirection.MAXIMIZE else min
    best = pick(done, key=lambda t: float(t.value))  # type: ignore[arg-type]
    assert FAMILY in best.user_attrs and RUN_ID in best.user_attrs
    return best
