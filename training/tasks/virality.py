"""Virality: the probability that a draft lands in the top share-velocity tail."""

from training import baseline, labels, matured
from training.task import Serving, Task
from training.trainers import CLASSIFICATION

TASK = Task(
    name="virality",
    entity="post",
    trainer=CLASSIFICATION,
    feature_service="virality_v2",
    metric="pr_auc",
    direction="maximize",
    families=("linear", "forest", "xgboost", "lightgbm", "mlp"),
    label_query=labels.virality_labels,
    label_days=7,
    baseline="the author's engagement rate over the last 28 days",
    naive=baseline.author_rate_ranked_last_unknown,
    target="the post ends in the top share-rate tail",
    matured_labels=matured.post_outcomes,
    serving=Serving("drafts"),
)
