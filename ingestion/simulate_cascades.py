"""The share graph of a simulated platform: who shared which post from whom, when, at what depth.

Every share a post's `shares` counter holds becomes one `share_events` row. A post's first share
comes from the author's followers (depth 1); each later one is passed on by the author with
ROOT_SHARE probability, otherwise by one of the earlier sharers (depth = that share's depth + 1),
and its sharer is a follower of whoever passed it on (an account with no followers hands it back
to the author's; an author with none reaches a random account, as through explore pages). A
share comes an exponential delay after the share it came from, with a mean per post type
(SHARE_DELAY_HOURS): the half-life the lifecycle analysis should find. A share reaches a share of
its sharer's audience, scaled down so that the shares of one post never reach more than
MAX_VIRAL_SHARE of the post's reach (the reported reach counts every account once).

Bot bursts are planted on a few posts: BOT_SHARES shares within BOT_MINUTES from accounts with no
row in `users` and no other activity (user ids past the last real one), reaching nobody. They are
recorded in `share_events` but not in the posts' counters (the platform's counters already left
them out), and `truth_bot_bursts` lists them so the quality score's discount can be checked.

Randomness comes from `default_rng([seed, CASCADE_STREAM])`: every other table stays as it was.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CASCADE_STREAM = 4711
ROOT_SHARE = 0.6  # probability that a share is passed on by the author rather than a sharer
SHARE_DELAY_HOURS = {"image": 6.0, "video": 12.0, "text": 3.0, "link": 4.0, "carousel": 8.0}
SEEN_SHARE = 0.1  # share of a sharer's audience that sees the shared post
MAX_VIRAL_SHARE = 0.8  # cap of the reach that comes through shares, of the post's reach
BOT_POST_SHARE = 0.001  # posts with a planted bot burst (at least MIN_BOT_POSTS)
MIN_BOT_POSTS = 3
BOT_SHARES = (15, 40)  # shares per burst (low inclusive, high exclusive)
BOT_MINUTES = 5.0  # a burst's shares all fall within this many minutes


def _followers_of(follows: pd.DataFrame, n_users: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR of each account's followers: (start offsets of length n+1, follower ids)."""
    ordered = follows.sort_values("followee_id", kind="stable")
    counts = np.bincount(ordered.followee_id.to_numpy(), minlength=n_users)
    return np.concatenate([[0], np.cumsum(counts)]), ordered.follower_id.to_numpy(np.int64)


def simulate_shares(
    seed: int,
    posts: pd.DataFrame,
    follows: pd.DataFrame,
    n_users: int,
    audience_per_follow: float,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(`share_events`, `truth_bot_bursts`) for simulated posts and their follow graph;
    `audience_per_follow`: the real accounts each simulated follow stands for."""
    rng = np.random.default_rng([seed, CASCADE_STREAM])
    offsets, follower_ids = _followers_of(follows, n_users)
    degree = np.diff(offsets)

    counts = posts.shares.to_numpy(np.int64)
    n = int(counts.sum())
    post_of = np.repeat(np.arange(len(posts)), counts)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(n) - np.repeat(first, counts)  # 0.. within the post
    author = posts.user_id.to_numpy(np.int64)[post_of]
    created = posts.created_at.to_numpy("datetime64[ns]").astype(np.int64)[post_of]
    delay_h = posts.post_type.map(SHARE_DELAY_HOURS).to_numpy(float)[post_of]

    from_root = (rng.random(n) < ROOT_SHARE) | (rank == 0)
    earlier = (rng.random(n) * np.maximum(rank, 1)).astype(np.int64)  # index of an earlier share
    wait_h = rng.exponential(1.0, n) * delay_h
    pick = rng.random(n)
    explore = rng.integers(0, n_users, n)

    parent = np.where(from_root, -1, np.arange(n) - rank + earlier)  # row of the share passed on
    depth = np.ones(n, dtype=np.int64)
    at = created + (wait_h * 3.6e12).astype(np.int64)
    giver = author.copy()  # who passed the post on
    sharer = np.empty(n, dtype=np.int64)
    for k in range(int(counts.max(initial=0))):  # rank by rank: a share's parent came before it
        rows = np.nonzero(rank == k)[0]
        passed = rows[parent[rows] >= 0]
        up = parent[passed]
        giver[passed] = sharer[up]
        no_audience = degree[giver[rows]] == 0
        giver[rows[no_audience]] = author[rows[no_audience]]
        own = ~no_audience & (parent[rows] >= 0)
        depth[rows[own]] = depth[parent[rows[own]]] + 1
        at[rows[own]] = at[parent[rows[own]]] + (wait_h[rows[own]] * 3.6e12).astype(np.int64)
        g = giver[rows]
        has = degree[g] > 0
        chosen = offsets[g] + (pick[rows] * degree[g]).astype(np.int64)
        last = max(len(follower_ids) - 1, 0)
        followers = follower_ids[np.minimum(chosen, last)] if len(follower_ids) else chosen
        sharer[rows] = np.where(has, followers, explore[rows])

    audience = audience_per_follow * degree[sharer] * SEEN_SHARE
    reached = rng.poisson(audience).astype(np.int64)
    post_reach = posts.reach.to_numpy(np.int64)[post_of]
    viral = np.bincount(post_of, weights=reached, minlength=len(posts))[post_of]
    scale = np.minimum(1.0, MAX_VIRAL_SHARE * post_reach / np.maximum(viral, 1))
    reached = np.floor(reached * scale).astype(np.int64)

    organic = pd.DataFrame(
        {
            "post_id": posts.post_id.to_numpy(np.int64)[post_of],
            "user_id": sharer,
            "from_user_id": giver,
            "created_at": pd.to_datetime(at, utc=True),
            "depth": depth,
            "reached": reached,
        }
    )

    n_bot_posts = min(len(posts), max(MIN_BOT_POSTS, int(len(posts) * BOT_POST_SHARE)))
    hit = np.sort(rng.choice(len(posts), size=n_bot_posts, replace=False))
    sizes = rng.integers(*BOT_SHARES, n_bot_posts)
    start = posts.created_at.to_numpy("datetime64[ns]").astype(np.int64)[hit] + (
        rng.uniform(0.5, 24.0, n_bot_posts) * 3.6e12
    ).astype(np.int64)
    bot_post = np.repeat(hit, sizes)
    bot_at = np.repeat(start, sizes) + (
        rng.uniform(0, BOT_MINUTES * 60, int(sizes.sum())) * 1e9
    ).astype(np.int64)
    bots = pd.DataFrame(
        {
            "post_id": posts.post_id.to_numpy(np.int64)[bot_post],
            "user_id": n_users + np.arange(int(sizes.sum()), dtype=np.int64),
            "from_user_id": posts.user_id.to_numpy(np.int64)[bot_post],
            "created_at": pd.to_datetime(bot_at, utc=True),
            "depth": np.ones(int(sizes.sum()), dtype=np.int64),
            "reached": np.zeros(int(sizes.sum()), dtype=np.int64),
        }
    )
    events = pd.concat([organic, bots], ignore_index=True)
    events = events.sort_values(["created_at", "post_id"], kind="stable", ignore_index=True)
    events.insert(0, "share_id", np.arange(len(events), dtype=np.int64))
    truth = pd.DataFrame(
        {
            "post_id": posts.post_id.to_numpy(np.int64)[hit],
            "bot_shares": sizes.astype(np.int64),
            "started_at": pd.to_datetime(start, utc=True),
        }
    )
    return events, truth
