"""Table schemas shared by the simulator, CSV import, ETL and both warehouse backends.

One dict per table (column -> logical type) so that Parquet dtypes, PostgreSQL DDL and
validation all read the same definition.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

HISTORY_DAYS = 28  # days of usage a `hashtag_history` row carries (the trend model's lags)

# logical type -> (pandas dtype, PostgreSQL type)
TYPES: dict[str, tuple[str, str]] = {
    "int": ("int64", "BIGINT"),
    "nint": ("Int64", "BIGINT"),
    "float": ("float64", "DOUBLE PRECISION"),
    "bool": ("bool", "BOOLEAN"),
    "str": ("object", "TEXT"),
    "ts": ("datetime64[ns, UTC]", "TIMESTAMPTZ"),
    "date": ("datetime64[ns]", "DATE"),
}


@dataclass(frozen=True)
class Table:
    name: str
    columns: dict[str, str]
    key: tuple[str, ...] = ()
    partition: str | None = None  # date column that ETL replaces partition by partition
    # a column, or several for one composite index
    indexes: tuple[str | tuple[str, ...], ...] = field(default_factory=tuple)
    # nullable columns a frame may leave out (added after the table's first writers): null
    optional: tuple[str, ...] = ()

    def conform(self, df: pd.DataFrame) -> pd.DataFrame:
        """Return `df` with exactly this table's columns, in order, with their dtypes."""
        missing = [c for c in self.columns if c not in df.columns and c not in self.optional]
        if missing:
            raise ValueError(f"table {self.name}: missing column(s) {', '.join(missing)}")
        absent = [c for c in self.optional if c not in df.columns]
        if absent:
            df = df.assign(**dict.fromkeys(absent))
        out = df.loc[:, list(self.columns)].copy()
        for col, kind in self.columns.items():
            dtype = TYPES[kind][0]
            if kind == "ts":
                out[col] = pd.to_datetime(out[col], utc=True).astype("datetime64[ns, UTC]")
            elif kind == "date":
                out[col] = pd.to_datetime(out[col]).dt.tz_localize(None).dt.normalize()
                out[col] = out[col].astype("datetime64[ns]")
            elif kind == "str":  # text stays text in Parquet and PostgreSQL (a 0 becomes "0")
                values = out[col].astype("object")
                out[col] = values.where(values.isna(), values.astype(str)).astype("object")
                if col in self.optional:  # blank, as PostgreSQL reads a missing text back
                    out[col] = out[col].fillna("")
            else:
                out[col] = out[col].astype(dtype)
        return out.reset_index(drop=True)

    def arrow_schema(self):
        """The Parquet schema: typed even when a column holds no value (an export without
        hashtags writes an empty `hashtag_daily` whose `tag` must still be a string)."""
        import pyarrow as pa

        types = {
            "int": pa.int64(),
            "nint": pa.int64(),
            "float": pa.float64(),
            "bool": pa.bool_(),
            "str": pa.string(),
            "ts": pa.timestamp("ns", tz="UTC"),
            "date": pa.timestamp("ns"),
        }
        return pa.schema([(col, types[kind]) for col, kind in self.columns.items()])


def _t(name, columns, key=(), partition=None, indexes=(), optional=()):
    return Table(name, columns, tuple(key), partition, tuple(indexes), tuple(optional))


