"""Engagement: a draft's expected 7-day engagement rate (interactions / reach)."""

from training import baseline, labels, matured
from training.task import Serving, Task
from training.trainers import REGRESSION

TASK = Task(
    name="engagement",
    entity="post",
    trainer=REGRESSION,
    feature_service="engagement_v3",
    metric="r2",
    direction="maximize",
    families=("linear", "forest", "xgboost", "lightgbm", "mlp"),
    label_query=labels.engagement_labels,
    label_days=7,
    baseline="the author's engagement rate over the last 28 days",
    naive=baseline.author_rate,
    target="engagement rate over the post's first 7 days",
    matured_labels=matured.post_outcomes,
    serving=Serving("drafts"),
    offset_rate="engagement_rate_28d",
    offset_count="posts_28d",
)
