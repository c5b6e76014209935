"""Churn: the risk that an account has no activity in the next 28 days."""

from training import baseline, labels, matured
from training.task import Serving, Task
from training.trainers import CLASSIFICATION

TASK = Task(
    name="churn",
    entity="user",
    trainer=CLASSIFICATION,
    feature_service="churn_v2",
    metric="roc_auc",
    direction="maximize",
    families=("linear", "forest", "xgboost", "lightgbm", "mlp"),
    label_query=labels.churn_labels,
    label_days=labels.CHURN_DAYS,
    baseline="days since the user's last activity",
    naive=baseline.days_since_last_activity,
    target="no activity in the next 28 days",
    matured_labels=matured.churn_request_outcomes,
    serving=Serving("users"),
)
