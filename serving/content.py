"""The service's content answers: `classify_content` (the content champion's category and
probabilities) and `recommend_content` (fresh posts ranked by the recommendation champion,
`training/recommender.py`; without one, by predicted engagement, the rules of
`analytics.recommend`).

The recommendation champion (`recommendation@champion`) is looked up again every
`serving.alias_poll_seconds`; its candidates and their features are those of its evaluation
(`training.recommender.Pools`) at the data's present.

Recommendations read posts, follows, likes and comments from the warehouse, kept until the
warehouse says one was rewritten (checked at most every `serving.alias_poll_seconds`). The
newest MAX_SCORED candidates are scored by the engagement champion through the online store,
as drafts (logged as candidates, which monitoring leaves out); without a usable champion or
online store, by the documented proxy (the author's 28-day engagement rate).
"""

from __future__ import annotations

import threading
import time

import pandas as pd
from mlflow.exceptions import MlflowException

from analytics import recommend as rec
from analytics.errors import AnalyticsError
from configs.errors import SmapError
from feature_repo.drafts import hashtag_text, parse_hashtags
from ingestion.warehouse import WarehouseError, open_warehouse
from serving.features import draft_rows
from serving.predictor import Predictor, Unavailable
from serving.schemas import (
    ContentPost,
    ContentPrediction,
    ContentResponse,
    Lineage,
    RecommendedPost,
    RecommendResponse,
)
from training.recommender import AffinityModel, Pools, interactions_of, load_champion, top
from training.tasks.recommendation import TASK as RECOMMENDATION

MAX_SCORED = 500  # candidates scored per request, newest first
TABLES = ["content_posts", "follows", "likes", "comments"]


def recommended_post(post, **score: float) -> RecommendedPost:
    """A post of a recommendation (a row of the warehouse's posts) with what ranked it: the
    champion's `score` or the rule's `predicted_engagement`."""
    return RecommendedPost(
        post_id=int(post.post_id),
        author_id=int(post.user_id),
        category=str(post.category),
        post_type=str(post.post_type),
        published_at=post.created_at.to_pydatetime(),
        **score,
    )