RAW_TABLES: dict[str, Table] = {
    t.name: t
    for t in [
        _t(
            "users",
            {
                "user_id": "int",
                "username": "str",
                "created_at": "ts",
                "country": "str",
                "account_type": "str",
                "is_verified": "bool",
            },
            key=["user_id"],
        ),
        _t(
            "content_posts",
            {
                "post_id": "int",
                "user_id": "int",
                "created_at": "ts",
                "post_type": "str",
                "category": "str",
                "caption": "str",
                "hashtags": "str",
                "campaign_id": "nint",
                "is_paid": "bool",
                "reach": "int",
                "impressions": "int",
                "likes": "int",
                "comments": "int",
                "shares": "int",
                "saves": "int",
                "experiment": "str",  # a content experiment the post is in (or null)
                "variant": "str",  # its variant in that experiment (docs/experiments.md)
            },
            key=["post_id"],
            indexes=["user_id", "created_at"],
            optional=["experiment", "variant"],
        ),
        _t(
            "comments",
            {
                "comment_id": "int",
                "post_id": "int",
                "user_id": "int",
                "created_at": "ts",
                "sentiment": "float",
                "text": "str",
                "label": "str",  # negative / neutral / positive where the export has one
            },
            key=["comment_id"],
            indexes=["post_id", "user_id"],
        ),
        _t(
            "likes",
            {"post_id": "int", "user_id": "int", "created_at": "ts"},
            indexes=["post_id", "user_id"],
        ),
        _t(
            "follows",
            {"follower_id": "int", "followee_id": "int", "created_at": "ts"},
            key=["follower_id", "followee_id"],
            indexes=["followee_id"],
        ),
        _t(
            "hashtags",
            {"hashtag_id": "int", "tag": "str", "category": "str"},
            key=["hashtag_id"],
        ),
        _t(
            "post_hashtags",
            {"post_id": "int", "hashtag_id": "int"},
            key=["post_id", "hashtag_id"],
            indexes=["hashtag_id"],
        ),
        # Follower counts an export reports with its posts (page likes, audience size): the
        # account's audience as observed when the post was published.
        _t(
            "follower_counts",
            {"post_id": "int", "user_id": "int", "observed_at": "ts", "followers": "int"},
            key=["post_id"],
            indexes=["user_id"],
        ),
        # The platform of each account and of each post (docs/platforms.md): tables of their
        # own, so warehouses and exports without platforms load as they are (no row: the
        # settings' default platform)
        _t("account_platforms", {"user_id": "int", "platform": "str"}, key=["user_id"]),
        _t(
            "post_platforms",
            {"post_id": "int", "platform": "str"},
            key=["post_id"],
            indexes=["platform"],
        ),
        # What the engagement target divides interactions by (reach | followers | none), set by
        # the first import and kept for the warehouse (no row: reach, as the simulator reports).
        _t("engagement_definition", {"denominator": "str", "defined_at": "ts"}),
        _t(
            "campaigns",
            {
                "campaign_id": "int",
                "user_id": "int",
                "name": "str",
                "objective": "str",
                "start_date": "date",
                "end_date": "date",
                "budget": "float",
            },
            key=["campaign_id"],
        ),
        # The share graph (ingestion/simulate_cascades.py): who shared which post from whom,
        # when, at what depth of the cascade, and how many accounts the share reached. An export
        # without it leaves it empty; the analyses then fall back to the posts' counters.
        _t(
            "share_events",
            {
                "share_id": "int",
                "post_id": "int",
                "user_id": "int",
                "from_user_id": "int",
                "created_at": "ts",
                "depth": "int",
                "reached": "int",
            },
            key=["share_id"],
            indexes=["post_id", "user_id"],
        ),
    ]
}

TRUTH_TABLES: dict[str, Table] = {
    t.name: t
    for t in [
        _t(
            "truth_posts",
            {
                "post_id": "int",
                "expected_engagement_rate": "float",
                "expected_share_rate": "float",
            },
            key=["post_id"],
        ),
        _t(
            "truth_users",
            {
                "user_id": "int",
                "churn_hazard": "float",
                "disengage_day": "int",
                "churn_day": "int",
                "daily_active_prob": "float",
            },
            key=["user_id"],
        ),
        _t(
            "truth_hashtag_daily",
            {"hashtag_id": "int", "date": "date", "expected_usage": "float"},
            key=["hashtag_id", "date"],
        ),
        # the Bayes classifier's category of each post (caption + hashtags), a table of its own
        # so that warehouses written before it existed take it without a migration
        _t(
            "truth_post_categories",
            {"post_id": "int", "oracle_category": "str"},
            key=["post_id"],
        ),
        # the bot bursts the simulator planted in `share_events` (not in the posts' counters)
        _t(
            "truth_bot_bursts",
            {"post_id": "int", "bot_shares": "int", "started_at": "ts"},
            key=["post_id"],
        ),
        # simulator only: the planted content experiments and their true relative lift
        _t(
            "truth_experiments",
            {
                "experiment": "str",
                "true_lift": "float",
                "start_at": "ts",
                "end_at": "ts",
                "posts": "int",
            },
            key=["experiment"],
        ),
        # each user's latent interest per category and quality, the inputs of the expected
        # affinity of a like (ingestion/simulate_interests.py), the recommendations' oracle
        _t(
            "truth_interests",
            {"user_id": "int", "category": "str", "interest": "float", "quality": "float"},
            key=["user_id", "category"],
        ),
        # the class each comment's words were written to express (ingestion/simulate_sentiment.py)
        _t(
            "truth_comment_sentiment",
            {"comment_id": "int", "oracle_sentiment": "str"},
            key=["comment_id"],
        ),
    ]
}

