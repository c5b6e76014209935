"""Platforms in the simulator: every account lives on one platform, its posts on it too, and
each platform's reach and engagement differ by a multiplicative factor (configs/platforms.py).

Everything here draws from its own stream, after the main stream has drawn every count, so
all tables but the engagement counts stay as the seed made them. The factors are at most 1
and act by binomial thinning of counts already drawn: a post's reach and impressions keep
`reach` of their accounts, its interactions `reach * engagement` of theirs (shares a further
`shares`), so its engagement rate per reach is `engagement` times what it was, in expectation,
and the truth tables are scaled by exactly that.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from configs.platforms import PlatformSettings

PLATFORM_STREAM = 7361  # platform draws come from default_rng([seed, PLATFORM_STREAM])
MIN_REACH = 5  # as the simulator's floor on reach


def with_platforms(
    seed: int, platforms: PlatformSettings, tables: dict[str, pd.DataFrame]
) -> dict[str, pd.DataFrame]:
    """`tables` (the simulator's) with platform-thinned engagement counts, the comment rows
    those counts keep, scaled truth, and `account_platforms` / `post_platforms`."""
    rng = np.random.default_rng([seed, PLATFORM_STREAM])
    users, posts = tables["users"], tables["content_posts"]
    specs = platforms.platforms
    shares = np.array([p.account_share for p in specs])
    of_account = rng.choice(len(specs), size=len(users), p=shares / shares.sum())
    of_post = of_account[posts.user_id.to_numpy()]
    reach_f = np.array([p.reach for p in specs])[of_post]
    engage_f = np.array([p.engagement for p in specs])[of_post]
    share_f = np.array([p.shares for p in specs])[of_post]

    out = posts.copy()
    reach = posts.reach.to_numpy()
    out["reach"] = np.maximum(rng.binomial(reach, reach_f), MIN_REACH)
    extra = posts.impressions.to_numpy() - reach
    out["impressions"] = out.reach.to_numpy() + rng.binomial(extra, reach_f)
    for column in ("likes", "comments", "saves"):
        out[column] = rng.binomial(posts[column].to_numpy(), reach_f * engage_f)
    out["shares"] = rng.binomial(posts.shares.to_numpy(), reach_f * engage_f * share_f)

    # comment rows: a post keeps as many of its rows as its thinned count allows
    comments = tables["comments"]
    rank = comments.groupby("post_id").cumcount().to_numpy()
    kept = comments[rank < out.comments.to_numpy()[comments.post_id.to_numpy()]]
    renumbered = dict(zip(kept.comment_id, range(len(kept)), strict=True))
    kept = kept.assign(comment_id=np.arange(len(kept), dtype=np.int64)).reset_index(drop=True)
    said_tables: dict[str, pd.DataFrame] = {}
    if "truth_comment_sentiment" in tables:  # the kept comments' classes, under their new ids
        said = tables["truth_comment_sentiment"]
        said = said[said.comment_id.isin(renumbered)]
        said_tables["truth_comment_sentiment"] = said.assign(
            comment_id=said.comment_id.map(renumbered).astype(np.int64)
        ).reset_index(drop=True)

    truth = tables["truth_posts"].copy()
    truth["expected_engagement_rate"] = truth.expected_engagement_rate * engage_f
    truth["expected_share_rate"] = truth.expected_share_rate * engage_f * share_f

    names = np.array(platforms.names)
    return {
        **tables,
        "content_posts": out,
        "comments": kept,
        "truth_posts": truth,
        **said_tables,
        "account_platforms": pd.DataFrame(
            {"user_id": users.user_id.to_numpy(np.int64), "platform": names[of_account]}
        ),
        "post_platforms": pd.DataFrame(
            {"post_id": posts.post_id.to_numpy(np.int64), "platform": names[of_post]}
        ),
    }
