"""The network effect: how much of a post's reach comes through shares, and who starts cascades.

Read from `share_events` (who shared which post from whom, at what depth, reaching how many).
A post's cascade is its shares, bot-like ones left out (analytics/quality.py): its size, its
depth (the longest chain of shares: 1 = only the author's audience shared it), its breadth (the
most shares at one depth) and its viral reach (the accounts its shares reached) as a share of
the post's reach. A cascade starter is an author whose posts get shared; the ranking orders
authors by the reach their cascades added, and `reshared` counts how often an account's own
shares were passed on (the amplifiers). An export without a share graph leaves both tables
empty: counters say how often a post was shared, not through whom.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analytics.quality import bot_like, engagement_events
from ingestion.schema import LIFECYCLE_TABLES
from ingestion.warehouse import Warehouse

POSTS = LIFECYCLE_TABLES["post_cascades"]
STARTERS = LIFECYCLE_TABLES["cascade_starters"]


def post_cascades(posts: pd.DataFrame, shares: pd.DataFrame) -> pd.DataFrame:
    """One row per post with at least one share: size, depth, breadth, viral reach and share."""
    if shares.empty:
        return pd.DataFrame(columns=list(POSTS.columns))
    per_depth = shares.groupby(["post_id", "depth"]).size()
    stats = shares.groupby("post_id").agg(
        cascade_size=("depth", "size"), depth=("depth", "max"), viral_reach=("reached", "sum")
    )
    stats["breadth"] = per_depth.groupby(level="post_id").max()
    out = posts[["post_id", "user_id", "created_at", "post_type", "reach"]].merge(
        stats, left_on="post_id", right_index=True
    )
    out["viral_share"] = out.viral_reach / out.reach.where(out.reach > 0)
    return out.reset_index(drop=True)[list(POSTS.columns)]


def cascade_starters(
    posts: pd.DataFrame, cascades: pd.DataFrame, shares: pd.DataFrame
) -> pd.DataFrame:
    """One row per author: posts, cascades started, their shares, depth and viral reach, how
    often the account's own shares were re-shared, and its rank by viral reach."""
    authors = posts.groupby("user_id").size().rename("posts")
    started = cascades.groupby("user_id").agg(
        cascades=("post_id", "size"),
        cascade_shares=("cascade_size", "sum"),
        mean_size=("cascade_size", "mean"),
        max_depth=("depth", "max"),
        viral_reach=("viral_reach", "sum"),
    )
    passed_on = shares[shares.depth > 1].groupby("from_user_id").size().rename("reshared")
    out = pd.concat([authors, started], axis=1).join(passed_on, how="left").fillna(0)
    out = out[out.cascades > 0].reset_index(names="user_id")
    out = out.sort_values(
        ["viral_reach", "cascade_shares", "user_id"], ascending=[False, False, True]
    )
    out["rank"] = np.arange(1, len(out) + 1)
    return out.astype({c: np.int64 for c in STARTERS.columns if STARTERS.columns[c] == "int"})[
        list(STARTERS.columns)
    ].reset_index(drop=True)


def organic_shares(
    shares: pd.DataFrame, posts: pd.DataFrame, likes: pd.DataFrame, comments: pd.DataFrame
) -> pd.DataFrame:
    """The share events that are not part of a bot-like burst."""
    events = engagement_events(likes, comments, shares)
    flagged = bot_like(events, posts).to_numpy()[events.kind.to_numpy() == "share"]
    return shares[~flagged]


def trace_cascades(warehouse: Warehouse) -> dict[str, int]:
    """Rewrite `post_cascades` and `cascade_starters` (empty without a share graph)."""
    read = warehouse.read
    posts = read(
        "content_posts", columns=["post_id", "user_id", "created_at", "post_type", "reach"]
    )
    shares = read("share_events") if warehouse.exists("share_events") else None
    if shares is not None and len(shares):
        shares = organic_shares(
            shares,
            posts,
            read("likes", columns=["post_id", "user_id", "created_at"]),
            read("comments", columns=["post_id", "user_id", "created_at"]),
        )
        cascades = post_cascades(posts, shares)
        starters = cascade_starters(posts, cascades, shares)
    else:
        cascades = pd.DataFrame(columns=list(POSTS.columns))
        starters = pd.DataFrame(columns=list(STARTERS.columns))
    return warehouse.write_many([(POSTS, cascades), (STARTERS, starters)])