# Feature tables carry a (key, event_timestamp) index per way a feature view looks them up: the
# services offline store asks for the newest row of a key at or before a time, one index probe
# per entity row (feature_repo/postgres_asof.py)
ANALYTICS_TABLES: dict[str, Table] = {
    t.name: t
    for t in [
        _t(
            "user_engagement_metrics",
            {
                "user_id": "int",
                "date": "date",
                "event_timestamp": "ts",
                "followers": "int",
                "follower_growth_7d": "int",
                "posts_7d": "int",
                "posts_28d": "int",
                "engagement_rate_28d": "float",
                "engagement_rate_7d": "float",
                "avg_reach_28d": "float",
                "active_days_7d": "int",
                "active_days_28d": "int",
                "days_since_last_activity": "int",
                "days_since_last_post": "int",
                "likes_given_28d": "int",
                "comments_given_28d": "int",
                "account_age_days": "int",
                "engagement_rate_all": "float",
                "matured_posts_all": "int",
                "posts_all": "int",
                "active_days_3d": "int",
                "active_days_14d": "int",
                "usual_active_rate": "float",
            },
            key=["user_id", "date"],
            partition="date",
            indexes=["event_timestamp", ("user_id", "event_timestamp")],
        ),
        _t(
            "content_performance_metrics",
            {
                "post_id": "int",
                "user_id": "int",
                "created_at": "ts",
                "date": "date",
                "post_type": "str",
                "category": "str",
                "reach": "int",
                "interactions": "int",
                "engagement_rate": "float",
                "share_rate": "float",
                "avg_sentiment": "float",
                "label_available_at": "ts",
                "experiment": "str",
                "variant": "str",
            },
            key=["post_id"],
            partition="date",
            indexes=["created_at"],
        ),
        _t(
            "post_features",
            {
                "post_id": "int",
                "user_id": "int",
                "event_timestamp": "ts",
                "date": "date",
                "post_type": "str",
                "category": "str",
                "is_paid": "int",
                "has_campaign": "int",
                "hashtag_momentum_mean": "float",
                "hashtag_momentum_max": "float",
                "hashtag_popularity_mean": "float",
                "author_followers": "int",
                "author_prior_posts": "int",
                "author_category_share": "float",
                "posted_at": "int",
                "caption": "str",
                "hashtags": "str",
            },
            key=["post_id"],
            partition="date",
            indexes=["event_timestamp"],
        ),
        _t(
            "hashtag_daily",
            {
                "hashtag_id": "int",
                "tag": "str",
                "date": "date",
                "event_timestamp": "ts",
                "usage": "int",
                "engagement": "int",
                "usage_lag_1": "float",
                "usage_lag_7": "float",
                "usage_mean_7d": "float",
                "usage_mean_28d": "float",
                "trend_score": "float",
                "dow": "int",
            },
            key=["hashtag_id", "date"],
            partition="date",
            indexes=[
                "event_timestamp",
                ("tag", "event_timestamp"),
                ("hashtag_id", "event_timestamp"),
            ],
        ),
        _t(
            "hashtag_history",
            {
                "hashtag_id": "int",
                "tag": "str",
                "date": "date",
                "event_timestamp": "ts",
                "usage_day": "int",
                "engagement_d1": "int",
                **{f"usage_d{k}": "int" for k in range(1, HISTORY_DAYS + 1)},
            },
            key=["hashtag_id", "date"],
            partition="date",
            indexes=["event_timestamp", ("tag", "event_timestamp")],
        ),
        _t(
            "author_category_posts",
            {
                "user_id": "int",
                "category": "str",
                "date": "date",
                "event_timestamp": "ts",
                "category_posts": "int",
            },
            key=["user_id", "category", "date"],
            partition="date",
            indexes=["event_timestamp", ("user_id", "category", "event_timestamp")],
        ),
        _t(
            "platform_posts",
            {
                "post_id": "int",
                "user_id": "int",
                "platform": "str",
                "created_at": "ts",
                "date": "date",
                "reach": "int",
                "impressions": "int",
                "likes": "int",
                "comments": "int",
                "shares": "int",
                "saves": "int",
            },
            key=["post_id"],
            partition="date",
            indexes=["platform"],
        ),
        _t(
            "user_activity",
            {
                "user_id": "int",
                "date": "date",
                "posts": "int",
                "likes_given": "int",
                "comments_given": "int",
            },
            key=["user_id", "date"],
            partition="date",
        ),
    ]
}

