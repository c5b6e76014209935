"""Label queries: entity rows with event timestamps and targets, built from analytics tables.

Each returns a frame with the entity keys, `event_timestamp` (when the prediction is made),
any request-time inputs, `target`, and `oracle` (the simulator's ground-truth score, NaN on
real data). Feature values are never read here: Feast joins them point in time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from feature_repo.drafts import draft_keys
from ingestion.schema import HISTORY_DAYS
from ingestion.simulator import DISENGAGE_TO_CHURN
from ingestion.warehouse import Warehouse
from training.errors import TaskError

CHURN_DAYS = 28
TREND_HORIZONS = (1, 7, 14, 30)
# daily usage history handed to the forecasters (the LSTM reads it as a sequence)
TREND_LAGS = HISTORY_DAYS
VIRAL_QUANTILE = 0.97
WARMUP_DAYS = 7  # skip the first days: no feature history exists yet


def _truth(warehouse: Warehouse, name: str) -> pd.DataFrame | None:
    return warehouse.read(name) if warehouse.exists(name) else None


def _matured_posts(warehouse: Warehouse) -> pd.DataFrame:
    perf = warehouse.read("content_performance_metrics")
    feats = warehouse.read(
        "post_features",
        columns=["post_id", "posted_at", "is_paid", "caption", "hashtags"],
    )
    end = perf.created_at.max()
    start = perf.created_at.min() + pd.Timedelta(days=WARMUP_DAYS)
    perf = perf[(perf.label_available_at <= end) & (perf.created_at >= start)]
    return perf.merge(feats, on="post_id").merge(_platforms(warehouse), on="post_id", how="left")


def _platforms(warehouse: Warehouse) -> pd.DataFrame:
    """Each post's platform (None where unknown: the settings' default is filled in by the
    training set, as serving fills it in for a draft without one)."""
    if not warehouse.exists("platform_posts"):
        return pd.DataFrame({"post_id": pd.Series(dtype="int64"), "platform": []})
    return warehouse.read("platform_posts", columns=["post_id", "platform"])


def _post_labels(warehouse: Warehouse, target: pd.Series, posts: pd.DataFrame, oracle: str):
    """Entity rows of matured posts, keyed and described as the draft each post was (what
    serving receives), with a target and a truth column."""
    truth = _truth(warehouse, "truth_posts")
    return pd.DataFrame(
        {
            "post_id": posts.post_id,
            "user_id": posts.user_id,
            "category": posts.category,
            "event_timestamp": posts.created_at,
            "post_type": posts.post_type,
            "is_paid": posts.is_paid,
            "posted_at": posts.posted_at,
            "caption": posts.caption,
            "hashtags": posts.hashtags,
            "platform": posts.platform.astype(object),
            **{
                name: pd.Series(values, index=posts.index)
                for name, values in draft_keys(
                    posts.category.tolist(), posts.hashtags.tolist()
                ).items()
            },
            "target": target,
            "oracle": posts.post_id.map(truth.set_index("post_id")[oracle])
            if truth is not None
            else np.nan,
        }
    )


def engagement_labels(warehouse: Warehouse) -> pd.DataFrame:
    posts = _matured_posts(warehouse)
    return _post_labels(warehouse, posts.engagement_rate, posts, "expected_engagement_rate")


def virality_labels(warehouse: Warehouse) -> pd.DataFrame:
    posts = _matured_posts(warehouse)
    viral = (posts.share_rate >= posts.share_rate.quantile(VIRAL_QUANTILE)).astype(int)
    return _post_labels(warehouse, viral, posts, "expected_share_rate")


def _churn_oracle(truth: pd.DataFrame, users: np.ndarray, day: np.ndarray) -> np.ndarray:
    """P(no activity in the next 28 days) from the latent state at `day`."""
    t = truth.set_index("user_id").loc[users]
    h = t.churn_hazard.to_numpy()
    r = DISENGAGE_TO_CHURN
    k = np.arange(1, CHURN_DAYS + 1)[None, :]
    engaged = (
        h[:, None] * (1 - h[:, None]) ** (k - 1) * (1 - (1 - r) ** (CHURN_DAYS - k + 1))
    ).sum(axis=1)
    disengaging = 1 - (1 - r) ** CHURN_DAYS
    return np.where(
        day >= t.churn_day.to_numpy(),
        1.0,
        np.where(day >= t.disengage_day.to_numpy(), disengaging, engaged),
    )


def churn_outcomes(
    activity: pd.DataFrame, users: np.ndarray, days: pd.Series, last_day: pd.Timestamp | None
) -> np.ndarray:
    """1.0 when user u has no `user_activity` row on days d+1 .. d+28 after snapshot day d,
    0.0 when it has one, NaN when day d+28 is past `last_day` (the outcome has not matured):
    `churn_labels`' target, for any (user, day)."""
    out = np.full(len(users), np.nan)
    if last_day is None or not len(users):
        return out
    epoch = pd.Timestamp("1970-01-01")
    day = ((pd.to_datetime(days) - epoch) // pd.Timedelta(days=1)).to_numpy()
    act_day = ((pd.to_datetime(activity.date) - epoch) // pd.Timedelta(days=1)).to_numpy()
    # one sorted key per (user, day) with activity: a range count per prediction
    span = 1 << 20  # more days than any epoch day number
    keys = np.sort(activity.user_id.to_numpy(dtype=np.int64) * span + act_day)
    base = np.asarray(users, dtype=np.int64) * span + day
    after = np.searchsorted(keys, base + CHURN_DAYS, "right") - np.searchsorted(keys, base + 1)
    matured = day + CHURN_DAYS <= (last_day - epoch) // pd.Timedelta(days=1)
    out[matured] = (after[matured] == 0).astype(float)
    return out


def churn_labels(warehouse: Warehouse, every_days: int = 3) -> pd.DataFrame:
    """Snapshots every few days of recently active users; target: no activity for 28 days."""
    metrics = warehouse.read(
        "user_engagement_metrics", columns=["user_id", "date", "event_timestamp", "active_days_28d"]
    )
    activity = warehouse.read("user_activity", columns=["user_id", "date"])
    start, end = metrics.date.min(), metrics.date.max()
    snap_days = pd.date_range(
        start + pd.Timedelta(days=28), end - pd.Timedelta(days=CHURN_DAYS), freq=f"{every_days}D"
    )
    snaps = metrics[metrics.date.isin(snap_days) & (metrics.active_days_28d > 0)]
    u = snaps.user_id.to_numpy()
    d = (snaps.date - start).dt.days.to_numpy()
    future_quiet = churn_outcomes(activity, u, snaps.date, end)  # every snapshot has matured
    truth = _truth(warehouse, "truth_users")
    oracle = _churn_oracle(truth, u, d) if truth is not None else np.nan
    return pd.DataFrame(
        {
            "user_id": u,
            "event_timestamp": snaps.event_timestamp.to_numpy(),
            "target": future_quiet.astype(int),
            "oracle": oracle,
        }
    ).reset_index(drop=True)


def trend_labels(warehouse: Warehouse, horizons=TREND_HORIZONS) -> pd.DataFrame:
    """(hashtag, day, horizon) rows keyed by the hashtag's text; target: usage `horizon` days
    later (log1p-scale fit). The usage history is a feature (trend_v2 computes the inputs
    from `hashtag_history`); rows carry the horizon and the origin day it needs."""
    daily = warehouse.read(
        "hashtag_daily", columns=["hashtag_id", "tag", "date", "event_timestamp", "usage"]
    )
    if daily.empty or daily.usage.sum() == 0:
        raise TaskError(
            "trend: the data has no hashtag usage to forecast (import a hashtags column)"
        )
    daily = daily[daily.tag.fillna("") != ""]
    usage = daily.pivot(index="hashtag_id", columns="date", values="usage").sort_index(axis=1)
    tags = daily.drop_duplicates("hashtag_id").set_index("hashtag_id").tag.reindex(usage.index)
    dates = usage.columns
    matrix = usage.to_numpy(dtype=float)
    truth = _truth(warehouse, "truth_hashtag_daily")
    expected = (
        truth.pivot(index="hashtag_id", columns="date", values="expected_usage")
        .reindex(index=usage.index, columns=dates)
        .to_numpy()
        if truth is not None
        else None
    )
    frames = []
    first = TREND_LAGS  # every row has a full 28-day history inside the data
    epoch_days = ((dates - pd.Timestamp("1970-01-01")) // pd.Timedelta(days=1)).to_numpy()
    for h in horizons:
        days = np.arange(first, len(dates) - h)
        grid_h, grid_d = np.meshgrid(np.arange(len(usage.index)), days, indexing="ij")
        hh, dd = grid_h.ravel(), grid_d.ravel()
        frames.append(
            pd.DataFrame(
                {
                    "tag": tags.to_numpy()[hh],
                    "hashtag_id": usage.index.to_numpy()[hh],
                    "event_timestamp": (dates[dd] + pd.Timedelta(days=1)).tz_localize("UTC"),
                    "horizon": np.full(len(hh), h, dtype=np.int64),
                    "origin_day": epoch_days[dd].astype(np.int64),
                    "target_timestamp": (dates[dd] + pd.Timedelta(days=h + 1)).tz_localize("UTC"),
                    "target": matrix[hh, dd + h],
                    "oracle": expected[hh, dd + h] if expected is not None else np.nan,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def segmentation_labels(warehouse: Warehouse) -> pd.DataFrame:
    """The latest snapshot of every recently active user (no target: clustering)."""
    metrics = warehouse.read(
        "user_engagement_metrics", columns=["user_id", "date", "event_timestamp", "active_days_28d"]
    )
    last = metrics[(metrics.date == metrics.date.max()) & (metrics.active_days_28d > 0)]
    return pd.DataFrame(
        {
            "user_id": last.user_id.to_numpy(),
            "event_timestamp": last.event_timestamp.to_numpy(),
            "target": 0,
            "oracle": np.nan,
        }
    )


def content_labels(warehouse: Warehouse) -> pd.DataFrame:
    """Every post with a category: its text and type as published; target: the category (known
    at publication, so no label window). Read from the warehouse, not Feast: all inputs are
    request data (training/content.py says why)."""
    posts = warehouse.read(
        "content_posts",
        columns=[
            "post_id",
            "user_id",
            "created_at",
            "post_type",
            "category",
            "caption",
            "hashtags",
        ],
    )
    category = posts.category.fillna("").astype(str).str.strip().str.lower()
    posts, category = posts[category != ""].reset_index(drop=True), category[category != ""]
    truth = _truth(warehouse, "truth_post_categories")
    return pd.DataFrame(
        {
            "post_id": posts.post_id,
            "user_id": posts.user_id,
            "event_timestamp": posts.created_at,
            "caption": posts.caption.fillna("").astype(str),
            "hashtags": posts.hashtags.fillna("").astype(str),
            "post_type": posts.post_type.fillna("").astype(str),
            "target": category.to_numpy(),
            "oracle": posts.post_id.map(truth.set_index("post_id").oracle_category)
            if truth is not None
            else np.nan,
        }
    )


def published_rows(warehouse: Warehouse, post_ids) -> pd.DataFrame:
    """Entity rows of published posts as the drafts they were, keyed like the engagement
    label rows (target NaN): what scoring a published post with a post model joins on."""
    perf = warehouse.read("content_performance_metrics")
    perf = perf[perf.post_id.isin(pd.Index(post_ids))]
    feats = warehouse.read(
        "post_features", columns=["post_id", "posted_at", "is_paid", "caption", "hashtags"]
    )
    posts = perf.merge(feats, on="post_id").reset_index(drop=True)
    rows = _post_labels(
        warehouse, pd.Series(np.nan, index=posts.index), posts, "expected_share_rate"
    )
    return rows.drop(columns=["target", "oracle"])


def sentiment_labels(warehouse: Warehouse) -> pd.DataFrame:
    """Every comment with text and a label (negative / neutral / positive); the label is
    known when the comment is written, so no label window. `oracle`: the simulator's
    expressed class (docs/sentiment.md), NaN on imported comments."""
    comments = warehouse.read(
        "comments", columns=["comment_id", "post_id", "user_id", "created_at", "text", "label"]
    )
    label = comments.label.fillna("").astype(str).str.strip().str.lower()
    keep = (label != "") & (comments.text.fillna("").astype(str).str.strip() != "")
    comments, label = comments[keep].reset_index(drop=True), label[keep].to_numpy()
    truth = _truth(warehouse, "truth_comment_sentiment")
    return pd.DataFrame(
        {
            "comment_id": comments.comment_id,
            "post_id": comments.post_id,
            "user_id": comments.user_id,
            "event_timestamp": comments.created_at,
            "text": comments.text.astype(str),
            "target": label,
            "oracle": comments.comment_id.map(truth.set_index("comment_id").oracle_sentiment)
            if truth is not None
            else np.nan,
        }
    )
