"""The churn champion's probabilities, for the lifecycle stages' risk.

The lifecycle analysis ties each stage to the churn model: when the registry holds a `churn`
champion, its calibrated probability of no activity in the next 28 days, averaged over each
stage's users at the newest period end. The champion reads `user_engagement_metrics` columns
only (churn_v2's features are that table's activity columns), so the analysis scores the
table's rows for that day directly, the values Feast would hand the model for that day. No
champion, or a registry that cannot be read: None, and the stages keep the churn label rate.
MLflow is imported only when there is a registry to ask.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pandas as pd

from configs.settings import TRACKING_STORES, Settings

log = logging.getLogger("smap.lifecycle")
TASK = "churn"


class ChurnScorer(NamedTuple):
    """A churn champion: its version, the feature columns it reads, its probabilities."""

    version: int
    features: list[str]
    predict: Callable[[pd.DataFrame], np.ndarray]


def champion_churn(settings: Settings) -> ChurnScorer | None:
    """The registry's churn champion as a scorer, or None (no registry, no champion, or the
    registry cannot be read: logged, the analysis goes on without it)."""
    if not settings.mlflow.tracking_uri and not TRACKING_STORES[settings.mlflow.backend].exists(
        settings
    ):
        return None  # nothing trained on this profile yet: no registry to open
    import mlflow

    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(settings.mlflow.request_timeout_seconds)
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(settings.mlflow.request_max_retries)
    uri = settings.mlflow_tracking_uri
    try:
        client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
        names = {m.name for m in client.search_registered_models()}
        if TASK not in names:
            return None
        version = client.get_registered_model(TASK).aliases.get("champion")
        if version is None:
            return None
        where = client.get_model_version_download_uri(TASK, str(version))
        model = mlflow.pyfunc.load_model(where).unwrap_python_model()
    except Exception:  # a registry outage must not stop the other analyses
        log.exception("reading the churn champion failed: stages keep the churn label rate")
        return None
    return ChurnScorer(int(version), list(model.features), model.predict_frame)


def stage_probabilities(
    stages: pd.DataFrame, metrics: pd.DataFrame, scorer: ChurnScorer
) -> pd.Series:
    """Mean churn probability per stage over the users of `stages` (user_id, stage) that have
    a `metrics` row with every feature the scorer reads."""
    rows = stages.merge(metrics, on="user_id").dropna(subset=scorer.features)
    if rows.empty:
        return pd.Series(dtype=float)
    probability = np.asarray(scorer.predict(rows[scorer.features]), dtype=float)
    return pd.Series(probability, index=rows.index).groupby(rows.stage).mean()
