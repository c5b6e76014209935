"""Recommendation: fresh posts a user will like, ranked (`smap recommend --train`).

Trained, logged, registered and gated by `training/recommender.py`: the gate scores a
version's ranking of the held-out days' like pools and crowns it only if its hit-rate@10
beats popularity's (likes and comments received so far) there.
"""

from typing import TYPE_CHECKING, cast

import numpy as np
import pandas as pd

from ingestion.warehouse import Warehouse
from training.task import Task
from training.trainers import Untrainable

if TYPE_CHECKING:
    from training.task import Trainer


def held_out_likes(warehouse: Warehouse) -> pd.DataFrame:
    """The interactions the model is judged on: likes (viewer, post, time)."""
    return warehouse.read("likes", columns=["user_id", "post_id", "created_at"])


def popularity(frame: pd.DataFrame) -> np.ndarray:
    """Likes and comments each candidate received before the query."""
    return frame["popularity"].to_numpy(float)


TASK = Task(
    name="recommendation",
    entity="user",
    # Untrainable: `smap train` refuses it and names `smap recommend --train`
    trainer=cast("Trainer", Untrainable("ranking", "smap recommend --train")),
    feature_service="recommendation_v1",  # not Feast: likes, comments, follows from the warehouse
    metric="hit_rate_at_10",
    direction="maximize",
    families=("als",),
    label_query=held_out_likes,
    label_days=0,
    baseline="popularity: the likes and comments a fresh post has received so far",
    naive=popularity,
    target="the fresh posts a user likes",
)
