"""Content recommendations: fresh posts from accounts a user does not follow, in the user's
interest categories, ranked by predicted engagement; measured by hit-rate on held-out likes.

Candidates for a user at time `at`: posts published in the RECENT_DAYS before `at`, not by
the user, not by an account the user follows at `at`, and in one of the user's interest
categories. Interests: the categories of the user's own posts and of the posts the user
liked or commented on, each category whose share is at least 1 / (number of categories); a
user with no history gets every category (cold start).

Score: the engagement champion's prediction for the post as the draft it was (its author,
type, category, tags, caption and time), or, without a usable champion, a proxy: the
author's engagement rate over the 28 days before the post (`user_engagement_metrics`, the
engagement task's naive baseline), the platform median where the author has none.

Evaluation (`smap recommend --evaluate`): every like (and, separately, every comment) of the
last `holdout_days` is a held-out interaction (user, time, post). The user's interests come
from the data before the held-out days; candidates and scores are taken at the interaction's
time. A hit is the interacted post among the top k. The popularity baseline ranks every
recent post (no personal filter) by the likes and comments it received before that time,
newest first on ties. Each method's chance level is a random ranking of its own pool.

On simulated data, read the figures with docs/simulator.md §2.9-2.10 in mind: a sampled like
goes to a post drawn uniformly among all posts of its day, and a comment's author is drawn
by activity alone, so neither depends on the user's interests or follows. No ranking can
beat chance on likes there; comments favour posts with many comments, which popularity and
predicted engagement can pick up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from analytics.errors import AnalyticsError
from ingestion.activity import read_activity
from ingestion.warehouse import Warehouse

RECENT_DAYS = 3  # how fresh a candidate post is
HOLDOUT_DAYS = 7  # the held-out interactions of `evaluate`
K = 10  # hit-rate@K
DAY_NS = 86_400 * 10**9
_POST_COLUMNS = ["post_id", "user_id", "created_at", "category", "post_type", "hashtags"]
_POST_COLUMNS += ["caption", "is_paid"]


@dataclass(frozen=True)
class Platform:
    """What recommendations read: posts in time order, follows and interactions."""

    posts: pd.DataFrame  # _POST_COLUMNS, sorted by created_at
    follows: pd.DataFrame  # follower_id, followee_id, created_at
    interactions: pd.DataFrame  # user_id, post_id, created_at, kind (like | comment)

    @cached_property
    def post_times(self) -> np.ndarray:
        """Post times as int64 nanoseconds, for binary search."""
        return pd.DatetimeIndex(self.posts.created_at).asi8

    @property
    def now(self) -> pd.Timestamp:
        """The data's present: the newest post (simulated and exported data end in the past)."""
        return self.posts.created_at.max()


def read_platform(warehouse: Warehouse) -> Platform:
    """The raw tables recommendations need, from the warehouse."""
    activity = read_activity(warehouse, _POST_COLUMNS)
    if activity.posts.empty:
        raise AnalyticsError("recommend: no posts in the warehouse (run `smap simulate`)")
    return Platform(activity.posts, activity.follows, activity.interactions)


# ---- the pieces: interests, candidates, ranking, hit-rate -------------------------------------


def interests(platform: Platform, before: pd.Timestamp) -> dict[int, set[str]]:
    """Each user's interest categories from posts and interactions before `before`."""
    posts = platform.posts[platform.posts.created_at < before]
    acts = platform.interactions[platform.interactions.created_at < before]
    acted = acts.merge(platform.posts[["post_id", "category"]], on="post_id")
    events = pd.concat(
        [posts[["user_id", "category"]], acted[["user_id", "category"]]], ignore_index=True
    )
    events = events[events.category != ""]
    if events.empty:
        return {}
    n_categories = platform.posts.category.nunique()
    share = events.groupby("user_id").category.value_counts(normalize=True).reset_index()
    share = share[share.proportion >= 1.0 / max(n_categories, 1)]
    return {int(u): set(g.category) for u, g in share.groupby("user_id")}


def followed(platform: Platform, user_id: int, at: pd.Timestamp) -> set[int]:
    """Accounts `user_id` follows at `at`."""
    f = platform.follows
    rows = f[(f.follower_id == user_id) & (f.created_at <= at)]
    return set(rows.followee_id.astype(int))


