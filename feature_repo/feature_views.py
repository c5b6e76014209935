"""Feature views with explicit dtypes and TTLs, plus the request-time on-demand view."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from feast import FeatureView, Field, RequestSource
from feast.data_source import DataSource
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64, Int64, String

from feature_repo.entities import hashtag, post, user

USER_ENGAGEMENT_FIELDS = [
    Field(name="followers", dtype=Int64),
    Field(name="follower_growth_7d", dtype=Int64),
    Field(name="posts_7d", dtype=Int64),
    Field(name="posts_28d", dtype=Int64),
    Field(name="engagement_rate_7d", dtype=Float64),
    Field(name="engagement_rate_28d", dtype=Float64),
    Field(name="avg_reach_28d", dtype=Float64),
    Field(name="active_days_7d", dtype=Int64),
    Field(name="active_days_28d", dtype=Int64),
    Field(name="days_since_last_activity", dtype=Int64),
    Field(name="days_since_last_post", dtype=Int64),
    Field(name="likes_given_28d", dtype=Int64),
    Field(name="comments_given_28d", dtype=Int64),
    Field(name="account_age_days", dtype=Int64),
    Field(name="engagement_rate_all", dtype=Float64),
    Field(name="matured_posts_all", dtype=Int64),
]

POST_CONTEXT_FIELDS = [
    Field(name="post_type", dtype=String),
    Field(name="category", dtype=String),
    Field(name="is_paid", dtype=Int64),
    Field(name="has_campaign", dtype=Int64),
    Field(name="author_followers", dtype=Int64),
    Field(name="author_prior_posts", dtype=Int64),
    Field(name="author_category_share", dtype=Float64),
    Field(name="hashtag_momentum_mean", dtype=Float64),
    Field(name="hashtag_momentum_max", dtype=Float64),
    Field(name="hashtag_popularity_mean", dtype=Float64),
]

HASHTAG_MOMENTUM_FIELDS = [
    Field(name="usage", dtype=Int64),
    Field(name="engagement", dtype=Int64),
    Field(name="usage_lag_1", dtype=Float64),
    Field(name="usage_lag_7", dtype=Float64),
    Field(name="usage_mean_7d", dtype=Float64),
    Field(name="usage_mean_28d", dtype=Float64),
    Field(name="trend_score", dtype=Float64),
    Field(name="dow", dtype=Int64),
]

post_request = RequestSource(
    name="post_request",
    schema=[
        Field(name="posted_at", dtype=Int64),
        Field(name="caption", dtype=String),
        Field(name="hashtags", dtype=String),
    ],
)


@on_demand_feature_view(
    name="post_request_features",
    sources=[post_request],
    schema=[
        Field(name="posting_hour", dtype=Int64),
        Field(name="posting_weekday", dtype=Int64),
        Field(name="caption_length", dtype=Int64),
        Field(name="hashtag_count", dtype=Int64),
    ],
    mode="python",
)
def post_request_features(inputs: dict[str, Any]) -> dict[str, Any]:
    """Request-time features of a post (UTC hour and weekday, caption and hashtag counts)."""
    posted = inputs["posted_at"]
    return {
        "posting_hour": [int(ts) // 3600 % 24 for ts in posted],
        "posting_weekday": [(int(ts) // 86400 + 3) % 7 for ts in posted],
        "caption_length": [len(c or "") for c in inputs["caption"]],
        "hashtag_count": [len((h or "").split()) for h in inputs["hashtags"]],
    }


def build_feature_views(sources: dict[str, DataSource]) -> dict[str, FeatureView]:
    return {
        "user_engagement": FeatureView(
            name="user_engagement",
            entities=[user],
            ttl=timedelta(days=35),
            schema=USER_ENGAGEMENT_FIELDS,
            source=sources["user_engagement_metrics"],
            description="Daily rolling engagement, audience and activity per account.",
        ),
        "post_context": FeatureView(
            name="post_context",
            entities=[post],
            ttl=timedelta(days=30),
            schema=POST_CONTEXT_FIELDS,
            source=sources["post_features"],
            description="What was known about a post when it was published.",
        ),
        "hashtag_momentum": FeatureView(
            name="hashtag_momentum",
            entities=[hashtag],
            ttl=timedelta(days=3),
            schema=HASHTAG_MOMENTUM_FIELDS,
            source=sources["hashtag_daily"],
            description="Daily usage, lags and trend score per hashtag.",
        ),
    }
