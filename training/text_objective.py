"""The Optuna objective of the text tasks (content, sentiment): each trial fits one candidate
of a family and scores it on the validation part; the best model of the run is kept, so the
registered version is the one that scored (text models are not refitted from parameters)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import optuna
import pandas as pd

from training.dataset import TrainingSet
from training.search import family_parameter, run_trial


@dataclass
class TextObjective:
    """Given its data once (`data`, what `fit` takes; `validation`, the model's input for the
    validation part); `suggest`, `fit` and `score` are the task's own."""

    ts: TrainingSet
    data: Any
    families: tuple[str, ...]
    run_id: str
    suggest: Callable[[optuna.Trial, str], dict[str, Any]]
    fit: Callable[..., Any]
    score: Callable[[pd.DataFrame, Any], dict[str, float]]
    validation: pd.DataFrame
    metric: str = "macro_f1"
    best: tuple[float, int, Any] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.family_name, self.choices = family_parameter(self.ts.task.families, self.families)

    def __call__(self, trial: optuna.Trial) -> float:
        families = (self.family_name, self.choices)
        return run_trial(trial, self.run_id, self.ts.fingerprint, families, self.evaluate)

    def evaluate(self, trial: optuna.Trial, family: str) -> float:
        params = self.suggest(trial, family)

        def report(step: int, loss: float) -> None:
            trial.report(-loss, step)  # the study maximises: a lower loss is a higher value
            if trial.should_prune():
                raise optuna.TrialPruned()

        model = self.fit(family, params, self.data, report)
        metrics = self.score(self.ts.part("validation"), model.predict_frame(self.validation))
        for name, value in metrics.items():
            trial.set_user_attr(f"val_{name}", value)
        value = metrics[self.metric]
        if self.best is None or value > self.best[0]:
            self.best = (value, trial.number, model)
        return value