def candidates(
    platform: Platform,
    user_id: int,
    at: pd.Timestamp,
    categories: set[str] | None,
    following: set[int],
    recent_days: int = RECENT_DAYS,
) -> pd.DataFrame:
    """Posts of the `recent_days` before `at` by accounts other than the user and those it
    follows, in `categories` (None: any)."""
    since = at - pd.Timedelta(days=recent_days)
    lo, hi = np.searchsorted(platform.post_times, [since.value, at.value], side="left")
    pool = platform.posts.iloc[lo:hi]
    keep = (pool.user_id != user_id) & ~pool.user_id.isin(following)
    if categories is not None:
        keep &= pool.category.isin(categories)
    return pool[keep]


def rank(pool: pd.DataFrame, scores: pd.Series, n: int) -> pd.DataFrame:
    """The `n` best-scored posts of `pool`, newest first on ties, with their score."""
    ranked = pool.assign(score=scores.reindex(pool.post_id).to_numpy())
    ranked = ranked.sort_values(["score", "created_at"], ascending=False, kind="stable")
    return ranked.head(n)


def hit_rate(recommended: Sequence[Sequence[int]], held_out: Sequence[int], k: int = K) -> float:
    """Share of held-out interactions whose post is among the first `k` recommended for it."""
    if len(recommended) != len(held_out):
        raise AnalyticsError("hit_rate: one recommendation list per held-out interaction")
    if not held_out:
        return float("nan")
    hits = [post in list(recs)[:k] for recs, post in zip(recommended, held_out, strict=True)]
    return float(np.mean(hits))


def chance_hit_rate(pool_sizes: Sequence[int], in_pool: Sequence[bool], k: int = K) -> float:
    """Expected hit-rate of a random ranking of each pool: min(k, size) / size when the
    held-out post is in the pool, else 0."""
    sizes, inside = np.asarray(pool_sizes, dtype=float), np.asarray(in_pool, dtype=bool)
    if not len(sizes):
        return float("nan")
    share = np.where(sizes > 0, np.minimum(k, sizes) / np.maximum(sizes, 1), 0.0)
    return float(np.mean(np.where(inside, share, 0.0)))


# ---- scores -------------------------------------------------------------------------------------

PROXY = "proxy: the author's engagement rate over the 28 days before the post"


def proxy_scores(warehouse: Warehouse, posts: pd.DataFrame) -> pd.Series:
    """The author's `engagement_rate_28d` as of the day before each post (platform median
    where unknown), by post_id."""
    if not warehouse.exists("user_engagement_metrics"):
        raise AnalyticsError("recommend: no user_engagement_metrics (run `smap ingest`)")
    metrics = warehouse.read(
        "user_engagement_metrics", columns=["user_id", "event_timestamp", "engagement_rate_28d"]
    )
    metrics = metrics[metrics.user_id.isin(posts.user_id)].dropna(subset=["engagement_rate_28d"])
    left = posts[["post_id", "user_id", "created_at"]].sort_values("created_at", kind="stable")
    joined = pd.merge_asof(
        left,
        metrics.sort_values("event_timestamp", kind="stable"),
        left_on="created_at",
        right_on="event_timestamp",
        by="user_id",
        allow_exact_matches=False,
    )
    fallback = float(metrics.engagement_rate_28d.median()) if len(metrics) else 0.0
    return joined.set_index("post_id").engagement_rate_28d.fillna(fallback)


def popularity_scores(platform: Platform, pool: pd.DataFrame, at: pd.Timestamp) -> pd.Series:
    """Likes and comments each post of `pool` received before `at`, by post_id."""
    acts = platform.interactions
    seen = acts[(acts.created_at < at) & acts.post_id.isin(pool.post_id)]
    return seen.groupby("post_id").size().reindex(pool.post_id, fill_value=0).astype(float)


def recommend(
    platform: Platform,
    scores: pd.Series,
    user_id: int,
    n: int = K,
    at: pd.Timestamp | None = None,
    recent_days: int = RECENT_DAYS,
) -> tuple[pd.DataFrame, set[str] | None]:
    """The top `n` candidates for `user_id` at `at` (default: the data's present) and the
    interest categories used (None: cold start, every category)."""
    at = platform.now + pd.Timedelta(seconds=1) if at is None else at
    categories = interests(platform, at).get(int(user_id))
    pool = candidates(
        platform, user_id, at, categories, followed(platform, user_id, at), recent_days
    )
    return rank(pool, scores, n), categories


