"""`smap recommend`: score fresh posts with the engagement champion (or the documented proxy),
rank them for a user, or measure hit-rate on held-out likes against popularity."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from analytics import recommend as rec
from configs.errors import SmapError
from configs.settings import Settings
from feature_repo.store import open_store
from ingestion.warehouse import open_warehouse
from training import tags as tag
from training.dataset import historical_features
from training.labels import published_rows

log = logging.getLogger(__name__)


def champion_scores(settings: Settings, post_ids) -> tuple[pd.Series, dict[str, str]]:
    """The engagement champion's prediction for each post as the draft it was, its features
    joined point in time from the offline store (as in training)."""
    import mlflow

    from training.packaging import input_frame  # these three import MLflow
    from training.registry import current_champion
    from training.tracking import use_tracking

    client = use_tracking(settings)
    version = current_champion(client, "engagement")
    if version is None:
        raise SmapError("no engagement champion (train it: `smap train engagement`)")
    found = client.get_model_version("engagement", str(version))
    service = tag.read(found.tags, tag.FEATURES, "")
    model = mlflow.pyfunc.load_model(f"models:/engagement/{version}").unwrap_python_model()
    rows = published_rows(open_warehouse(settings), post_ids)
    frame, _ = historical_features(
        open_store(settings), rows, service, settings.training.retrieval_chunk_rows
    )
    features, categorical = model.features, list(model.encoder.categories)
    predicted = model.predict_frame(input_frame(frame, features, categorical))
    scores = pd.Series(predicted, index=frame.post_id.to_numpy()).sort_index()
    return scores, {
        "scored_by": f"engagement champion v{version}",
        "feature_service": service,
        "run_id": found.run_id or "",
    }


def engagement_scores(
    settings: Settings, posts: pd.DataFrame, use_champion: bool = True
) -> tuple[pd.Series, dict[str, str]]:
    """Predicted engagement of `posts` by post_id: the champion's, else the proxy (why: in
    `scored_by`)."""
    warehouse = open_warehouse(settings)
    reason = "the proxy was asked for"
    if use_champion:
        try:
            scores, lineage = champion_scores(settings, posts.post_id)
            missing = set(posts.post_id) - set(scores.index)
            if not missing:
                return scores, lineage
            reason = f"{len(missing)} posts have no feature rows (run `smap ingest`)"
        except Exception as exc:  # any failure falls back to the documented proxy, said so
            log.info("recommend: engagement champion unusable: %s", exc)
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return rec.proxy_scores(warehouse, posts), {"scored_by": f"{rec.PROXY} ({reason})"}


def recommend_for(
    settings: Settings, user_id: int, n: int = rec.K, use_champion: bool = True
) -> dict[str, Any]:
    """The top `n` fresh posts for `user_id` at the data's present."""
    platform = rec.read_platform(open_warehouse(settings))
    at = platform.now + pd.Timedelta(seconds=1)
    recent = platform.posts[platform.posts.created_at >= at - pd.Timedelta(days=rec.RECENT_DAYS)]
    scores, lineage = engagement_scores(settings, recent, use_champion)
    ranked, categories = rec.recommend(platform, scores, user_id, n, at)
    return {
        "user_id": user_id,
        "at": str(at),
        "interests": sorted(categories) if categories is not None else None,
        "posts": ranked,
        **lineage,
    }


def evaluate(
    settings: Settings,
    holdout_days: int = rec.HOLDOUT_DAYS,
    k: int = rec.K,
    recent_days: int = rec.RECENT_DAYS,
    use_champion: bool = True,
) -> dict[str, Any]:
    """Hit-rate@k of the recommender and of popularity on the held-out likes and comments."""
    platform = rec.read_platform(open_warehouse(settings))
    start = platform.now - pd.Timedelta(days=holdout_days + recent_days)
    window = platform.posts[platform.posts.created_at >= start]
    scores, lineage = engagement_scores(settings, window, use_champion)
    figures = rec.evaluate_ranking(platform, scores, holdout_days, k, recent_days)
    return {
        "k": k,
        "holdout_days": holdout_days,
        "recent_days": recent_days,
        "holdout_start": str(platform.now - pd.Timedelta(days=holdout_days)),
        **lineage,
        "by_interaction": figures,
    }
