"""Recommendations on a tiny hand-made platform: interests, candidates (fresh, unfollowed, in
the user's categories), ranking, hit-rate and its chance level, and the evaluation loop."""

from __future__ import annotations

import pandas as pd
import pytest

from analytics import recommend as rec
from analytics.errors import AnalyticsError

T0 = pd.Timestamp("2026-03-01", tz="UTC")


def at(days: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(days=days)


@pytest.fixture
def platform() -> rec.Platform:
    # user 1 posts food and likes food; user 2 (food) is followed by 1; 3 (food), 4 (tech)
    posts = pd.DataFrame(
        {
            "post_id": [10, 11, 12, 13, 14, 15, 16],
            "user_id": [1, 2, 3, 4, 3, 2, 3],
            "created_at": [at(0), at(0.5), at(1), at(9), at(9.2), at(9.4), at(9.6)],
            "category": ["food", "food", "food", "tech", "food", "food", "food"],
            "post_type": "image",
            "hashtags": "",
            "caption": "",
            "is_paid": False,
        }
    )
    follows = pd.DataFrame({"follower_id": [1], "followee_id": [2], "created_at": [at(0)]})
    interactions = pd.DataFrame(
        {
            "user_id": [1, 1, 5],
            "post_id": [12, 16, 14],
            "created_at": [at(2), at(9.9), at(9.8)],
            "kind": ["like", "like", "comment"],
        }
    )
    return rec.Platform(posts, follows, interactions)


def test_interests_follows_and_candidates(platform):
    taste = rec.interests(platform, at(5))
    assert taste[1] == {"food"} and taste[3] == {"food"}
    assert 5 not in taste  # no history before day 5: cold start
    assert rec.followed(platform, 1, at(5)) == {2}
    pool = rec.candidates(platform, 1, at(10), taste[1], {2})
    # fresh (3 days), not by user 1, not by followed user 2, food only (not 4's tech post)
    assert pool.post_id.tolist() == [14, 16]
    assert rec.candidates(platform, 1, at(10), None, set()).post_id.tolist() == [13, 14, 15, 16]


def test_rank_orders_by_score_then_newest(platform):
    pool = rec.candidates(platform, 1, at(10), None, set())
    scores = pd.Series({13: 0.5, 14: 0.9, 15: 0.5, 16: 0.1})
    assert rec.rank(pool, scores, 3).post_id.tolist() == [14, 15, 13]


def test_hit_rate_and_chance_on_a_hand_made_example():
    recommended = [[1, 2, 3], [4, 5, 6], [7, 8, 9], []]
    held_out = [3, 6, 1, 2]  # 3 and 6 are third in their lists, 1 and 2 in none
    assert rec.hit_rate(recommended, held_out, k=3) == pytest.approx(2 / 4)
    assert rec.hit_rate(recommended, held_out, k=2) == pytest.approx(0 / 4)
    # random ranking: pools of 3 (k=2): 2/3 where the post is inside, 0 outside
    assert rec.chance_hit_rate([3, 3, 0], [True, False, False], k=2) == pytest.approx(2 / 9)
    with pytest.raises(AnalyticsError, match="one recommendation list"):
        rec.hit_rate([[1]], [1, 2])


def test_evaluation_counts_a_hit_where_the_ranking_puts_the_liked_post_first(platform):
    # held out: the last 1 day (from day 8.6): user 1's like of 16 and user 5's comment on 14
    good = pd.Series({13: 0.0, 14: 0.1, 15: 0.0, 16: 0.9})
    figures = rec.evaluate_ranking(platform, good, holdout_days=1, k=1)
    like = figures["like"]
    assert like["held_out"] == 1 and like["recommender"] == 1.0
    assert like["recommender_pool"] == 2  # 14 and 16: food, fresh, not 1's, not followed 2's
    assert like["recommender_chance"] == pytest.approx(1 / 2)
    # popularity at day 9.9: 14 has a comment (day 9.8), 16 none yet -> 14 first: a miss
    assert like["popularity"] == 0.0 and like["popularity_pool"] == 4
    bad = pd.Series({13: 0.0, 14: 0.9, 15: 0.0, 16: 0.1})
    assert rec.evaluate_ranking(platform, bad, holdout_days=1, k=1)["like"]["recommender"] == 0.0
    comment = figures["comment"]  # user 5 has no history: every category, no follows
    assert comment["held_out"] == 1 and comment["recommender_reachable"] == 1.0
