"""The naive baseline every task is measured against: what a person would do without a model.

One definition, used by `smap evaluate` and by the champion gate, so a model the evaluate
report shows below the baseline is never crowned.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.tasks import Task

BASELINES = {
    "engagement": "the author's engagement rate over the last 28 days",
    "virality": "the author's engagement rate over the last 28 days",
    "churn": "days since the user's last activity",
    "trend": "seasonal naive (usage on the same weekday before)",
    "segmentation": "users split into thirds by active days in the last 28 days",
    "content": "the most frequent category of the training part, for every post",
}


def naive_prediction(task: Task, frame: pd.DataFrame) -> np.ndarray:
    """Per-row baseline scores from features only (never the target).

    Posts whose author has no matured post in the last 28 days get the mean of the authors'
    rates that are known in the same frame (for virality: 0, ranked last).
    """
    if task.name in ("engagement", "virality"):
        rate = frame.engagement_rate_28d.astype(float)
        known = rate.dropna()
        fallback = float(known.mean()) if task.name == "engagement" and len(known) else 0.0
        return rate.fillna(fallback).to_numpy()
    if task.name == "churn":
        return frame.days_since_last_activity.astype(float).to_numpy()
    if task.name == "content":  # carried by each row of the content set
        return frame.majority_category.astype(str).to_numpy()
    if task.name == "segmentation":  # activity tiers (fewer where ties merge the cut points)
        active = frame.active_days_28d.astype(float).fillna(0)
        return pd.qcut(active, 3, labels=False, duplicates="drop").to_numpy(dtype=np.int64)
    return frame.seasonal_naive.astype(float).to_numpy()
