"""The service's sentiment answer: `analyze_sentiment` (the sentiment champion's class and a
score per class for each text). The champion is VADER or a trained model; both are registered
versions of `sentiment`, so the answer and its lineage look the same either way."""

from __future__ import annotations

import pandas as pd

from serving.predictor import Predictor
from serving.schemas import SentimentPrediction, SentimentResponse

CLASSES = ("negative", "neutral", "positive")


def analyze(predictor: Predictor, texts: list[str], request_id: str) -> SentimentResponse:
    """Class and per-class scores of each text, from the sentiment champion."""
    champion = predictor.champion("sentiment")
    scores, classes = champion.model.scores_and_classes(pd.DataFrame({"text": list(texts)}))
    return SentimentResponse(
        predictions=[
            SentimentPrediction(
                sentiment=str(c), scores=dict(zip(CLASSES, map(float, row), strict=True))
            )
            for row, c in zip(scores, classes, strict=True)
        ],
        lineage=predictor.lineage(champion, request_id),
    )
