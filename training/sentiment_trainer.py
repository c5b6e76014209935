"""The sentiment task through the common stages: comments read from the warehouse, the text
families' search, the best model of the run kept as fitted, VADER as the naive baseline and
as the champion while no trained model beats it. The models live in `training/sentiment.py`,
loaded when first needed so the task registry stays light."""

from __future__ import annotations

import pandas as pd

from training.dataset import ALL_DATA
from training.errors import TaskError
from training.snapshot import StoredSet
from training.task import Task


def _sentiment():
    """The sentiment models (scikit-learn, Keras, VADER, MLflow's model class)."""
    from training import sentiment

    return sentiment


class SentimentTrainer:
    name = "text"
    trainable = True
    refits = False
    binary_label = False

    def candidates(self, task: Task) -> tuple[str, ...]:
        return task.families

    def build(
        self, settings, task, window=ALL_DATA, rebuild=False, progress=None, columns=None
    ) -> StoredSet:
        """Read afresh every time (comments are not stored as a set): `rebuild` changes nothing."""
        ts = _sentiment().sentiment_set(settings, task, window)
        return StoredSet(ts, (settings.warehouse_dir / "comments").resolve(), reused=False)

    def objective(self, ts, families, run_id, selection):
        sentiment = _sentiment()
        data = sentiment.SentimentData.of(ts, selection.seed)
        return sentiment.objective(ts, data, families, run_id)

    def best_model(self, ts, objective, best, study=None):
        if objective.best is None or objective.best[1] != best.number:
            raise TaskError(
                f"{ts.task.name}: the best trial's model was not kept; nothing registered"
            )
        return objective.best[2]

    def model_input(self, ts, frame: pd.DataFrame) -> pd.DataFrame:
        return frame[_sentiment().INPUTS].reset_index(drop=True)

    def score(self, ts, frame, pred, threshold=None) -> dict[str, float]:
        return _sentiment().score(frame, pred)

    def quality(self, y, pred) -> dict[str, float]:
        raise TaskError("sentiment: answers are not monitored")

    def test_extras(self, ts, model, pred) -> dict[str, float]:
        """VADER and the simulator's expressed class on the test rows."""
        sentiment = _sentiment()
        test = ts.part("test")
        oracle = sentiment.oracle_scores(test)
        vader = sentiment.score(test, test[sentiment.LEXICON])
        return {
            **{f"oracle_{k}": v for k, v in oracle.items()},
            **{f"vader_{k}": v for k, v in vader.items()},
        }

    def log_extras(self, ts, model, study, test_metrics) -> None:
        _sentiment().log_extras(ts, model)

    def log_model(self, model, example, family) -> None:
        _sentiment().log_model(model, example, family)

    def evaluate_extras(self, ts, model, predicted) -> dict[str, object]:
        return _sentiment().side_by_side(ts, model, predicted)

    def fallback(self, settings, task: Task):
        """Crown VADER when the task has no champion (no labels needed); None otherwise."""
        return _sentiment().crown_lexicon(settings, task)


SENTIMENT = SentimentTrainer()
