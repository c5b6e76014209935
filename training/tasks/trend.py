"""Trend: a hashtag's daily usage 1..30 days ahead (trend_v2 computes the inputs from the
hashtag's history; the horizon is request data)."""

from training import baseline, labels
from training.task import Serving, Task
from training.trainers import FORECAST

TASK = Task(
    name="trend",
    entity="hashtag",
    trainer=FORECAST,
    feature_service="trend_v2",
    metric="mase",
    direction="minimize",
    families=("lightgbm", "xgboost", "forest", "mlp", "lstm"),
    label_query=labels.trend_labels,
    label_days=max(labels.TREND_HORIZONS),
    baseline="seasonal naive (usage on the same weekday before)",
    naive=baseline.seasonal_naive,
    target="daily usage of the hashtag on the target day",
    passthrough=("horizon",),
    split_on="target_timestamp",
    serving=Serving("hashtags"),
)
