"""Trending hashtags and the engagement velocity of fresh posts.

Trend score: a tag's uses over the last RECENT_DAYS against what its BASELINE_DAYS before
predict, in Poisson standard deviations: (recent - expected) / sqrt(expected + 1), with
expected = RECENT_DAYS * the baseline's daily mean. Growth is the smoothed ratio
(recent + 1) / (expected + 1) - 1. The score rewards a burst that is both large and
sudden; a tag used 0 -> 1 times grows but does not trend.

Velocity: a fresh post's interactions per hour since publishing, against the author's usual
curve: the author's median interactions per matured post (its label window of 7 days has
closed), times the share of a post's first-week interactions that usually arrive by that age.
That share is read from comment timestamps, the only interaction times tied to a post
(linear over the week when there are too few comments). A ratio above 1 is a post running
ahead of its author's usual pace. Counts are as the warehouse holds them: an export counts
interactions up to the export, while the simulator writes each post's final 7-day count, so
on simulated data fresh posts run ahead by about 1 / that share.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analytics.errors import AnalyticsError
from ingestion.etl import LABEL_DAYS, interactions
from ingestion.schema import INSIGHT_TABLES
from ingestion.warehouse import Warehouse

RECENT_DAYS = 3
BASELINE_DAYS = 7
FRESH_HOURS = 72  # posts younger than this get a velocity
MIN_AGE_HOURS = 1.0  # younger posts are scored as one hour old (no division by ~0)
MIN_MATURED_POSTS = 3  # fewer matured posts: the author's usual is the platform's median
MIN_COMMENTS = 30  # fewer comment timestamps: the arrival curve is linear over the week
WEEK_HOURS = 24 * LABEL_DAYS
TRENDS = INSIGHT_TABLES["hashtag_trends"]
VELOCITY = INSIGHT_TABLES["post_velocity"]


def _trailing(matrix: np.ndarray, width: int, lag: int = 0) -> np.ndarray:
    """Row sums over days (d - lag - width, d - lag]; NaN until the first full trend window."""
    n_rows, n_days = matrix.shape
    sums = np.concatenate([np.zeros((n_rows, 1)), matrix.cumsum(axis=1)], axis=1)
    out = np.full(matrix.shape, np.nan)
    day = np.arange(RECENT_DAYS + BASELINE_DAYS - 1, n_days)
    out[:, day] = sums[:, day + 1 - lag] - sums[:, day + 1 - lag - width]
    return out


def trend_scores(usage: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For a tags x days usage matrix: recent uses, baseline daily mean and trend score per
    cell; NaN where the baseline window is not complete yet."""
    recent = _trailing(usage, RECENT_DAYS)
    baseline = _trailing(usage, BASELINE_DAYS, lag=RECENT_DAYS) / BASELINE_DAYS
    expected = RECENT_DAYS * baseline
    return recent, baseline, (recent - expected) / np.sqrt(expected + 1.0)


def hashtag_trends(daily: pd.DataFrame, hashtags: pd.DataFrame) -> pd.DataFrame:
    """Trend score of every tag on every day with a full baseline, ranked within the day."""
    columns = list(TRENDS.columns)
    if daily.empty:
        return pd.DataFrame({c: [] for c in columns})
    usage = daily.pivot_table("usage", "hashtag_id", "date", aggfunc="sum", fill_value=0)
    engagement = daily.pivot_table(
        "engagement", "hashtag_id", "date", aggfunc="sum", fill_value=0
    ).reindex_like(usage)
    dates = pd.date_range(usage.columns.min(), usage.columns.max(), freq="D")
    usage = usage.reindex(columns=dates, fill_value=0)
    engagement = engagement.reindex(columns=dates, fill_value=0)
    recent, baseline, score = trend_scores(usage.to_numpy(float))
    eng_recent = _trailing(engagement.to_numpy(float), RECENT_DAYS)
    tags = usage.index.to_numpy(np.int64)
    hh, dd = np.meshgrid(np.arange(len(tags)), np.arange(len(dates)), indexing="ij")
    out = pd.DataFrame(
        {
            "hashtag_id": tags[hh.ravel()],
            "date": dates[dd.ravel()],
            "usage_recent": recent.ravel(),
            "baseline_daily": baseline.ravel(),
            "trend_score": score.ravel(),
            "engagement_recent": eng_recent.ravel(),
        }
    ).dropna(subset=["trend_score"])
    out["growth"] = (out.usage_recent + 1) / (RECENT_DAYS * out.baseline_daily + 1) - 1
    names = hashtags.set_index("hashtag_id")
    out["tag"] = out.hashtag_id.map(names.tag).fillna("")
    out["category"] = out.hashtag_id.map(names.category).fillna("")
    out = out.sort_values(["date", "trend_score", "hashtag_id"], ascending=[True, False, True])
    out["rank"] = out.groupby("date").cumcount() + 1
    return out.astype({"usage_recent": np.int64, "engagement_recent": np.int64})[columns]