ALL_TABLES: dict[str, Table] = {**RAW_TABLES, **TRUTH_TABLES, **ANALYTICS_TABLES}

MODEL_TABLES: dict[str, Table] = {
    "champion_history": _t(
        "champion_history",
        {
            "task": "str",
            "version": "int",
            "decision": "str",
            "champion_before": "nint",
            "champion_after": "nint",
            "metric": "str",
            "challenger_value": "float",
            "champion_value": "float",
            "decided_at": "ts",
            "reason": "str",
        },
        indexes=["task"],
    ),
}
ALL_TABLES.update(MODEL_TABLES)

SEGMENT_TABLES: dict[str, Table] = {
    t.name: t
    for t in [
        _t(
            "user_segments",
            {
                "user_id": "int",
                "segment": "int",
                "segment_label": "str",
                "assigned_at": "ts",
                "model_version": "int",
            },
            key=["user_id"],
            indexes=["segment"],
        ),
        _t(
            "segment_profiles",
            {
                "segment": "int",
                "label": "str",
                "size": "int",
                "share": "float",
                "profile_json": "str",
            },
            key=["segment"],
        ),
    ]
}
ALL_TABLES.update(SEGMENT_TABLES)

# Written by the analytics layer (analytics/, `smap analytics run`), read by the dashboard,
# BI tools and the service; on the services profile the two KPI tables are views.
INSIGHT_TABLES: dict[str, Table] = {
    t.name: t
    for t in [
        _t(
            "influencer_network",
            {
                "user_id": "int",
                "username": "str",
                "account_type": "str",
                "category": "str",
                "followers": "int",
                "following": "int",
                "engagement_received": "int",
                "pagerank": "float",
                "rank": "int",
                "category_rank": "int",
                "computed_at": "ts",
            },
            key=["user_id"],
            indexes=["category"],
        ),
        _t(
            "segment_summary",
            {
                "segment": "int",
                "name": "str",
                "size": "int",
                "share": "float",
                "posts_28d_median": "float",
                "active_days_28d_median": "float",
                "engagement_rate_28d_median": "float",
                "followers_median": "float",
                "interactions_given_28d_median": "float",
                "description": "str",
                "model_version": "int",
            },
            key=["segment"],
        ),
        _t(
            "hashtag_trends",
            {
                "hashtag_id": "int",
                "tag": "str",
                "category": "str",
                "date": "date",
                "usage_recent": "int",
                "baseline_daily": "float",
                "growth": "float",
                "trend_score": "float",
                "engagement_recent": "int",
                "rank": "int",
            },
            key=["hashtag_id", "date"],
            partition="date",
        ),
        _t(
            "post_velocity",
            {
                "post_id": "int",
                "user_id": "int",
                "created_at": "ts",
                "as_of": "ts",
                "age_hours": "float",
                "interactions": "int",
                "velocity": "float",
                "expected_velocity": "float",
                "velocity_ratio": "float",
            },
            key=["post_id"],
            indexes=["user_id"],
        ),
        _t(
            "alerts",
            {
                "alert_id": "str",
                "user_id": "int",
                "date": "date",
                "metric": "str",
                "value": "float",
                "median": "float",
                "mad": "float",
                "robust_z": "float",
                "direction": "str",
                "detected_at": "ts",
                "notified_at": "ts",
            },
            key=["alert_id"],
            indexes=["user_id"],
        ),
        _t(
            "campaign_kpis",
            {
                "campaign_id": "int",
                "user_id": "int",
                "name": "str",
                "objective": "str",
                "start_date": "date",
                "end_date": "date",
                "budget": "float",
                "posts": "int",
                "reach": "int",
                "impressions": "int",
                "interactions": "int",
                "shares": "int",
                "engagement_rate": "float",
                "virality_score": "float",
                "followers_at_start": "int",
                "follower_growth": "int",
                "engagers": "int",
                "retained": "int",
                "retention": "float",
                "cost_per_engagement": "float",
                "roi": "float",
            },
            key=["campaign_id"],
        ),
        _t(
            "kpi_daily",
            {
                "date": "date",
                "posts": "int",
                "active_accounts": "int",
                "reach": "int",
                "interactions": "int",
                "engagement_rate": "float",
                "virality_score": "float",
                "new_follows": "int",
            },
            key=["date"],
        ),
    ]
}
ALL_TABLES.update(INSIGHT_TABLES)

