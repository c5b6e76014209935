"""Champions loaded from the MLflow registry by alias, kept in their native form (encoder +
estimator), and swapped in place when the alias moves."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from configs.settings import Settings
from serving.features import encode
from serving.poller import Poller
from training import tags as tag
from training.packaging import input_frame
from training.tracking import use_tracking

ALIAS = "champion"
SERVED_TASKS = ("engagement", "virality", "churn", "content", "trend")
log = logging.getLogger(__name__)


class NoChampion(RuntimeError):
    """A task has no model to answer with; the message names it."""


@dataclass(frozen=True)
class Champion:
    task: str
    version: int
    run_id: str
    feature_service: str
    model: Any  # training.packaging.SmapModel
    window: dict[str, str] = field(default_factory=dict)
    arm: str = "champion"  # "challenger" when an experiment's challenger answers (experiments.py)

    @property
    def threshold(self) -> float | None:
        return getattr(self.model, "threshold", None)

    @property
    def features(self) -> list[str]:
        return list(self.model.features)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Scores in the task's units, from the native model (no pyfunc signature checks)."""
        categorical = list(self.model.encoder.categories)
        return self.model.predict_frame(input_frame(frame, self.features, categorical))

    def predict_columns(self, columns: list[list]) -> np.ndarray:
        """`predict` on plain columns in `features` order: encoded straight to the estimator's
        matrix (no DataFrame); forecasts, which rescale by a frame column, take the frame path."""
        features = self.model.features
        if self.model.kind == "forecast":
            return self.predict(pd.DataFrame(dict(zip(features, columns, strict=True))))
        x = encode(columns, features, self.model.encoder)
        return self.model.calibrated(np.asarray(self.model.fitted.predict(x), dtype=float))

    def interval(self, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, float] | None:
        """(low, high, level) of the champion's prediction interval around `pred`; None when
        it carries none (another kind, or trained before intervals)."""
        conformal = getattr(self.model, "conformal", None)
        if conformal is None:
            return None
        low, high = conformal.bounds(pred)
        return low, high, float(conformal.level)


def champion_version(client, task: str):
    """The registry's model version behind `<task>@champion`; None only when the model or the
    alias does not exist. Any other failure raises: it says nothing about the champion."""
    from mlflow.exceptions import MlflowException

    from training.registry import is_absent

    try:
        return client.get_model_version_by_alias(task, ALIAS)
    except MlflowException as exc:
        if is_absent(exc):
            return None
        raise


def _first_line(exc: BaseException) -> str:
    """An error fit for one log line: MLflow wraps SQL errors with the statement and a link."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class _OtherThreads(logging.Filter):
    """Passes the records of every thread but the one that made it."""

    def __init__(self) -> None:
        super().__init__()
        self.thread = threading.get_ident()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread != self.thread


@contextmanager
def _no_mlflow_db_traceback() -> Iterator[None]:
    """MLflow's SQL store logs a full traceback for each failed query before it raises; a poll
    during an outage reports it in one line instead, so only this thread's records are held."""
    logger = logging.getLogger("mlflow.store.db.utils")
    quiet = _OtherThreads()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def load_champion(client, task: str, version) -> Champion:
    import mlflow

    model = mlflow.pyfunc.load_model(f"models:/{task}/{version.version}").unwrap_python_model()
    run = client.get_run(version.run_id)
    service = tag.read(version.tags, tag.FEATURES) or run.data.params.get("feature_service")
    window = {
        k.removeprefix("window_"): v for k, v in run.data.params.items() if k.startswith("window_")
    }
    return Champion(task, int(version.version), version.run_id, service or "", model, window)


class Champions:
    """The current champion of each served task; `refresh` follows the aliases."""

    def __init__(self, settings: Settings, tasks: tuple[str, ...] = SERVED_TASKS):
        self.client = use_tracking(settings)
        self.tasks = tasks
        self._current: dict[str, Champion] = {}
        self._reasons: dict[str, str] = {t: f"{t}: not loaded yet" for t in tasks}
        self._down: set[str] = set()  # tasks whose registry outage was warned about
        self._lock = threading.Lock()

    def get(self, task: str) -> Champion:
        champion = self._current.get(task)  # one dict read: a swap never shows half a model
        if champion is None:
            raise NoChampion(self._reasons.get(task) or f"{task}: not a served task")
        return champion

    def reason(self, task: str) -> str:
        return "" if task in self._current else self._reasons.get(task, "")

    def refresh(self) -> list[str]:
        """Load every champion whose alias points at a version not served yet; returns
        `task vN` for each swap. A failing load, or a registry that fails with anything but
        "not found", keeps the previous champion serving."""
        swapped = []
        with self._lock:
            for task in self.tasks:
                try:
                    with _no_mlflow_db_traceback():
                        version = champion_version(self.client, task)
                except Exception as exc:  # noqa: BLE001 - any failure is an outage, not "none"
                    self._outage(task, exc)
                    continue
                self._reachable(task)
                if version is None:
                    self._current.pop(task, None)
                    self._reasons[task] = (
                        f"{task}: no champion in the registry (train it: `smap train {task}`)"
                    )
                    continue
                current = self._current.get(task)
                if current is not None and current.version == int(version.version):
                    continue
                try:
                    self._current[task] = load_champion(self.client, task, version)
                except Exception as exc:
                    log.exception("loading %s version %s failed", task, version.version)
                    self._reasons[task] = f"{task}: version {version.version} failed to load: {exc}"
                    continue
                swapped.append(f"{task} v{version.version}")
        return swapped

    def _outage(self, task: str, exc: BaseException) -> None:
        """Keep what is loaded and say why a task without a champion has none; warn when the
        outage starts, not on every poll (REST errors differ from poll to poll)."""
        error = _first_line(exc)
        self._reasons[task] = f"{task}: registry not reachable: {error}"
        if task in self._down:
            return
        self._down.add(task)
        current = self._current.get(task)
        keeping = f"keeps serving v{current.version}" if current else "has no champion loaded"
        log.warning("%s: MLflow registry not reachable, %s: %s", task, keeping, error)

    def _reachable(self, task: str) -> None:
        """Close the outage the last warning opened."""
        if task in self._down:
            self._down.discard(task)
            log.info("%s: MLflow registry reachable again", task)


def alias_poller(champions: Champions, seconds: float) -> Poller:
    """Refreshes the champions every `seconds`, logging each swap."""
    return Poller(champions.refresh, seconds, "alias-poller", "champion swap", log)
