"""Sentiment: a comment's text in, negative / neutral / positive out. sentiment_v1 names the
request input (the text), read from the warehouse's comments (training/sentiment.py says
why); VADER is the naive baseline and the champion until a trained model beats it."""

from training import baseline, labels
from training.sentiment_trainer import SENTIMENT
from training.task import Serving, Task

TASK = Task(
    name="sentiment",
    entity="comment",
    trainer=SENTIMENT,
    feature_service="sentiment_v1",
    metric="macro_f1",
    direction="maximize",
    families=("tfidf_logreg", "keras_text"),
    label_query=labels.sentiment_labels,
    label_days=0,
    baseline="VADER's class of the comment (vaderSentiment compound score, cut at ±0.05)",
    naive=baseline.lexicon_class,
    target="the comment's sentiment (negative, neutral, positive)",
    serving=Serving("texts"),
)
