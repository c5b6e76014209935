"""Feature views with explicit dtypes and TTLs, plus the request-time on-demand view."""

from __future__ import annotations

import types
from datetime import timedelta
from typing import Any

from feast import FeatureView, Field, RequestSource
from feast.data_source import DataSource
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64, Int64, String

from feature_repo.entities import TAG_SLOTS, category, hashtag, hashtag_tag, post, user
from ingestion.schema import HISTORY_DAYS

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

# churn_v2's view of going quiet: the last days' activity against the account's usual rate
USER_ACTIVITY_TREND_FIELDS = [
    Field(name="active_days_3d", dtype=Int64),
    Field(name="active_days_14d", dtype=Int64),
    Field(name="usual_active_rate", dtype=Float64),
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


draft_request = RequestSource(
    name="draft_request",
    schema=[
        Field(name="post_type", dtype=String),
        Field(name="post_category", dtype=String),
        Field(name="is_paid", dtype=Int64),
        Field(name="posted_at", dtype=Int64),
        Field(name="caption", dtype=String),
        Field(name="hashtags", dtype=String),
    ],
)


@on_demand_feature_view(
    name="draft_features",
    sources=[draft_request],
    schema=[
        Field(name="content_type", dtype=String),
        Field(name="content_category", dtype=String),
        Field(name="paid", dtype=Int64),
        Field(name="posting_hour", dtype=Int64),
        Field(name="posting_weekday", dtype=Int64),
        Field(name="caption_length", dtype=Int64),
        Field(name="hashtag_count", dtype=Int64),
    ],
    mode="python",
)
def draft_features(inputs: dict[str, Any]) -> dict[str, Any]:
    """What a draft says about itself: type, category, paid, planned UTC hour and weekday,
    caption length and hashtag count."""
    posted = inputs["posted_at"]
    return {
        "content_type": [str(t) for t in inputs["post_type"]],
        "content_category": [str(c) for c in inputs["post_category"]],
        "paid": [int(p) for p in inputs["is_paid"]],
        "posting_hour": [int(ts) // 3600 % 24 for ts in posted],
        "posting_weekday": [(int(ts) // 86400 + 3) % 7 for ts in posted],
        "caption_length": [len(c or "") for c in inputs["caption"]],
        "hashtag_count": [len((h or "").split()) for h in inputs["hashtags"]],
    }


def _fresh(udf):
    """A copy of a transformation for each build: Feast's decorator rewrites the function's
    module to `__main__`, after which a second build cannot find its source."""
    copy = types.FunctionType(
        udf.__code__, udf.__globals__, udf.__name__, udf.__defaults__, udf.__closure__
    )
    copy.__doc__ = udf.__doc__
    return copy


def author_affinity(inputs: dict[str, Any]) -> dict[str, Any]:
    """The author's posts so far and the share of them in the draft's category (an unknown
    author has 0 posts and no share; a known one with none in the category has share 0).
    Feast runs the function's source on its own: helpers it needs are defined inside."""

    def _known(value: Any) -> bool:  # a looked-up value is None online and NaN offline
        return value is not None and value == value

    prior, share = [], []
    for total, in_category in zip(inputs["posts_all"], inputs["category_posts"], strict=True):
        n = int(total) if _known(total) else 0
        prior.append(n)
        k = int(in_category) if _known(in_category) else 0
        share.append(k / n if n > 0 else float("nan"))
    return {"author_prior_posts": prior, "author_category_share": share}


def draft_hashtags(inputs: dict[str, Any]) -> dict[str, Any]:
    """Momentum and popularity of a draft's hashtags (the day before), over the tags found;
    0 when none of them is known, as for a post without hashtags."""
    from feature_repo.entities import MAX_DRAFT_TAGS

    def _known(value: Any) -> bool:  # a looked-up value is None online and NaN offline
        return value is not None and value == value

    slots = range(1, MAX_DRAFT_TAGS + 1)
    momentum = list(zip(*(inputs[f"tag{i}_momentum"] for i in slots), strict=True))
    popularity = list(zip(*(inputs[f"tag{i}_popularity"] for i in slots), strict=True))
    out: dict[str, list] = {
        "hashtag_momentum_mean": [],
        "hashtag_momentum_max": [],
        "hashtag_popularity_mean": [],
        "hashtags_known": [],
    }
    for moms, pops in zip(momentum, popularity, strict=True):
        m = [float(v) for v in moms if _known(v)]
        p = [float(v) for v in pops if _known(v)]
        out["hashtag_momentum_mean"].append(sum(m) / len(m) if m else 0.0)
        out["hashtag_momentum_max"].append(max(m) if m else 0.0)
        out["hashtag_popularity_mean"].append(sum(p) / len(p) if p else 0.0)
        out["hashtags_known"].append(len(m))
    return out


def tag_slot_view(i: int, source: DataSource) -> FeatureView:
    return FeatureView(
        name=f"hashtag_slot_{i}",
        entities=[TAG_SLOTS[i - 1]],
        ttl=timedelta(days=3),
        schema=[
            Field(name=f"tag{i}_momentum", dtype=Float64),
            Field(name=f"tag{i}_popularity", dtype=Float64),
        ],
        source=source,
        description=f"Trend score and 28-day usage of a draft's hashtag number {i}, by text.",
    )


def build_draft_views(
    sources: dict[str, DataSource], slot_sources: list[DataSource]
) -> dict[str, Any]:
    """Views a draft post reads: author lookups, hashtag slot lookups, and the on-demand views
    that turn them and the request into model inputs (the same code offline and online)."""
    history = FeatureView(
        name="author_history",
        entities=[user],
        ttl=timedelta(days=35),
        schema=[Field(name="posts_all", dtype=Int64)],
        source=sources["user_engagement_metrics"],
        description="Posts an account has published so far.",
    )
    by_category = FeatureView(
        name="author_category",
        entities=[user, category],
        ttl=timedelta(days=3650),  # one row per day the author posted in it: no expiry
        schema=[Field(name="category_posts", dtype=Int64)],
        source=sources["author_category_posts"],
        description="Posts an account has published so far in one category.",
    )
    slots = [tag_slot_view(i, src) for i, src in enumerate(slot_sources, start=1)]
    affinity = on_demand_feature_view(
        name="author_affinity",
        sources=[history, by_category],
        schema=[
            Field(name="author_prior_posts", dtype=Int64),
            Field(name="author_category_share", dtype=Float64),
        ],
        mode="python",
    )(_fresh(author_affinity))
    tags = on_demand_feature_view(
        name="draft_hashtags",
        sources=[*slots],
        schema=[
            Field(name="hashtag_momentum_mean", dtype=Float64),
            Field(name="hashtag_momentum_max", dtype=Float64),
            Field(name="hashtag_popularity_mean", dtype=Float64),
            Field(name="hashtags_known", dtype=Int64),
        ],
        mode="python",
    )(_fresh(draft_hashtags))
    views: dict[str, Any] = {"author_history": history, "author_category": by_category}
    views |= {v.name: v for v in slots}
    return views | {"author_affinity": affinity, "draft_hashtags": tags}


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
        "user_activity_trend": FeatureView(
            name="user_activity_trend",
            entities=[user],
            ttl=timedelta(days=35),
            schema=USER_ACTIVITY_TREND_FIELDS,
            source=sources["user_engagement_metrics"],
            description="An account's last days of activity and its usual rate of active days.",
        ),
        "post_context": FeatureView(
            name="post_context",
            entities=[post],
            ttl=timedelta(days=30),
            schema=POST_CONTEXT_FIELDS,
            source=sources["post_features"],
            description="What was known about a post when it was published.",
            # offline only: training sets join it, but nothing is served by post id (a
            # draft has none), and one online key per post was 82% of the online store's
            # keys and of materialization's time (docs/scale-out.md)
            online=False,
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


trend_request = RequestSource(
    name="trend_request",
    schema=[
        Field(name="horizon", dtype=Int64),  # days after the origin the forecast is for
        Field(name="origin_day", dtype=Int64),  # the last day of known usage, days since 1970
    ],
)

# the trend model's inputs: what `trend_inputs` computes, plus `horizon` from the request
TREND_FEATURES = [
    Field(name="target_dow", dtype=Int64),
    Field(name="seasonal_naive", dtype=Float64),
    Field(name="same_dow_mean_4w", dtype=Float64),
    *[Field(name=f"lag_{k}", dtype=Float64) for k in range(1, HISTORY_DAYS + 1)],
    # what `hashtag_momentum` gave trend_v1, recomputed from the same history
    *HASHTAG_MOMENTUM_FIELDS,
]


def trend_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
    """A hashtag's forecast inputs for one horizon from its last 28 days of usage, as the
    trend label query defines them: usage `lag_k` (k-1 days before the origin), the
    seasonal-naive value (the same weekday, whole weeks before the target day), the mean of
    four such weeks, the target's weekday, and the momentum figures of the origin day. A
    hashtag without history reads as zero usage. Helpers live inside: Feast runs the source."""
    import math

    def _count(value: Any) -> int:  # a looked-up value is None online and NaN offline
        return int(value) if value is not None and value == value else 0

    days = 28
    history = list(zip(*(inputs[f"usage_d{k}"] for k in range(1, days + 1)), strict=True))
    names = ["target_dow", "seasonal_naive", "same_dow_mean_4w"] + [
        f"lag_{k}" for k in range(1, days + 1)
    ]
    names += ["usage", "engagement", "usage_lag_1", "usage_lag_7", "usage_mean_7d"]
    names += ["usage_mean_28d", "trend_score", "dow"]
    out: dict[str, list] = {name: [] for name in names}
    rows = zip(
        history, inputs["engagement_d1"], inputs["horizon"], inputs["origin_day"], strict=True
    )
    for used, engaged, horizon, origin in rows:
        u = [float(_count(v)) for v in used]  # u[k - 1]: usage k - 1 days before the origin
        h, day = int(horizon), int(origin)
        back = 7 * math.ceil(h / 7) - h  # days before the origin of the same weekday
        out["target_dow"].append((day + h + 3) % 7)  # 1970-01-01 was a Thursday (3)
        out["seasonal_naive"].append(u[back])
        out["same_dow_mean_4w"].append(sum(u[back + 7 * w] for w in range(4)) / 4)
        for k in range(1, days + 1):
            out[f"lag_{k}"].append(u[k - 1])
        mean7, mean28 = sum(u[:7]) / 7.0, sum(u) / 28.0
        out["usage"].append(int(u[0]))
        out["engagement"].append(_count(engaged))
        out["usage_lag_1"].append(u[1])
        out["usage_lag_7"].append(u[7])
        out["usage_mean_7d"].append(mean7)
        out["usage_mean_28d"].append(mean28)
        out["trend_score"].append((mean7 - mean28) / math.sqrt(mean28 + 1.0))
        out["dow"].append((day + 3) % 7)
    return out


def build_trend_views(sources: dict[str, DataSource]) -> dict[str, Any]:
    """The hashtag history by text and the on-demand view that turns it and the request
    (horizon, origin) into the trend model's inputs, offline and online alike."""
    history = FeatureView(
        name="hashtag_history",
        entities=[hashtag_tag],
        ttl=timedelta(days=3),
        schema=[
            Field(name="usage_day", dtype=Int64),
            Field(name="engagement_d1", dtype=Int64),
            *[Field(name=f"usage_d{k}", dtype=Int64) for k in range(1, HISTORY_DAYS + 1)],
        ],
        source=sources["hashtag_history"],
        description="A hashtag's daily usage over the last 28 days, by its text.",
    )
    inputs = on_demand_feature_view(
        name="trend_inputs",
        sources=[history, trend_request],
        schema=TREND_FEATURES,
        mode="python",
    )(_fresh(trend_inputs))
    return {"hashtag_history": history, "trend_inputs": inputs}
