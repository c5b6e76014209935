"""Engagement quality: how much a post's engagement says about a real, interested audience.

Reach-normalised engagement counts a like as much as a share; an advertiser cares more about a
comment or a share (someone spoke up or passed the post on), less about a negative comment, and
not at all about a burst of bot engagement. Per post:

    weighted = LIKE * likes + COMMENT * sum over comments of (1 + sentiment)
             + SHARE * shares + SAVE * saves        (bot-like engagements left out)
    quality_score = 1000 * weighted / reach         (weighted engagement per 1,000 reached)

A neutral comment (sentiment 0) weighs COMMENT, a fully positive one twice that, a fully
negative one nothing; comments the counter holds without a row (no sentiment known) weigh
COMMENT. Shares are the counter, or the `share_events` rows when there are more of them (an
event log records what a counter may already have filtered).

Bot-like burst: at least BURST_MIN engagements (likes, comments, shares with a time and an
account) on one post within BURST_MINUTES, from accounts with no history: no post, like,
comment or share recorded more than NEW_ACCOUNT_HOURS before the engagement. Those engagements
are subtracted from their counters. An account's score is the same ratio over all its posts.
Classes split the scores into thirds: low (bottom third), medium, high (top third) of the
posts (accounts) of the warehouse with at least MIN_REACH reached (MIN_POSTS posts), so a
class reads "better than most posts here", whatever the platform's usual rates.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ingestion.schema import LIFECYCLE_TABLES
from ingestion.warehouse import Warehouse

LIKE, COMMENT, SHARE, SAVE = 1.0, 3.0, 5.0, 2.0
BURST_MIN = 10
BURST_MINUTES = 10.0
NEW_ACCOUNT_HOURS = 24.0
MIN_REACH = 50  # posts reaching fewer are scored but do not set the class thresholds
MIN_POSTS = 3  # accounts with fewer posts are scored but do not set the class thresholds
CLASSES = ("low", "medium", "high")
POSTS = LIFECYCLE_TABLES["post_quality"]
ACCOUNTS = LIFECYCLE_TABLES["account_quality"]
_EVENT_COLUMNS = ["post_id", "user_id", "created_at"]


def engagement_events(
    likes: pd.DataFrame, comments: pd.DataFrame, shares: pd.DataFrame | None
) -> pd.DataFrame:
    """Every engagement with a time and an account: post_id, user_id, created_at, kind."""
    kinds = {"like": likes, "comment": comments, "share": shares}
    parts = [
        frame[_EVENT_COLUMNS].assign(kind=kind)
        for kind, frame in kinds.items()
        if frame is not None and len(frame)
    ]
    if not parts:
        return pd.DataFrame(
            {
                "post_id": pd.Series(dtype=np.int64),
                "user_id": pd.Series(dtype=np.int64),
                "created_at": pd.Series(dtype="datetime64[ns, UTC]"),
                "kind": pd.Series(dtype=object),
            }
        )
    return pd.concat(parts, ignore_index=True)


def bot_like(events: pd.DataFrame, posts: pd.DataFrame) -> pd.Series:
    """True for each event that belongs to a bot-like burst (module docstring)."""
    activity = pd.concat(
        [frame[["user_id", "created_at"]] for frame in (events, posts) if len(frame)]
        or [posts[["user_id", "created_at"]]]
    )
    first_seen = activity.groupby("user_id").created_at.min()
    new = events.created_at - events.user_id.map(first_seen) <= pd.Timedelta(
        hours=NEW_ACCOUNT_HOURS
    )
    flagged = pd.Series(False, index=events.index)
    fresh = events[new]
    counts = fresh.groupby("post_id").size()
    window = np.int64(BURST_MINUTES * 60e9)
    for _, group in fresh[fresh.post_id.isin(counts.index[counts >= BURST_MIN])].groupby("post_id"):
        group = group.sort_values("created_at")
        t = group.created_at.to_numpy("datetime64[ns]").astype(np.int64)
        end = np.searchsorted(t, t + window, side="right")
        marks = np.zeros(len(t) + 1, dtype=np.int64)
        starts = np.nonzero(end - np.arange(len(t)) >= BURST_MIN)[0]
        np.add.at(marks, starts, 1)
        np.add.at(marks, end[starts], -1)
        flagged[group.index[np.cumsum(marks)[:-1] > 0]] = True
    return flagged


def _thirds(score: pd.Series, rated: pd.Series) -> pd.Series:
    """low / medium / high by the thirds of the rated scores (all medium when none is rated)."""
    basis = score[rated].dropna()
    if basis.empty:
        return pd.Series("medium", index=score.index)
    low, high = np.quantile(basis, [1 / 3, 2 / 3])
    out = np.where(score < low, CLASSES[0], np.where(score > high, CLASSES[2], CLASSES[1]))
    return pd.Series(out, index=score.index).where(score.notna(), CLASSES[0])


def post_quality(
    posts: pd.DataFrame,
    likes: pd.DataFrame,
    comments: pd.DataFrame,
    shares: pd.DataFrame | None,
) -> pd.DataFrame:
    """One row per post: counters, mean comment sentiment, bot-like engagements, weighted
    engagement, quality score and class."""
    events = engagement_events(likes, comments, shares)
    events["bot"] = bot_like(events, posts)
    ids = pd.Index(posts.post_id)

    def per_post(frame: pd.DataFrame) -> np.ndarray:
        return frame.groupby("post_id").size().reindex(ids, fill_value=0).to_numpy()

    bots = {
        k: per_post(events[events.bot & (events.kind == k)]) for k in ("like", "comment", "share")
    }
    recorded_shares = per_post(events[events.kind == "share"])
    sentiment = comments.sentiment.fillna(0.0).clip(-1, 1)
    kept = ~events.bot[events.kind == "comment"].to_numpy()
    real = comments[kept].assign(weight=1.0 + sentiment[kept])
    comment_weight = real.groupby("post_id").weight.sum().reindex(ids, fill_value=0.0).to_numpy()
    unrecorded = np.maximum(posts.comments.to_numpy() - per_post(comments), 0)
    likes_q = np.maximum(posts.likes.to_numpy() - bots["like"], 0)
    shares_q = np.maximum(np.maximum(posts.shares.to_numpy(), recorded_shares) - bots["share"], 0)
    weighted = (
        LIKE * likes_q
        + COMMENT * (comment_weight + unrecorded)
        + SHARE * shares_q
        + SAVE * posts.saves.to_numpy()
    )
    reach = posts.reach.to_numpy(float)
    out = posts[["post_id", "user_id", "created_at", "post_type", "reach"]].copy()
    out["likes"] = likes_q
    out["comments"] = np.maximum(posts.comments.to_numpy() - bots["comment"], 0)
    out["shares"] = shares_q
    out["saves"] = posts.saves.to_numpy()
    out["avg_sentiment"] = (
        comments.assign(s=sentiment).groupby("post_id").s.mean().reindex(ids).to_numpy()
    )
    out["bot_engagements"] = bots["like"] + bots["comment"] + bots["share"]
    out["weighted_engagement"] = weighted
    out["quality_score"] = np.where(reach > 0, 1000.0 * weighted / np.maximum(reach, 1), np.nan)
    out["quality_class"] = _thirds(out.quality_score, out.reach >= MIN_REACH).to_numpy()
    return out.reset_index(drop=True)[list(POSTS.columns)]


def account_quality(scored: pd.DataFrame) -> pd.DataFrame:
    """One row per account with posts: its posts' weighted engagement per 1,000 reached."""
    sums = (
        scored.assign(posts=1)
        .groupby("user_id")[["posts", "reach", "weighted_engagement", "bot_engagements"]]
        .sum()
    )
    sums["quality_score"] = 1000.0 * sums.weighted_engagement / sums.reach.where(sums.reach > 0)
    sums["quality_class"] = _thirds(sums.quality_score, sums.posts >= MIN_POSTS)
    return sums.reset_index()[list(ACCOUNTS.columns)]


def score_quality(warehouse: Warehouse) -> dict[str, int]:
    """Rewrite `post_quality` and `account_quality`; returns the rows written."""
    read = warehouse.read
    posts = read(
        "content_posts",
        columns=["post_id", "user_id", "created_at", "post_type", "reach"]
        + ["likes", "comments", "shares", "saves"],
    )
    shares = (
        read("share_events", columns=_EVENT_COLUMNS) if warehouse.exists("share_events") else None
    )
    scored = post_quality(
        posts,
        read("likes", columns=_EVENT_COLUMNS),
        read("comments", columns=[*_EVENT_COLUMNS, "sentiment"]),
        shares,
    )
    return warehouse.write_many([(POSTS, scored), (ACCOUNTS, account_quality(scored))])
