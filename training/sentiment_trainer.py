"""The sentiment task through the text trainer's stages: comments read from the warehouse, the
text families' search, the best model of the run kept as fitted, VADER as the naive baseline
and as the champion while no trained model beats it. The models live in
`training/sentiment.py`, loaded when first needed so the task registry stays light."""

from __future__ import annotations

from training.dataset import TrainingSet
from training.task import Task
from training.trainers import TextTrainer


def _sentiment():
    """The sentiment models (scikit-learn, Keras, VADER, MLflow's model class)."""
    from training import sentiment

    return sentiment


class SentimentTrainer(TextTrainer):
    """The text trainer over comments, adding VADER: its scores beside the model's, and its
    crowning when the task has no champion."""

    subject = "sentiment"
    table = "comments"

    def models(self):
        return _sentiment()

    def read(self, settings, task, window) -> TrainingSet:
        return self.models().sentiment_set(settings, task, window)

    def data(self, ts, seed: int):
        return self.models().SentimentData.of(ts, seed)

    def test_extras(self, ts, model, pred) -> dict[str, float]:
        """The simulator's expressed class and VADER on the test rows."""
        sentiment = self.models()
        test = ts.part("test")
        vader = sentiment.score(test, test[sentiment.LEXICON])
        return {
            **super().test_extras(ts, model, pred),
            **{f"vader_{k}": v for k, v in vader.items()},
        }

    def evaluate_extras(self, ts, model, predicted) -> dict[str, object]:
        return self.models().side_by_side(ts, model, predicted)

    def fallback(self, settings, task: Task):
        """Crown VADER when the task has no champion (no labels needed); None otherwise."""
        return self.models().crown_lexicon(settings, task)


SENTIMENT = SentimentTrainer()
