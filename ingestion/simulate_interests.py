"""Who likes, comments on and follows what: interactions that follow the viewer's interests.

The simulator's main stream decides how many interactions there are and when (a like per
active user-day without a post, a comment row per counted comment, a follow edge per
followee and day); this module, on its own random stream, only decides WHICH post a like
points at, WHICH user writes a comment and WHICH user is behind a follow, so every count and
time (and every other table) stays as the main stream made it.

- **Follows**: the follower of each edge is drawn among the users signed up by the follow's
  day, in proportion to their interest in the followee's main category.
- **Likes** (the viewer chooses a post): with probability SOCIAL_SHARE the viewer opens a
  random account it follows (each of its edges equally likely) and likes that account's
  newest post of the last WINDOW_DAYS, if the follow exists by then and such a post exists;
  otherwise (explore) the viewer picks a category by its interests and, in it, a post of the
  last WINDOW_DAYS with weight exp(QUALITY_WEIGHT * author quality - age / RECENCY_DAYS).
- **Comments** (the post finds a commenter): with probability SOCIAL_SHARE a random follower
  of the author who is active that day, else a user active that day drawn in proportion to
  activity x interest in the post's category.

The expected affinity of a like, the probability that viewer u at time t likes post p, is
`like_probability`; its inputs (interests, author quality) are the `truth_interests` table,
the rest (posts, follows) are observable. Ranking by it is the oracle of `smap recommend`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

INTEREST_STREAM = 2718  # this module draws from default_rng([seed, INTEREST_STREAM])
SOCIAL_SHARE = 0.3  # share of likes and comments that come through the follow graph
WINDOW_DAYS = 3  # a like goes to a post of the last WINDOW_DAYS
RECENCY_DAYS = 0.75  # explore weight falls by e every RECENCY_DAYS of a post's age
QUALITY_WEIGHT = 1.0  # explore weight per unit of the author's latent quality
DAY_S = 86_400.0


def _seconds(times: pd.Series | pd.DatetimeIndex, start: pd.Timestamp) -> np.ndarray:
    return (pd.DatetimeIndex(times) - start).total_seconds().to_numpy(float)


def _draw(rng: np.random.Generator, cum: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Index i in [lo, hi) drawn with weight cum[i] - cum[i - 1] (cum: inclusive prefix sums)."""
    base = np.where(lo > 0, cum[np.maximum(lo - 1, 0)], 0.0)
    top = cum[np.maximum(hi - 1, 0)]
    target = base + rng.random(len(lo)) * (top - base)
    return np.clip(np.searchsorted(cum, target, side="right"), lo, np.maximum(hi - 1, lo))


def interest_follows(
    rng: np.random.Generator,
    follows: pd.DataFrame,
    interests: np.ndarray,
    signup_day: np.ndarray,
    start: pd.Timestamp,
) -> pd.DataFrame:
    """The follows with each follower redrawn by interest in the followee's main category
    (edges whose redraw would repeat a pair or follow oneself keep their follower)."""
    main = interests.argmax(axis=1)
    day = np.floor(_seconds(follows.created_at, start) / DAY_S).astype(np.int64)
    followee = follows.followee_id.to_numpy(np.int64)
    by_signup = np.argsort(signup_day, kind="stable")
    signed = signup_day[by_signup]
    follower = follows.follower_id.to_numpy(np.int64).copy()
    for c in range(interests.shape[1]):
        rows = np.nonzero(main[followee] == c)[0]
        if not len(rows):
            continue
        cum = np.cumsum(interests[by_signup, c])
        hi = np.searchsorted(signed, day[rows], side="right")
        ok = hi > 0
        picked = _draw(rng, cum, np.zeros(ok.sum(), np.int64), hi[ok])
        follower[rows[ok]] = by_signup[picked]
    original = follows.follower_id.to_numpy(np.int64)
    while True:  # revert redraws that collide; the original edges are distinct
        pairs = pd.DataFrame({"a": follower, "b": followee})
        clash = pairs.duplicated(keep=False).to_numpy() | (follower == followee)
        clash &= follower != original
        if not clash.any():
            break
        follower[clash] = original[clash]
    return follows.assign(follower_id=follower)


