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
from training.families.base import input_frame
from training.labels import published_rows

log = logging.getLogger(__name__)


def champion_scores(settings: Settings, post_ids) -> tuple[pd.Series, dict[str, str]]:
    """The engagement champion's prediction for each post as the draft it was, its features
    joined point in time from the offline store (as in training)."""
    from training.registry import champion_entry  # imports MLflow

    entry = champion_entry(settings, "engagement")
    if entry is None:
        raise SmapError("no engagement champion (train it: `smap train engagement`)")
    service = tag.read(entry.tags, tag.FEATURES, "")
    model = entry.load()
    rows = published_rows(open_warehouse(settings), post_ids)
    frame, _ = historical_features(
        open_store(settings), rows, service, settings.training.retrieval_chunk_rows
    )
    features, categorical = model.features, list(model.encoder.categories)
    predicted = model.predict_frame(input_frame(frame, features, categorical))
    scores = pd.Series(predicted, index=frame.post_id.to_numpy()).sort_index()
    return scores, {
        "scored_by": f"engagement champion v{entry.version}",
        "feature_service": service,
        "run_id": entry.run_id,
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
    """The top `n` fresh posts for `user_id` at the data's present: ranked by the
    recommendation champion, or without one by the engagement rule."""
    platform = rec.read_platform(open_warehouse(settings))
    at = platform.now + pd.Timedelta(seconds=1)
    if use_champion:
        ranked = champion_ranking(settings, platform, user_id, n, at)
        if ranked is not None:
            return ranked
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


def _recommender():
    from training import recommender  # imports MLflow and implicit

    return recommender


def champion_ranking(
    settings: Settings, platform: rec.Platform, user_id: int, n: int, at: pd.Timestamp
) -> dict[str, Any] | None:
    """The recommendation champion's top `n` for `user_id` at `at`, None without a champion."""
    recommender = _recommender()
    found = recommender.load_champion(settings)
    if found is None:
        return None
    model, version, _run_id = found
    data = recommender.interactions_of(platform.posts, platform.follows, platform.interactions)
    positions, scores = recommender.top(model, recommender.Pools(data), user_id, at, n)
    return {
        "user_id": user_id,
        "at": str(at),
        "interests": None,
        "posts": platform.posts.iloc[positions].assign(score=scores),
        "scored_by": f"recommendation champion v{version}",
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


def train(
    settings: Settings, holdout_days: int = 7, max_queries: int | None = None
) -> dict[str, Any]:
    """Fit the ALS recommender, log, register and gate it against popularity."""
    recommender = _recommender()
    result = recommender.train_recommender(
        settings,
        open_warehouse(settings),
        holdout_days,
        max_queries or recommender.MAX_QUERIES,
    )
    return {
        "version": result.version,
        "run_id": result.run_id,
        "params": dict(zip(("factors", "regularization", "alpha"), result.params, strict=True)),
        "decision": result.decision.decision,
        "champion": result.decision.champion_after,
        "reason": result.decision.reason,
        "queries": result.queries,
        "methods": _rows(result.holdout),
    }


def _rows(table: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    return [{"method": method, **figures} for method, figures in table.items()]


def evaluate_models(
    settings: Settings, holdout_days: int = 7, k: int = rec.K, max_queries: int | None = None
) -> dict[str, Any]:
    """Hit-rate@k and NDCG@k of popularity, the recommendation champion (and its factor
    score alone) and the oracle on the held-out days' likes."""
    recommender = _recommender()
    data = recommender.read_interactions(open_warehouse(settings))
    days = recommender.split_days(data, holdout_days)
    frame = recommender.ranking_frame(
        data,
        days["test"],
        days["end"],
        max_queries or recommender.MAX_QUERIES,
        settings.training.seed,
    )
    found = recommender.load_champion(settings)
    model, version = (found[0], found[1]) if found is not None else (None, None)
    return {
        "k": k,
        "holdout_days": holdout_days,
        "holdout_start": str(days["test"]),
        "queries": int(frame["query"].nunique()),
        "mean_pool": round(len(frame) / max(frame["query"].nunique(), 1), 1),
        "champion_version": version,
        "note": "" if version else "no recommendation champion: `smap recommend --train`",
        "methods": _rows(recommender.compare(model, frame, k)),
    }
