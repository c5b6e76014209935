"""What a task is: one record carrying everything the rest of smap asks of a model.

The records themselves live in the task registry (`training/tasks/`, one module per task);
this module only defines their shape, so the stages below the registry can take a `Task`
without importing the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd

from configs.settings import Settings, TrainingSettings
from ingestion.warehouse import Warehouse

Direction = Literal["maximize", "minimize"]


class Trainer(Protocol):
    """What the stages, the gate, `smap evaluate` and monitoring ask of a kind of task
    (`training/trainers.py` has the tabular ones, `training/content.py` the text one).

    `Any` stands for the training set (`training.dataset.TrainingSet`) and the stored set
    (`training.snapshot.StoredSet`), which are defined after the task they belong to."""

    name: str
    trainable: bool  # False: only `refuse(task)` is asked (`training.trainers.Untrainable`)
    # True: `best_model` refits a trial from its parameters, so a worker can gate trials other
    # workers ran (`smap train --worker`); False: the run keeps the model it fitted
    refits: bool

    def candidates(self, task: Task) -> tuple[str, ...]: ...

    def build(
        self,
        settings: Settings,
        task: Task,
        window: Any = ...,
        rebuild: bool = False,
        progress: Any = None,
        columns: list[str] | None = None,
    ) -> Any: ...

    def objective(
        self, ts: Any, families: tuple[str, ...], run_id: str, selection: TrainingSettings
    ) -> Any: ...

    def best_model(self, ts: Any, objective: Any, best: Any, study: Any = None) -> Any: ...

    def model_input(self, ts: Any, frame: pd.DataFrame) -> pd.DataFrame: ...

    def score(
        self, ts: Any, frame: pd.DataFrame, pred: Any, threshold: float | None = None
    ) -> dict[str, float]: ...

    def test_extras(self, ts: Any, model: Any, pred: np.ndarray) -> dict[str, float]: ...

    def log_extras(self, ts: Any, model: Any, study: Any, test_metrics: dict) -> None: ...

    def log_model(self, model: Any, example: pd.DataFrame, family: str) -> None: ...

    def evaluate_extras(self, ts: Any, model: Any, predicted: Any) -> dict[str, object]: ...

    def quality(self, y: np.ndarray, pred: np.ndarray) -> dict[str, float]: ...


@dataclass(frozen=True)
class Serving:
    """How the service answers a task. `request` names what a request carries: `drafts`
    (posts not yet published: request data plus the author's online features) or `users`
    (user ids looked up online) are answered by the generic `POST /predict`; other requests
    (`posts` text, `hashtags`) by the task's own endpoint in `serving/service.py`."""

    request: Literal["drafts", "users", "posts", "hashtags", "texts"]


@dataclass(frozen=True)
class Task:
    """A model smap trains, gates, serves and monitors.

    `trainer` decides how it is trained and scored (tabular regression, classification or
    forecast; text; clustering), so no code outside the registry asks what kind a task is.
    """

    name: str
    entity: str
    trainer: Trainer
    feature_service: str  # the Feast FeatureService both training and serving read
    metric: str  # the headline test metric, also the Optuna objective on validation
    direction: Direction
    families: tuple[str, ...]
    label_query: Callable[[Warehouse], pd.DataFrame]
    label_days: int  # label window; time splits keep at least this gap
    baseline: str  # what a person would do without a model, in words
    naive: Callable[[pd.DataFrame], object]  # that baseline's per-row answer, from features
    target: str = ""  # what the model predicts, in words (evaluate, registry descriptions)
    passthrough: tuple[str, ...] = ()  # label-query columns that are model inputs too
    # time column the split is made on; forecasts split on the day they predict, with a gap of
    # at least the longest horizon, so every horizon is tested and no target leaks back
    split_on: str = "event_timestamp"
    # monitoring: the matured label of each logged answer (warehouse, task, window frame)
    matured_labels: Callable[..., pd.Series] | None = None
    serving: Serving | None = None  # None: trained and gated, not served
    # the naive baseline as numeric features in target units, which candidates may learn the
    # residual over (training/families/combine.py:Offset): a rate and the posts it rests on
    offset_rate: str = ""
    offset_count: str = ""

    @property
    def kind(self) -> str:
        """The trainer's name (regression, classification, forecast, text, clustering), for
        lineage and messages; behaviour goes through `trainer`, never through this name."""
        return self.trainer.name