# ---- evaluation ---------------------------------------------------------------------------------


def _top(positions: np.ndarray, score: np.ndarray, times: np.ndarray, k: int) -> np.ndarray:
    """The k best `positions` by score, newest first on ties (the order `rank` gives)."""
    order = np.lexsort((-times[positions], -score[positions]))
    return positions[order[:k]]


def evaluate_ranking(
    platform: Platform,
    scores: pd.Series,
    holdout_days: int = HOLDOUT_DAYS,
    k: int = K,
    recent_days: int = RECENT_DAYS,
) -> dict[str, dict[str, float]]:
    """Hit-rate@k of the recommender and of the popularity baseline on each held-out
    interaction kind, with the chance level of each, the share of held-out posts each pool
    could reach, and the mean pool size. The same rules as `candidates` and `rank`, on arrays."""
    posts = platform.posts
    start = platform.now - pd.Timedelta(days=holdout_days)
    window = pd.Timedelta(days=recent_days).value
    times = platform.post_times
    author = posts.user_id.to_numpy(np.int64)
    codes, names = pd.factorize(posts.category)
    position = pd.Series(np.arange(len(posts)), index=posts.post_id.to_numpy())
    # a post without a score ranks last (NaN never beats a number)
    score = np.nan_to_num(scores.reindex(posts.post_id).to_numpy(float), nan=-np.inf)
    taste = {u: np.isin(names, list(c)) for u, c in interests(platform, start).items()}
    follows = platform.follows
    by_follower = {
        int(u): (g.followee_id.to_numpy(np.int64), pd.DatetimeIndex(g.created_at).asi8)
        for u, g in follows.groupby("follower_id")
    }
    acts = platform.interactions.sort_values("created_at", kind="stable")
    acts = acts[acts.post_id.isin(position.index)]
    act_times = pd.DatetimeIndex(acts.created_at).asi8
    act_pos = position.loc[acts.post_id].to_numpy()
    held = acts[acts.created_at >= start]
    out: dict[str, dict[str, float]] = {}
    for kind in ("like", "comment"):
        rows = held[held.kind == kind]
        hits: dict[str, list] = {"recommender": [], "popularity": []}
        reach: dict[str, list] = {"recommender": [], "popularity": []}
        pools: dict[str, list] = {"recommender": [], "popularity": []}
        for user, at, post in zip(
            rows.user_id.to_numpy(np.int64),
            pd.DatetimeIndex(rows.created_at).asi8,
            position.loc[rows.post_id].to_numpy(),
            strict=True,
        ):
            lo, hi = np.searchsorted(times, [at - window, at], side="left")
            pool = np.arange(lo, hi)
            pool = pool[author[pool] != user]
            followees, since = by_follower.get(int(user), (np.array([], np.int64), None))
            if since is not None:
                followees = followees[since <= at]
            mine = pool[~np.isin(author[pool], followees)]
            if int(user) in taste:
                mine = mine[taste[int(user)][codes[mine]]]
            # a sampled like can precede its post by up to a day (docs/simulator.md §2.10)
            a, b = np.searchsorted(act_times, [at - window - DAY_NS, at], side="left")
            seen = act_pos[a:b]
            counts = np.bincount(seen[(seen >= lo) & (seen < hi)] - lo, minlength=hi - lo)
            popularity = np.full(len(posts), -np.inf)
            popularity[lo:hi] = counts
            for name, members, ranking in (
                ("recommender", mine, score),
                ("popularity", pool, popularity),
            ):
                inside = bool(np.isin(post, members))
                hits[name].append(bool(np.isin(post, _top(members, ranking, times, k))))
                pools[name].append(len(members))
                reach[name].append(inside)
        figures: dict[str, float] = {"held_out": len(rows), "users": int(rows.user_id.nunique())}
        for name in ("recommender", "popularity"):
            mean = lambda values: float(np.mean(values)) if values else float("nan")  # noqa: E731
            figures[name] = mean(hits[name])
            figures[f"{name}_chance"] = chance_hit_rate(pools[name], reach[name], k)
            figures[f"{name}_reachable"] = mean(reach[name])
            figures[f"{name}_pool"] = mean(pools[name])
        out[kind] = figures
    return out