def _explore_tables(
    posts: pd.DataFrame, quality: np.ndarray, n_categories: int, start: pd.Timestamp
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per category: post positions by time, their times (s) and the prefix sums of their
    explore weight exp(QUALITY_WEIGHT * q + t / RECENCY)."""
    secs = _seconds(posts.created_at, start)
    weight = QUALITY_WEIGHT * quality[posts.user_id.to_numpy()] + secs / (RECENCY_DAYS * DAY_S)
    codes = posts.category_code.to_numpy()
    out = []
    for c in range(n_categories):
        idx = np.nonzero(codes == c)[0]
        idx = idx[np.argsort(secs[idx], kind="stable")]
        out.append((idx, secs[idx], np.cumsum(np.exp(weight[idx]))))
    return out


def interest_likes(
    rng: np.random.Generator,
    likes: pd.DataFrame,
    posts: pd.DataFrame,
    follows: pd.DataFrame,
    interests: np.ndarray,
    quality: np.ndarray,
    start: pd.Timestamp,
) -> pd.DataFrame:
    """The likes with each one's post chosen by the viewer (module docstring); a like with no
    post of the last WINDOW_DAYS before it keeps its post."""
    n_cat = interests.shape[1]
    window = WINDOW_DAYS * DAY_S
    t = _seconds(likes.created_at, start)
    user = likes.user_id.to_numpy(np.int64)
    post_id = likes.post_id.to_numpy(np.int64).copy()
    ids = posts.post_id.to_numpy(np.int64)
    chosen = np.full(len(likes), -1, np.int64)

    # social: a random edge of the viewer, the followee's newest post in the window
    edges = follows.sort_values(["follower_id", "created_at"], kind="stable")
    e_from = edges.follower_id.to_numpy(np.int64)
    e_to = edges.followee_id.to_numpy(np.int64)
    e_at = _seconds(edges.created_at, start)
    first = np.searchsorted(e_from, user, side="left")
    degree = np.searchsorted(e_from, user, side="right") - first
    social = (rng.random(len(likes)) < SOCIAL_SHARE) & (degree > 0)
    edge = first + (rng.random(len(likes)) * np.maximum(degree, 1)).astype(np.int64)
    edge = np.minimum(edge, len(e_from) - 1)
    social &= e_at[np.maximum(edge, 0)] <= t
    by_author = np.lexsort((_seconds(posts.created_at, start), posts.user_id.to_numpy()))
    a_user = posts.user_id.to_numpy(np.int64)[by_author]
    a_secs = _seconds(posts.created_at, start)[by_author]
    key_author = e_to[edge]
    lo = np.searchsorted(a_user, key_author, side="left")
    hi = np.searchsorted(a_user, key_author, side="right")
    newest = _newest_before(a_user, a_secs, key_author, t)
    ok = social & (newest >= lo) & (newest < hi)
    ok[ok] &= a_secs[newest[ok]] >= t[ok] - window
    chosen[ok] = by_author[newest[ok]]

    # explore: a category by interest, a post of it by quality and recency
    rest = np.nonzero(chosen < 0)[0]
    cum_interest = np.cumsum(interests[user[rest]], axis=1)
    u = rng.random(len(rest)) * cum_interest[:, -1]
    category = np.minimum((cum_interest < u[:, None]).sum(axis=1), n_cat - 1)
    tables = _explore_tables(posts, quality, n_cat, start)
    draws = rng.random(len(rest))
    for c, (idx, secs, cum) in enumerate(tables):
        mine = np.nonzero(category == c)[0]
        if not len(mine) or not len(idx):
            continue
        at = t[rest[mine]]
        lo_c = np.searchsorted(secs, at - window, side="left")
        hi_c = np.searchsorted(secs, at, side="left")
        has = hi_c > lo_c
        base = np.where(lo_c > 0, cum[np.maximum(lo_c - 1, 0)], 0.0)
        top = cum[np.maximum(hi_c - 1, 0)]
        target = base + draws[mine] * (top - base)
        pick = np.clip(np.searchsorted(cum, target, side="right"), lo_c, np.maximum(hi_c - 1, 0))
        chosen[rest[mine[has]]] = idx[pick[has]]
    found = chosen >= 0
    post_id[found] = ids[chosen[found]]
    return likes.assign(post_id=post_id)


def _newest_before(
    sorted_user: np.ndarray, sorted_secs: np.ndarray, author: np.ndarray, t: np.ndarray
) -> np.ndarray:
    """Position of `author`'s newest post strictly before `t` in posts sorted by (user,
    time); a position outside the author's block when there is none."""
    span = max(float(sorted_secs.max(initial=0.0)), float(t.max(initial=0.0))) + 1.0
    key = sorted_user * span + sorted_secs
    return np.searchsorted(key, author * span + t, side="left") - 1


