"""ETL: raw tables -> analytics tables that the feature store and the label queries read.

Pure functions of data frames; `run_etl` is the only function that touches the warehouse.
Every rolling engagement figure uses only posts whose 7-day label window has closed, so a
feature row stamped at day d never contains an outcome that was unknown at d.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from configs.settings import Settings
from ingestion.etl_engines import run_on_duckdb, run_on_postgres
from ingestion.schema import HISTORY_DAYS, RAW_TABLES
from ingestion.warehouse import Warehouse, WarehouseError

LABEL_DAYS = 7  # engagement is counted over a post's first 7 days
EPOCH = pd.Timestamp("1970-01-01")
NEVER = 999  # days-since value for "never happened"


@dataclass(frozen=True)
class Calendar:
    """Dense day index over the data's date range."""

    start: pd.Timestamp  # naive midnight
    days: int

    @classmethod
    def of(cls, posts: pd.DataFrame) -> Calendar:
        dates = posts.created_at.dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize()
        return cls(dates.min(), int((dates.max() - dates.min()).days) + 1)

    def index(self, ts: pd.Series) -> np.ndarray:
        naive = ts.dt.tz_convert("UTC").dt.tz_localize(None)
        return ((naive - self.start) // pd.Timedelta(days=1)).to_numpy().astype(np.int64)

    def dates(self) -> pd.DatetimeIndex:
        return pd.date_range(self.start, periods=self.days, freq="D")


def _dense(rows: np.ndarray, cols: np.ndarray, shape, weights=None) -> np.ndarray:
    out = np.zeros(shape)
    ok = (cols >= 0) & (cols < shape[1])
    np.add.at(out, (rows[ok], cols[ok]), 1.0 if weights is None else np.asarray(weights)[ok])
    return out


def _window_sum(m: np.ndarray, width: int, lag: int = 0) -> np.ndarray:
    """Sum over days (d - lag - width, d - lag] for every d, via cumulative sums."""
    c = np.concatenate([np.zeros((m.shape[0], 1)), m.cumsum(axis=1)], axis=1)
    d = np.arange(m.shape[1])
    hi = np.clip(d - lag + 1, 0, m.shape[1])
    lo = np.clip(d - lag - width + 1, 0, m.shape[1])
    return c[:, hi] - c[:, lo]


def _days_since(event: np.ndarray) -> np.ndarray:
    """Days since the last day with event > 0 (inclusive), NEVER if none yet."""
    n_days = event.shape[1]
    idx = np.where(event > 0, np.arange(n_days)[None, :], -1)
    last = np.maximum.accumulate(idx, axis=1)
    return np.where(last >= 0, np.arange(n_days)[None, :] - last, NEVER)


def interactions(posts: pd.DataFrame) -> pd.Series:
    return posts.likes + posts.comments + posts.shares + posts.saves


# What the engagement target measures, per `engagement_definition.denominator` (docs/own-data.md)
ENGAGEMENT_TARGETS = {
    "reach": "interactions / reach over the post's first 7 days",
    "followers": "interactions / the account's followers over the post's first 7 days",
    "none": "log(1 + interactions) per post over its first 7 days",
}


def engagement_denominator(definition: pd.DataFrame | None) -> str:
    """The warehouse's engagement target; simulated data (no definition) is per reach."""
    if definition is None or definition.empty:
        return "reach"
    return str(definition.denominator.iloc[0])


def engagement_terms(
    posts: pd.DataFrame, follower_counts: pd.DataFrame | None, denominator: str
) -> pd.DataFrame:
    """Per post: what engagement and share rates divide, and by what.

    Rolling author rates are sum(numerator) / sum(denominator) over matured posts, so with
    `none` (denominator 1, numerator log1p) they are the mean log interactions per post.
    """
    inter = interactions(posts).astype(float)
    if denominator == "none":
        return pd.DataFrame(
            {"inter": np.log1p(inter), "shares": np.log1p(posts.shares.astype(float)), "base": 1.0},
            index=posts.index,
        )
    if denominator == "followers":
        by_post = (
            follower_counts.set_index("post_id").followers
            if follower_counts is not None and len(follower_counts)
            else pd.Series(dtype=float)
        )
        base = posts.post_id.map(by_post).astype(float)
    else:
        base = posts.reach.astype(float)
    return pd.DataFrame(
        {"inter": inter, "shares": posts.shares.astype(float), "base": base.clip(lower=1)},
        index=posts.index,
    )


def content_performance(
    posts: pd.DataFrame, comments: pd.DataFrame, terms: pd.DataFrame | None = None
) -> pd.DataFrame:
    sentiment = (
        comments.groupby("post_id").sentiment.mean() if len(comments) else pd.Series(dtype=float)
    )
    inter = interactions(posts)
    terms = engagement_terms(posts, None, "reach") if terms is None else terms
    return pd.DataFrame(
        {
            "post_id": posts.post_id,
            "user_id": posts.user_id,
            "created_at": posts.created_at,
            "date": posts.created_at.dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize(),
            "post_type": posts.post_type,
            "category": posts.category,
            "reach": posts.reach,
            "interactions": inter,
            "engagement_rate": terms.inter / terms.base,
            "share_rate": terms.shares / terms.base,
            "avg_sentiment": posts.post_id.map(sentiment).astype(float).fillna(0.0),
            "label_available_at": posts.created_at + pd.Timedelta(days=LABEL_DAYS),
        }
    )


def user_activity(posts: pd.DataFrame, likes: pd.DataFrame, comments: pd.DataFrame) -> pd.DataFrame:
    def per_day(df: pd.DataFrame, name: str) -> pd.Series:
        date = df.created_at.dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize()
        return df.groupby([df.user_id, date]).size().rename(name)

    parts = [
        per_day(posts, "posts"),
        per_day(likes, "likes_given"),
        per_day(comments, "comments_given"),
    ]
    out = pd.concat(parts, axis=1).fillna(0).astype(np.int64).reset_index()
    return out.rename(columns={"created_at": "date"})


def user_engagement_metrics(
    users: pd.DataFrame,
    posts: pd.DataFrame,
    follows: pd.DataFrame,
    activity: pd.DataFrame,
    cal: Calendar,
    terms: pd.DataFrame | None = None,
    follower_counts: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per user and day from the user's first day; stamped at the day's end."""
    terms = engagement_terms(posts, None, "reach") if terms is None else terms
    n_u = int(users.user_id.max()) + 1
    shape = (n_u, cal.days)
    p_day = cal.index(posts.created_at)
    uid = posts.user_id.to_numpy()
    posts_m = _dense(uid, p_day, shape)
    inter_m = _dense(uid, p_day, shape, terms.inter.to_numpy())
    base_m = _dense(uid, p_day, shape, terms.base.to_numpy())
    reach_m = _dense(uid, p_day, shape, posts.reach.to_numpy())
    f_day = np.clip(cal.index(follows.created_at), 0, None) if len(follows) else np.array([], int)
    followers = _dense(follows.followee_id.to_numpy(), f_day, shape).cumsum(axis=1)
    followers = _observed_followers(follower_counts, followers, cal)
    a_day = cal.index(pd.to_datetime(activity.date).dt.tz_localize("UTC"))
    a_uid = activity.user_id.to_numpy()
    active_m = _dense(a_uid, a_day, shape)
    likes_m = _dense(a_uid, a_day, shape, activity.likes_given.to_numpy())
    comm_m = _dense(a_uid, a_day, shape, activity.comments_given.to_numpy())

    with np.errstate(invalid="ignore", divide="ignore"):
        er28 = _window_sum(inter_m, 28, LABEL_DAYS) / _window_sum(base_m, 28, LABEL_DAYS)
        er7 = _window_sum(inter_m, 7, LABEL_DAYS) / _window_sum(base_m, 7, LABEL_DAYS)
        avg_reach = _window_sum(reach_m, 28, LABEL_DAYS) / _window_sum(posts_m, 28, LABEL_DAYS)
        er_all = _window_sum(inter_m, cal.days, LABEL_DAYS) / _window_sum(
            base_m, cal.days, LABEL_DAYS
        )
    matured_all = _window_sum(posts_m, cal.days, LABEL_DAYS)
    growth = (
        followers - np.concatenate([np.zeros((n_u, 7)), followers[:, :-7]], axis=1)[:, : cal.days]
    )

    signup = cal.index(users.created_at)
    first = np.zeros(n_u, dtype=np.int64)
    first[users.user_id.to_numpy()] = np.clip(signup, 0, None)
    known = np.zeros(n_u, dtype=bool)
    known[users.user_id.to_numpy()] = True
    age = np.zeros(n_u, dtype=np.int64)
    age[users.user_id.to_numpy()] = signup
    day = np.arange(cal.days)[None, :]
    mask = known[:, None] & (day >= first[:, None])
    u_idx, d_idx = np.nonzero(mask)

    def take(m: np.ndarray) -> np.ndarray:
        return m[u_idx, d_idx]

    dates = cal.dates()[d_idx]
    return pd.DataFrame(
        {
            "user_id": u_idx.astype(np.int64),
            "date": dates,
            "event_timestamp": (dates + pd.Timedelta(days=1)).tz_localize("UTC"),
            "followers": take(followers).astype(np.int64),
            "follower_growth_7d": take(growth).astype(np.int64),
            "posts_7d": take(_window_sum(posts_m, 7)).astype(np.int64),
            "posts_28d": take(_window_sum(posts_m, 28)).astype(np.int64),
            "engagement_rate_28d": take(er28),
            "engagement_rate_7d": take(er7),
            "avg_reach_28d": take(avg_reach),
            "active_days_7d": take(_window_sum(active_m > 0, 7)).astype(np.int64),
            "active_days_28d": take(_window_sum(active_m > 0, 28)).astype(np.int64),
            "days_since_last_activity": take(_days_since(active_m)).astype(np.int64),
            "days_since_last_post": take(_days_since(posts_m)).astype(np.int64),
            "likes_given_28d": take(_window_sum(likes_m, 28)).astype(np.int64),
            "comments_given_28d": take(_window_sum(comm_m, 28)).astype(np.int64),
            "account_age_days": (d_idx - age[u_idx]).astype(np.int64),
            "engagement_rate_all": take(er_all),
            "matured_posts_all": take(matured_all).astype(np.int64),
            "posts_all": take(_window_sum(posts_m, cal.days)).astype(np.int64),
        }
    )


def _observed_followers(
    follower_counts: pd.DataFrame | None, from_follows: np.ndarray, cal: Calendar
) -> np.ndarray:
    """Followers per user and day: the last count an export reported (carried forward from
    the day it was observed), else the count built from the follows table."""
    if follower_counts is None or follower_counts.empty:
        return from_follows
    day = cal.index(follower_counts.observed_at)
    ok = (day >= 0) & (day < cal.days) & (follower_counts.user_id.to_numpy() < len(from_follows))
    last = (
        follower_counts.assign(day=day)[ok]
        .sort_values(["observed_at", "post_id"])
        .drop_duplicates(["user_id", "day"], keep="last")
    )
    seen = pd.DataFrame(np.nan, index=range(len(from_follows)), columns=range(cal.days))
    seen.values[last.user_id.to_numpy(), last.day.to_numpy()] = last.followers.to_numpy()
    carried = seen.ffill(axis=1).to_numpy()
    return np.where(np.isnan(carried), from_follows, carried)


def hashtag_daily(
    hashtags: pd.DataFrame, post_hashtags: pd.DataFrame, posts: pd.DataFrame, cal: Calendar
) -> pd.DataFrame:
    n_h = int(hashtags.hashtag_id.max()) + 1 if len(hashtags) else 0
    shape = (n_h, cal.days)
    joined = post_hashtags.merge(posts[["post_id", "created_at"]], on="post_id")
    joined["interactions"] = joined.post_id.map(interactions(posts).set_axis(posts.post_id))
    h_idx = joined.hashtag_id.to_numpy()
    d_idx = cal.index(joined.created_at)
    usage = _dense(h_idx, d_idx, shape)
    engagement = _dense(h_idx, d_idx, shape, joined.interactions.to_numpy())
    mean7 = _window_sum(usage, 7) / 7.0
    mean28 = _window_sum(usage, 28) / 28.0

    def lag(m: np.ndarray, k: int) -> np.ndarray:
        out = np.full(m.shape, np.nan)  # shorter exports than k days have no lag at all
        out[:, k:] = m[:, : max(m.shape[1] - k, 0)]
        return out

    hh, dd = np.meshgrid(np.arange(n_h), np.arange(cal.days), indexing="ij")
    dates = cal.dates()[dd.ravel()]
    tag_of = hashtags.set_index("hashtag_id").tag.reindex(range(n_h)).fillna("").to_numpy()
    return pd.DataFrame(
        {
            "hashtag_id": hh.ravel().astype(np.int64),
            "tag": tag_of[hh.ravel()],
            "date": dates,
            "event_timestamp": (dates + pd.Timedelta(days=1)).tz_localize("UTC"),
            "usage": usage.ravel().astype(np.int64),
            "engagement": engagement.ravel().astype(np.int64),
            "usage_lag_1": lag(usage, 1).ravel(),
            "usage_lag_7": lag(usage, 7).ravel(),
            "usage_mean_7d": mean7.ravel(),
            "usage_mean_28d": mean28.ravel(),
            "trend_score": ((mean7 - mean28) / np.sqrt(mean28 + 1.0)).ravel(),
            "dow": dates.dayofweek.to_numpy().astype(np.int64),
        }
    )


def hashtag_history(daily: pd.DataFrame, days: int = HISTORY_DAYS) -> pd.DataFrame:
    """Per hashtag with a text and day: its usage on each of the last `days` days (`usage_d1`
    is the day itself, `usage_dk` the day k-1 before; 0 before the data starts), the day's
    engagement and the day's number since 1970-01-01, stamped like `hashtag_daily` (the day
    after). What a forecast made at the end of the day reads online."""
    daily = daily[daily.tag.fillna("") != ""]
    usage = daily.pivot(index="hashtag_id", columns="date", values="usage").sort_index(axis=1)
    engagement = daily.pivot(index="hashtag_id", columns="date", values="engagement")
    n_h, n_d = usage.shape
    matrix = usage.to_numpy(dtype=np.int64)
    padded = np.concatenate([np.zeros((n_h, days - 1), np.int64), matrix], axis=1)
    grid_h, grid_d = np.meshgrid(np.arange(n_h), np.arange(n_d), indexing="ij")
    hh, dd = grid_h.ravel(), grid_d.ravel()
    dates = usage.columns[dd]
    tags = daily.drop_duplicates("hashtag_id").set_index("hashtag_id").tag.reindex(usage.index)
    return pd.DataFrame(
        {
            "hashtag_id": usage.index.to_numpy()[hh].astype(np.int64),
            "tag": tags.to_numpy()[hh],
            "date": dates,
            "event_timestamp": (dates + pd.Timedelta(days=1)).tz_localize("UTC"),
            "usage_day": ((dates - EPOCH) // pd.Timedelta(days=1)).to_numpy().astype(np.int64),
            "engagement_d1": engagement.reindex_like(usage).to_numpy(dtype=np.int64)[hh, dd],
            **{f"usage_d{k}": padded[hh, dd + days - k] for k in range(1, days + 1)},
        }
    )


def post_features(
    posts: pd.DataFrame,
    post_hashtags: pd.DataFrame,
    tags_daily: pd.DataFrame,
    user_metrics: pd.DataFrame,
    cal: Calendar,
) -> pd.DataFrame:
    """Context of each post as known when it was published (hashtag stats of the day before)."""
    day = cal.index(posts.created_at)
    prev = pd.DataFrame({"post_id": posts.post_id.to_numpy(), "prev": day - 1})
    tags = post_hashtags.merge(prev, on="post_id")
    stats = tags_daily.assign(prev=cal.index(tags_daily.event_timestamp) - 1)[
        ["hashtag_id", "prev", "trend_score", "usage_mean_28d"]
    ]
    tags = tags.merge(stats, on=["hashtag_id", "prev"], how="left")
    agg = tags.groupby("post_id").agg(
        hashtag_momentum_mean=("trend_score", "mean"),
        hashtag_momentum_max=("trend_score", "max"),
        hashtag_popularity_mean=("usage_mean_28d", "mean"),
    )
    fol = user_metrics[["user_id", "date", "followers"]].assign(
        prev=cal.index(user_metrics.event_timestamp) - 1
    )
    author = prev.assign(user_id=posts.user_id.to_numpy()).merge(
        fol[["user_id", "prev", "followers"]], on=["user_id", "prev"], how="left"
    )
    out = pd.DataFrame(
        {
            "post_id": posts.post_id.to_numpy(),
            "user_id": posts.user_id.to_numpy(),
            "event_timestamp": posts.created_at.to_numpy(),
            "date": posts.created_at.dt.tz_convert("UTC")
            .dt.tz_localize(None)
            .dt.normalize()
            .to_numpy(),
            "post_type": posts.post_type.to_numpy(),
            "category": posts.category.to_numpy(),
            "is_paid": posts.is_paid.astype(np.int64).to_numpy(),
            "has_campaign": posts.campaign_id.notna().astype(np.int64).to_numpy(),
            "author_followers": author.set_index("post_id")
            .followers.reindex(posts.post_id)
            .fillna(0)
            .to_numpy(),
            "posted_at": (posts.created_at.astype("int64") // 10**9).to_numpy(),
            "caption": posts.caption.fillna("").to_numpy(),
            "hashtags": posts.hashtags.fillna("").to_numpy(),
        }
    )
    out = out.merge(agg, left_on="post_id", right_index=True, how="left")
    out["author_prior_posts"], out["author_category_share"] = _author_history(posts)
    out["event_timestamp"] = pd.to_datetime(out.event_timestamp, utc=True)
    return out.fillna(
        {"hashtag_momentum_mean": 0.0, "hashtag_momentum_max": 0.0, "hashtag_popularity_mean": 0.0}
    )


def _author_history(posts: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per post: how many posts its author published before, and the share of those in the
    post's category (known at publishing time; a proxy for the author's interests)."""
    order = posts.sort_values(["user_id", "created_at", "post_id"]).index
    ordered = posts.loc[order]
    prior = ordered.groupby("user_id").cumcount().to_numpy()
    prior_in_cat = ordered.groupby(["user_id", "category"]).cumcount().to_numpy()
    share = np.where(prior > 0, prior_in_cat / np.maximum(prior, 1), np.nan)
    by_post = pd.DataFrame({"prior": prior, "share": share}, index=order).reindex(posts.index)
    return by_post.prior.to_numpy().astype(np.int64), by_post.share.to_numpy()


def author_category_posts(posts: pd.DataFrame) -> pd.DataFrame:
    """Per author and category, posts published up to each day they posted in it (stamped at
    the day's end): the author's category affinity for a draft, keyed by what the draft names."""
    date = posts.created_at.dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize()
    daily = (
        posts.assign(date=date)
        .groupby(["user_id", "category", "date"])
        .size()
        .rename("category_posts")
        .reset_index()
        .sort_values(["user_id", "category", "date"])
    )
    daily["category_posts"] = daily.groupby(["user_id", "category"]).category_posts.cumsum()
    daily["event_timestamp"] = (daily.date + pd.Timedelta(days=1)).dt.tz_localize("UTC")
    return daily.astype({"category_posts": np.int64}).reset_index(drop=True)


def build_analytics(raw: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """All analytics tables from the raw tables (no I/O)."""
    posts = raw["content_posts"]
    if posts.empty:
        raise ValueError("content_posts is empty: nothing to transform")
    cal = Calendar.of(posts)
    follower_counts = raw.get("follower_counts")
    denominator = engagement_denominator(raw.get("engagement_definition"))
    terms = engagement_terms(posts, follower_counts, denominator)
    activity = user_activity(posts, raw["likes"], raw["comments"])
    metrics = user_engagement_metrics(
        raw["users"], posts, raw["follows"], activity, cal, terms, follower_counts
    )
    tags_daily = hashtag_daily(raw["hashtags"], raw["post_hashtags"], posts, cal)
    return {
        "user_activity": activity,
        "user_engagement_metrics": metrics,
        "content_performance_metrics": content_performance(posts, raw["comments"], terms),
        "hashtag_daily": tags_daily,
        "hashtag_history": hashtag_history(tags_daily),
        "post_features": post_features(posts, raw["post_hashtags"], tags_daily, metrics, cal),
        "author_category_posts": author_category_posts(posts),
    }


def read_raw(warehouse: Warehouse) -> dict[str, pd.DataFrame]:
    raw = {}
    for name, table in RAW_TABLES.items():
        if warehouse.exists(name):
            raw[name] = warehouse.read(name)
        elif name in ("content_posts", "users"):
            raise WarehouseError(
                f"raw table {name} is missing (run `smap simulate` or `smap ingest csv`)"
            )
        else:
            raw[name] = table.conform(pd.DataFrame({c: [] for c in table.columns}))
    return raw


# warehouse.type -> where the analytics SQL runs: DuckDB over the Parquet files, or inside
# PostgreSQL (the lake's runner is `etl_engines.run_on_spark`)
ETL_ENGINES: dict[str, Callable[..., dict[str, int]]] = {
    "parquet": run_on_duckdb,
    "postgres": run_on_postgres,
}


def run_etl(
    settings: Settings,
    warehouse: Warehouse,
    since: pd.Timestamp | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """Recompute analytics tables on the profile's engine and replace their date partitions
    from `since` on; `progress` hears "transform", then each table's name."""
    tick = progress or (lambda _name: None)
    return ETL_ENGINES[settings.warehouse.type](settings, warehouse, since, tick)