def trending_hashtags(
    trends: pd.DataFrame, as_of: pd.Timestamp | None = None, n: int = 10
) -> pd.DataFrame:
    """The `n` top-scored tags of one day (default: the newest)."""
    if n < 1:
        raise AnalyticsError(f"n: must be at least 1 (got {n})")
    if trends.empty:
        return trends
    day = pd.Timestamp(as_of).normalize() if as_of is not None else trends.date.max()
    return trends[trends.date == day].sort_values("rank").head(n).reset_index(drop=True)


def arrival_curve(posts: pd.DataFrame, comments: pd.DataFrame, as_of: pd.Timestamp):
    """`share(hours)`: the fraction of a post's first-week interactions that usually arrive
    within `hours` of publishing, from the comment delays on matured posts."""
    matured = posts[posts.created_at <= as_of - pd.Timedelta(days=LABEL_DAYS)]
    published = matured.set_index("post_id").created_at
    joined = comments[comments.post_id.isin(published.index)]
    delay = (joined.created_at - joined.post_id.map(published)).dt.total_seconds() / 3600
    delay = np.sort(delay[(delay >= 0) & (delay <= WEEK_HOURS)].to_numpy())
    if len(delay) < MIN_COMMENTS:
        return lambda hours: np.clip(np.asarray(hours, float) / WEEK_HOURS, 0.0, 1.0)
    return lambda hours: np.searchsorted(delay, np.asarray(hours, float), side="right") / len(delay)


def post_velocity(
    posts: pd.DataFrame, comments: pd.DataFrame, as_of: pd.Timestamp | None = None
) -> pd.DataFrame:
    """Velocity of every post younger than FRESH_HOURS at `as_of` (default: the newest post)."""
    if posts.empty:
        return pd.DataFrame({c: [] for c in VELOCITY.columns})
    as_of = pd.Timestamp(as_of) if as_of is not None else posts.created_at.max()
    total = interactions(posts).astype(float)
    matured = posts.created_at <= as_of - pd.Timedelta(days=LABEL_DAYS)
    typical = total[matured].groupby(posts.user_id[matured]).agg(["median", "size"])
    typical = typical[typical["size"] >= MIN_MATURED_POSTS]["median"]
    platform = float(total[matured].median()) if matured.any() else float(total.median())
    age = (as_of - posts.created_at).dt.total_seconds() / 3600
    fresh = (age >= 0) & (age <= FRESH_HOURS)
    rows = posts[fresh]
    hours = age[fresh].clip(lower=MIN_AGE_HOURS)
    share = np.maximum(arrival_curve(posts, comments, as_of)(hours), 1.0 / WEEK_HOURS)
    usual = rows.user_id.map(typical).fillna(platform).to_numpy(float)
    expected = usual * share
    observed = total[fresh].to_numpy()
    return pd.DataFrame(
        {
            "post_id": rows.post_id.to_numpy(),
            "user_id": rows.user_id.to_numpy(),
            "created_at": rows.created_at.to_numpy(),
            "as_of": as_of,
            "age_hours": hours.to_numpy(),
            "interactions": observed.astype(np.int64),
            "velocity": observed / hours.to_numpy(),
            "expected_velocity": expected / hours.to_numpy(),
            "velocity_ratio": np.divide(
                observed, expected, out=np.full(len(rows), np.nan), where=expected > 0
            ),
        }
    ).sort_values("velocity_ratio", ascending=False, ignore_index=True)


def score_trends(warehouse: Warehouse) -> int:
    """Rewrite `hashtag_trends` from `hashtag_daily`; returns the rows written."""
    daily = warehouse.read("hashtag_daily", columns=["hashtag_id", "date", "usage", "engagement"])
    tags = warehouse.read("hashtags", columns=["hashtag_id", "tag", "category"])
    return warehouse.write(TRENDS, hashtag_trends(daily, tags))


def score_velocity(warehouse: Warehouse, as_of: pd.Timestamp | None = None) -> int:
    """Rewrite `post_velocity` for the posts fresh at `as_of`; returns the rows written."""
    posts = warehouse.read(
        "content_posts",
        columns=["post_id", "user_id", "created_at", "likes", "comments", "shares", "saves"],
    )
    comments = warehouse.read("comments", columns=["post_id", "created_at"])
    return warehouse.write(VELOCITY, post_velocity(posts, comments, as_of))
