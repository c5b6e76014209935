"""Interactions that follow interests (ingestion/simulate_interests.py) and the ranking
metrics of the recommender (training/recommender.py), on the quick preset and by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ingestion.simulate_interests import WINDOW_DAYS, like_probability
from ingestion.simulator import CATEGORIES, simulate
from training.recommender import ranking_metrics, ranks

T0 = pd.Timestamp("2026-03-01", tz="UTC")


@pytest.fixture(scope="module")
def platform():
    return simulate("quick", seed=11)


def test_likes_go_to_recent_posts_in_the_viewers_interests(platform):
    posts = platform["content_posts"].set_index("post_id")
    likes = platform["likes"]
    published = pd.DatetimeIndex(posts.created_at.reindex(likes.post_id))
    age = (pd.DatetimeIndex(likes.created_at) - published).total_seconds()
    fresh = (age >= 0) & (age < WINDOW_DAYS * 86_400)
    assert fresh.mean() > 0.99  # only likes with no post before them keep a uniform one

    truth = platform["truth_interests"]
    assert len(truth) == platform["users"].user_id.nunique() * len(CATEGORIES)
    interest = truth.set_index(["user_id", "category"]).interest
    liked = interest.reindex(
        pd.MultiIndex.from_arrays([likes.user_id, posts.category.reindex(likes.post_id)])
    )
    # a uniform like lands in a category the viewer cares for 1/8 on average
    assert liked.mean() > 2 * (1 / len(CATEGORIES))


def test_follows_stay_distinct_and_lean_to_the_followees_category(platform):
    follows, truth = platform["follows"], platform["truth_interests"]
    assert not follows.duplicated(["follower_id", "followee_id"]).any()
    assert (follows.follower_id != follows.followee_id).all()
    wide = truth.pivot(index="user_id", columns="category", values="interest")
    main = wide.idxmax(axis=1)
    share = wide.to_numpy()[
        wide.index.get_indexer(follows.follower_id),
        wide.columns.get_indexer(main.reindex(follows.followee_id)),
    ]
    assert share.mean() > 1.5 / len(CATEGORIES)  # uniform followers: 1/8 on average


def test_comment_authors_are_active_and_interested(platform):
    comments = platform["comments"]
    posts = platform["content_posts"].set_index("post_id")
    truth = platform["truth_interests"].set_index(["user_id", "category"]).interest
    share = truth.reindex(
        pd.MultiIndex.from_arrays([comments.user_id, posts.category.reindex(comments.post_id)])
    )
    assert share.mean() > 2 * (1 / len(CATEGORIES))


def test_like_probability_is_a_distribution_over_the_window():
    window = pd.DataFrame(
        {
            "post_id": [1, 2, 3, 4],
            "user_id": [10, 11, 10, 12],
            "created_at": [T0, T0 + pd.Timedelta(hours=5), T0 + pd.Timedelta(hours=6), T0],
            "category": ["food", "tech", "food", "tech"],
        }
    )
    at = T0 + pd.Timedelta(hours=8)
    quality = pd.Series({10: 0.5, 11: 0.0, 12: -0.5})
    follows = pd.DataFrame({"followee_id": [10, 99], "created_at": [T0, T0]})
    p = like_probability(window, at, {"food": 0.75, "tech": 0.25}, quality, follows, 2)
    assert p.sum() == pytest.approx(1.0)
    assert p[2] > p[0]  # the followee's newest post takes the social share
    alone = like_probability(window, at, {"food": 0.75, "tech": 0.25}, quality, follows[:0], 0)
    assert alone[[0, 2]].sum() == pytest.approx(0.75) and alone[2] > alone[0]  # fresher


def test_ranks_break_ties_newest_first_and_metrics_follow():
    frame = pd.DataFrame(
        {
            "query": [0, 0, 0, 1, 1, 1],
            "age_days": [0.5, 0.2, 1.0, 0.1, 0.2, 0.3],
            "target": [True, False, False, False, False, True],
        }
    )
    scores = np.array([1.0, 1.0, 0.0, 3.0, 2.0, 1.0])
    assert list(ranks(frame, scores)) == [2, 3]  # tie lost to a newer post; third of three
    figures = ranking_metrics(frame, scores, k=2)
    assert figures["hit_rate_at_2"] == pytest.approx(0.5)
    assert figures["ndcg_at_2"] == pytest.approx(0.5 / np.log2(3))