MONITORING_TABLES: dict[str, Table] = {
    "drift_checks": _t(
        "drift_checks",
        {
            "check_id": "str",
            "task": "str",
            "version": "int",
            "checked_at": "ts",
            "window_start": "ts",
            "window_end": "ts",
            "rows": "int",
            "labelled": "int",
            "drifted_share": "float",
            "drifted_columns": "str",
            "prediction_score": "float",
            "label_score": "float",
            "metric": "str",
            "quality_value": "float",
            "test_value": "float",
            "verdict": "str",
            "reason": "str",
            "report": "str",
            "monitoring_run": "str",
            "retrain": "str",
        },
        key=["check_id"],
        indexes=["task"],
    ),
    # the running model experiments' figures as last analysed (`smap experiment status`,
    # `smap monitor --summary`, `smap report`): what the dashboard's Experiments section shows
    "model_experiments": _t(
        "model_experiments",
        {
            "task": "str",
            "experiment_id": "str",
            "mode": "str",
            "champion_version": "int",
            "challenger_version": "int",
            "metric": "str",
            "champion_labelled": "int",
            "challenger_labelled": "int",
            "champion_metric": "float",
            "challenger_metric": "float",
            "difference": "float",
            "difference_low": "float",
            "difference_high": "float",
            "sequential_p_value": "float",
            "verdict": "str",
            "analysed_at": "ts",
        },
        key=["task"],
    ),
}
ALL_TABLES.update(MONITORING_TABLES)

# Engagement quality, share cascades and lifecycles (analytics/quality.py, cascades.py,
# lifecycle.py), written by `smap analytics run`
LIFECYCLE_TABLES: dict[str, Table] = {
    t.name: t
    for t in [
        _t(
            "post_quality",
            {
                "post_id": "int",
                "user_id": "int",
                "created_at": "ts",
                "post_type": "str",
                "reach": "int",
                "likes": "int",
                "comments": "int",
                "shares": "int",
                "saves": "int",
                "avg_sentiment": "float",
                "bot_engagements": "int",
                "weighted_engagement": "float",
                "quality_score": "float",
                "quality_class": "str",
            },
            key=["post_id"],
            indexes=["user_id"],
        ),
        _t(
            "account_quality",
            {
                "user_id": "int",
                "posts": "int",
                "reach": "int",
                "weighted_engagement": "float",
                "bot_engagements": "int",
                "quality_score": "float",
                "quality_class": "str",
            },
            key=["user_id"],
        ),
        _t(
            "post_cascades",
            {
                "post_id": "int",
                "user_id": "int",
                "created_at": "ts",
                "post_type": "str",
                "reach": "int",
                "cascade_size": "int",
                "depth": "int",
                "breadth": "int",
                "viral_reach": "int",
                "viral_share": "float",
            },
            key=["post_id"],
            indexes=["user_id"],
        ),
        _t(
            "cascade_starters",
            {
                "user_id": "int",
                "posts": "int",
                "cascades": "int",
                "cascade_shares": "int",
                "mean_size": "float",
                "max_depth": "int",
                "viral_reach": "int",
                "reshared": "int",
                "rank": "int",
            },
            key=["user_id"],
        ),
        _t(
            "engagement_half_life",
            {
                "post_type": "str",
                "kind": "str",
                "posts": "int",
                "events": "int",
                "half_life_hours": "float",
            },
            key=["post_type", "kind"],
        ),
        _t(
            "user_stages",
            {"user_id": "int", "date": "date", "stage": "str"},
            key=["user_id", "date"],
            indexes=["date"],
        ),
        _t(
            "stage_transitions",
            {"from_stage": "str", "to_stage": "str", "users": "int", "rate": "float"},
            key=["from_stage", "to_stage"],
        ),
        _t(
            "stage_summary",
            {
                "stage": "str",
                "users": "int",
                "share": "float",
                "churn_rate": "float",
                "churn_probability": "float",
                "risk_source": "str",
            },
            key=["stage"],
        ),
    ]
}
ALL_TABLES.update(LIFECYCLE_TABLES)
