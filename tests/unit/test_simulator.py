import numpy as np
import pytest
from sklearn.metrics import r2_score

from ingestion.etl import interactions
from ingestion.simulator import simulate


@pytest.fixture(scope="module")
def platform():
    return simulate("quick", seed=7)


def test_same_seed_same_platform(platform):
    again = simulate("quick", seed=7)
    assert again["content_posts"].equals(platform["content_posts"])
    other = simulate("quick", seed=8)
    assert not other["content_posts"].equals(platform["content_posts"])


def test_engagement_rates_are_plausible(platform):
    posts = platform["content_posts"]
    rate = interactions(posts) / posts.reach
    share_in_band = ((rate >= 0.005) & (rate <= 0.10)).mean()
    assert 0.6 < share_in_band < 0.95
    assert 0.01 < rate.median() < 0.08


def test_follower_counts_are_heavy_tailed(platform):
    followers = platform["follows"].groupby("followee_id").size()
    assert followers.max() > 10 * followers.median()


def test_monthly_churn_in_public_range(platform):
    truth = platform["truth_users"]
    monthly = 1 - (1 - truth.churn_hazard) ** 30
    assert 0.05 <= monthly.mean() <= 0.15


def test_oracle_is_informative_but_not_perfect(platform):
    posts, truth = platform["content_posts"], platform["truth_posts"]
    r2 = r2_score(interactions(posts) / posts.reach, truth.expected_engagement_rate)
    assert 0.2 < r2 < 0.9


def test_latent_traits_never_in_raw_tables(platform):
    raw_columns = set().union(*(platform[t].columns for t in ("users", "content_posts")))
    assert not raw_columns & {
        "quality",
        "churn_hazard",
        "expected_engagement_rate",
        "daily_active_prob",
    }


def test_hashtag_usage_has_weekly_seasonality(platform):
    truth = platform["truth_hashtag_daily"]
    by_dow = truth.groupby(truth.date.dt.dayofweek).expected_usage.sum()
    assert by_dow.max() > 1.01 * by_dow.min()


def test_shift_favours_video_after_the_shift_day(platform):
    shifted = simulate("quick", seed=7, shift_at=60)

    def video_lift(tables):
        posts = tables["content_posts"]
        late = posts[
            posts.created_at >= posts.created_at.min().normalize() + np.timedelta64(60, "D")
        ]
        rate = tables["truth_posts"].set_index("post_id").expected_engagement_rate
        late_rate = rate.loc[late.post_id]
        return late_rate[late.post_type.eq("video").to_numpy()].mean() / late_rate.mean()

    assert video_lift(shifted) > video_lift(platform) * 1.1
