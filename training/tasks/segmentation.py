"""Segmentation: k-means segments of users, k chosen in 5..7 (`smap segment`)."""

from typing import TYPE_CHECKING, cast

from training import baseline, labels
from training.task import Task
from training.trainers import CLUSTERING

if TYPE_CHECKING:
    from training.task import Trainer

TASK = Task(
    name="segmentation",
    entity="user",
    # Untrainable: the stages read `trainable` (False) and then only ask it to `refuse`
    trainer=cast("Trainer", CLUSTERING),
    feature_service="segmentation_v1",
    metric="silhouette",
    direction="maximize",
    families=("kmeans",),
    label_query=labels.segmentation_labels,
    label_days=0,
    baseline="users split into thirds by active days in the last 28 days",
    naive=baseline.activity_tiers,
    target="the user's behaviour segment",
)