def interest_comments(
    rng: np.random.Generator,
    comments: pd.DataFrame,
    posts: pd.DataFrame,
    follows: pd.DataFrame,
    interests: np.ndarray,
    active: np.ndarray,
    active_prob: np.ndarray,
    start: pd.Timestamp,
) -> pd.DataFrame:
    """The comments with each one's author redrawn among the users active that day: a
    follower of the post's author (SOCIAL_SHARE), else by activity x interest in its category."""
    n_d = active.shape[1]
    t = _seconds(comments.created_at, start)
    day = np.clip(np.floor(t / DAY_S).astype(np.int64), 0, n_d - 1)
    row = pd.Index(posts.post_id.to_numpy()).get_indexer(comments.post_id.to_numpy())
    author = posts.user_id.to_numpy(np.int64)[row]
    category = posts.category_code.to_numpy()[row]
    commenter = comments.user_id.to_numpy(np.int64).copy()
    chosen = np.full(len(comments), -1, np.int64)

    edges = follows.sort_values(["followee_id", "created_at"], kind="stable")
    e_to = edges.followee_id.to_numpy(np.int64)
    e_from = edges.follower_id.to_numpy(np.int64)
    e_at = _seconds(edges.created_at, start)
    first = np.searchsorted(e_to, author, side="left")
    degree = np.searchsorted(e_to, author, side="right") - first
    edge = np.minimum(
        first + (rng.random(len(t)) * np.maximum(degree, 1)).astype(np.int64), max(len(e_to) - 1, 0)
    )
    social = (rng.random(len(t)) < SOCIAL_SHARE) & (degree > 0)
    if len(e_to):
        social &= (e_at[edge] <= t) & active[e_from[edge], day]
        chosen[social] = e_from[edge[social]]

    draws = rng.random(len(t))
    rest = chosen < 0
    for d in np.unique(day[rest]):
        users = np.nonzero(active[:, d])[0]
        if not len(users):
            continue
        today = rest & (day == d)
        for c in np.unique(category[today]):
            mine = np.nonzero(today & (category == c))[0]
            cum = np.cumsum(active_prob[users] * interests[users, c])
            pick = np.searchsorted(cum, draws[mine] * cum[-1], side="right")
            chosen[mine] = users[np.minimum(pick, len(users) - 1)]
    found = chosen >= 0
    commenter[found] = chosen[found]
    return comments.assign(user_id=commenter)


def truth_interests(
    interests: np.ndarray, quality: np.ndarray, categories: tuple[str, ...]
) -> pd.DataFrame:
    """The latent inputs of the expected affinity: one row per user and category."""
    n_u, n_c = interests.shape
    return pd.DataFrame(
        {
            "user_id": np.repeat(np.arange(n_u, dtype=np.int64), n_c),
            "category": np.tile(np.array(categories), n_u),
            "interest": interests.ravel(),
            "quality": np.repeat(quality, n_c),
        }
    )


def follow_interests(
    seed: int,
    tables: dict[str, pd.DataFrame],
    categories: tuple[str, ...],
    interests: np.ndarray,
    quality: np.ndarray,
    signup_day: np.ndarray,
    active: np.ndarray,
    active_prob: np.ndarray,
    start: pd.Timestamp,
) -> dict[str, pd.DataFrame]:
    """Follows, likes and comments redrawn by interest, plus `truth_interests`."""
    rng = np.random.default_rng([seed, INTEREST_STREAM])
    codes = {c: i for i, c in enumerate(categories)}
    posts = tables["content_posts"][["post_id", "user_id", "created_at", "category"]]
    posts = posts.assign(category_code=posts.category.map(codes).to_numpy(np.int64))
    follows = interest_follows(rng, tables["follows"], interests, signup_day, start)
    likes = interest_likes(rng, tables["likes"], posts, follows, interests, quality, start)
    comments = interest_comments(
        rng, tables["comments"], posts, follows, interests, active, active_prob, start
    )
    return {
        "follows": follows,
        "likes": likes,
        "comments": comments,
        "truth_interests": truth_interests(interests, quality, categories),
    }


def like_probability(
    window: pd.DataFrame,
    at: pd.Timestamp,
    interest: dict[str, float],
    quality: pd.Series,
    followees: pd.DataFrame,
    degree: int,
) -> np.ndarray:
    """The expected affinity: the probability that a viewer likes each post of `window` (the
    posts of the WINDOW_DAYS before `at`: post_id, user_id, created_at, category) at `at`.

    `interest`: the viewer's interest per category; `quality`: author quality by user_id;
    `followees`: the viewer's follows (followee_id, created_at); `degree`: its edge count."""
    age = (at.value - pd.DatetimeIndex(window.created_at).asi8) / 1e9
    author = window.user_id.to_numpy(np.int64)
    q = quality.reindex(author).fillna(0.0).to_numpy(float)
    weight = np.exp(QUALITY_WEIGHT * q - age / (RECENCY_DAYS * DAY_S))
    names, category = np.unique(window.category.to_numpy().astype(str), return_inverse=True)
    total = np.bincount(category, weights=weight, minlength=len(names))[category]
    share = np.array([interest.get(str(c), 0.0) for c in names], float)[category]
    social = np.zeros(len(window))
    explore = 1.0
    if degree > 0 and len(followees):
        live = followees.followee_id.to_numpy(np.int64)[
            pd.DatetimeIndex(followees.created_at).asi8 <= at.value
        ]
        # the newest post of each live followee (window is in time order)
        ours = np.nonzero(np.isin(author, live))[0]
        if len(ours):
            last = ours[len(ours) - 1 - np.unique(author[ours][::-1], return_index=True)[1]]
            social[last] = SOCIAL_SHARE / degree
            explore = 1.0 - SOCIAL_SHARE * len(last) / degree
    return social + explore * share * weight / np.maximum(total, 1e-300)