class ContentAnswers:
    def __init__(self, predictor: Predictor, warehouse=None, clock=time.monotonic):
        self.predictor, self.settings = predictor, predictor.settings
        self._warehouse, self._clock = warehouse, clock
        self._lock = threading.Lock()
        self._platform: rec.Platform | None = None
        self._version: str | None = None
        self._checked = float("-inf")
        self._pools: tuple[rec.Platform, Pools] | None = None
        self._ranker: tuple[AffinityModel, int, str] | None = None  # model, version, run id
        self._ranker_checked = float("-inf")

    def warehouse(self):
        if self._warehouse is None:
            self._warehouse = open_warehouse(self.settings)
        return self._warehouse

    # -- classify_content -----------------------------------------------------------------------
    def classify(self, posts: list[ContentPost], request_id: str) -> ContentResponse:
        """Category and per-category probabilities of each post, from the content champion."""
        champion = self.predictor.champion("content")
        frame = pd.DataFrame(
            {
                "caption": [p.caption for p in posts],
                "hashtags": [hashtag_text(parse_hashtags(" ".join(p.hashtags))) for p in posts],
                "post_type": [p.post_type for p in posts],
            }
        )
        model = champion.model
        probabilities = model.predict_proba_frame(frame)
        return ContentResponse(
            predictions=[
                ContentPrediction(
                    category=model.classes[int(row.argmax())],
                    probabilities=dict(zip(model.classes, map(float, row), strict=True)),
                )
                for row in probabilities
            ],
            lineage=self.predictor.lineage(champion, request_id),
        )

    # -- recommend_content ----------------------------------------------------------------------
    def platform(self) -> rec.Platform:
        """Posts, follows and interactions, re-read when one was rewritten since the last check."""
        with self._lock:
            now = self._clock()
            if (
                self._platform is not None
                and now - self._checked < self.settings.serving.alias_poll_seconds
            ):
                return self._platform
            try:
                warehouse = self.warehouse()
                version = warehouse.version(TABLES)
                if version != self._version or self._platform is None:
                    self._platform, self._version = rec.read_platform(warehouse), version
            except (AnalyticsError, SmapError, WarehouseError) as exc:
                raise Unavailable(f"recommend: {str(exc).splitlines()[0]}") from None
            self._checked = now
            return self._platform

    def _champion_scores(self, pool: pd.DataFrame, request_id: str):
        champion = self.predictor.champion("engagement", draft=True)
        rows = draft_rows(  # published posts as the drafts they were
            pool.user_id.tolist(),
            pool.post_type.tolist(),
            pool.category.tolist(),
            [parse_hashtags(h) for h in pool.hashtags],
            pool.caption.fillna("").astype(str).tolist(),
            [t.to_pydatetime() for t in pool.created_at],
            pool.is_paid.fillna(False).astype(bool).tolist(),
        )
        keys = [
            {"user_id": int(u), "planned_at": t, "candidate": True}
            for u, t in zip(pool.user_id, pool.created_at, strict=True)
        ]
        predicted, _missing = self.predictor.score(champion, rows, request_id, keys)
        scores = pd.Series(list(map(float, predicted)), index=pool.post_id.to_numpy())
        return scores, champion

    def ranker(self) -> tuple[AffinityModel, int, str] | None:
        """The recommendation champion (model, version, run id), None without one; a registry
        that does not answer keeps the last one loaded."""
        with self._lock:
            now = self._clock()
            if now - self._ranker_checked < self.settings.serving.alias_poll_seconds:
                return self._ranker
            self._ranker_checked = now
            try:
                self._ranker = load_champion(self.settings)
            except (SmapError, OSError, MlflowException):
                pass
            return self._ranker

    def pools(self, platform: rec.Platform) -> Pools:
        """The candidate arrays of `platform`, built once per read of it."""
        if self._pools is None or self._pools[0] is not platform:
            data = interactions_of(platform.posts, platform.follows, platform.interactions)
            self._pools = (platform, Pools(data))
        return self._pools[1]

    def ranked(
        self, platform: rec.Platform, user_id: int, n: int, request_id: str
    ) -> RecommendResponse | None:
        """The champion's top `n` for `user_id`, None without a champion."""
        found = self.ranker()
        if found is None:
            return None
        model, version, run_id = found
        at = platform.now + pd.Timedelta(seconds=1)
        positions, scores = top(model, self.pools(platform), user_id, at, n)
        posts = platform.posts.iloc[positions]
        return RecommendResponse(
            user_id=user_id,
            interests=None,
            at=at.to_pydatetime(),
            posts=[
                recommended_post(r, score=float(score))
                for r, score in zip(posts.itertuples(), scores, strict=True)
            ],
            scored_by=f"recommendation champion v{version}",
            lineage=Lineage(
                model=RECOMMENDATION.name,
                version=version,
                run_id=run_id,
                feature_service=RECOMMENDATION.feature_service,
                request_id=request_id,
            ),
        )

    def recommend(self, user_id: int, n: int, request_id: str) -> RecommendResponse:
        """The top `n` fresh posts for `user_id` at the data's present."""
        platform = self.platform()
        ranked = self.ranked(platform, user_id, n, request_id)
        if ranked is not None:
            return ranked
        at = platform.now + pd.Timedelta(seconds=1)
        categories = rec.interests(platform, at).get(int(user_id))
        following = rec.followed(platform, user_id, at)
        pool = rec.candidates(platform, user_id, at, categories, following)
        pool = pool.sort_values("created_at", ascending=False, kind="stable").head(MAX_SCORED)
        lineage, scored_by = None, ""
        if len(pool):
            try:
                scores, champion = self._champion_scores(pool, request_id)
                lineage = self.predictor.lineage(champion, request_id)
                scored_by = f"engagement champion v{champion.version}"
            except Unavailable as exc:
                try:
                    scores = rec.proxy_scores(self.warehouse(), pool)
                except (AnalyticsError, SmapError, WarehouseError) as down:
                    raise Unavailable(f"recommend: {str(down).splitlines()[0]}") from None
                scored_by = f"{rec.PROXY} ({exc})"
        else:
            scores, scored_by = pd.Series(dtype=float), "no candidates"
        ranked = rec.rank(pool, scores, n)
        return RecommendResponse(
            user_id=user_id,
            interests=sorted(categories) if categories is not None else None,
            at=at.to_pydatetime(),
            posts=[
                recommended_post(r, predicted_engagement=float(r.score))
                for r in ranked.itertuples()
            ],
            scored_by=scored_by,
            lineage=lineage,
        )
