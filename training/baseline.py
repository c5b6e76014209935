"""The naive baselines tasks are measured against: what a person would do without a model.

Each task names one (`Task.naive`, `Task.baseline` in words); `smap evaluate` and the champion
gate both use it, so a model the evaluate report shows below the baseline is never crowned.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.task import Task


def author_rate(frame: pd.DataFrame) -> np.ndarray:
    """The author's engagement rate over the last 28 days; authors with no matured post in
    that window get the mean of the known rates in the same frame."""
    rate = frame.engagement_rate_28d.astype(float)
    known = rate.dropna()
    return rate.fillna(float(known.mean()) if len(known) else 0.0).to_numpy()


def author_rate_ranked_last_unknown(frame: pd.DataFrame) -> np.ndarray:
    """The author's rate as a score; an author with no recent rate is ranked last."""
    return frame.engagement_rate_28d.astype(float).fillna(0.0).to_numpy()


def days_since_last_activity(frame: pd.DataFrame) -> np.ndarray:
    return frame.days_since_last_activity.astype(float).to_numpy()


def seasonal_naive(frame: pd.DataFrame) -> np.ndarray:
    return frame.seasonal_naive.astype(float).to_numpy()


def majority_category(frame: pd.DataFrame) -> np.ndarray:
    """Carried by each row of the content set: the train part's most frequent category."""
    return frame.majority_category.astype(str).to_numpy()


def activity_tiers(frame: pd.DataFrame) -> np.ndarray:
    """Thirds by active days (fewer where ties merge the cut points)."""
    active = frame.active_days_28d.astype(float).fillna(0)
    return pd.qcut(active, 3, labels=False, duplicates="drop").to_numpy(dtype=np.int64)


def naive_prediction(task: Task, frame: pd.DataFrame) -> np.ndarray:
    """Per-row baseline answers of `task` from features only (never the target)."""
    return np.asarray(task.naive(frame))


def lexicon_class(frame: pd.DataFrame) -> np.ndarray:
    """Carried by each row of the sentiment set: VADER's class of the comment's text."""
    return frame.vader.astype(str).to_numpy()
