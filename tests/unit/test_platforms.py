"""Platforms: the typed table, the simulator's per-platform behaviour (its own stream, a
multiplicative effect), native rates by each platform's definition and the normalised index."""

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from analytics.platforms import compare_platforms, follower_growth, native_rates, post_rates
from configs.platforms import DEFAULT_PLATFORMS, PlatformSettings, neutral_platforms
from configs.settings import load_settings
from ingestion.simulator import simulate


@pytest.fixture(scope="module")
def tables():
    return simulate("quick", seed=3)


def test_the_default_table_lists_six_platforms_and_a_known_default():
    settings = load_settings()
    assert settings.platforms.names == (
        "instagram",
        "tiktok",
        "x",
        "facebook",
        "youtube",
        "linkedin",
    )
    assert settings.platforms.default == "instagram"
    assert settings.platforms.spec("x").rate.per == "impressions"
    assert settings.platforms.spec("instagram").rate.per == "reach"
    assert "clicks" in settings.platforms.spec("linkedin").rate.counts


def test_a_platform_table_that_contradicts_itself_is_refused_naming_the_key():
    with pytest.raises(ValidationError, match="platforms.default"):
        PlatformSettings(default="myspace")
    with pytest.raises(ValidationError, match="account_share sums to"):
        PlatformSettings(platforms=DEFAULT_PLATFORMS[:2])
    with pytest.raises(ValidationError, match="listed twice"):
        PlatformSettings(platforms=(*DEFAULT_PLATFORMS[:5], DEFAULT_PLATFORMS[0]))


def test_every_account_and_post_has_one_platform_and_posts_follow_their_account(tables):
    accounts, posts = tables["account_platforms"], tables["post_platforms"]
    assert len(accounts) == len(tables["users"]) and len(posts) == len(tables["content_posts"])
    joined = (
        tables["content_posts"][["post_id", "user_id"]]
        .merge(posts)
        .merge(accounts, on="user_id", suffixes=("", "_account"))
    )
    assert (joined.platform == joined.platform_account).all()
    assert set(accounts.platform) == {p.name for p in DEFAULT_PLATFORMS}


def test_platforms_change_only_the_engagement_counts_and_their_truth(tables):
    plain = simulate("quick", seed=3, platforms=neutral_platforms())
    for name in ("users", "follows", "likes", "hashtags", "post_hashtags", "truth_users"):
        pd.testing.assert_frame_equal(tables[name], plain[name])
    posts, before = tables["content_posts"], plain["content_posts"]
    same = ["post_id", "user_id", "created_at", "post_type", "category", "caption", "hashtags"]
    pd.testing.assert_frame_equal(posts[same], before[same])
    for column in ("reach", "impressions", "likes", "comments", "shares", "saves"):
        assert (posts[column] <= np.maximum(before[column], 5)).all()  # thinned, never more
    kept = tables["comments"].groupby("post_id").size()
    assert (kept <= posts.comments.reindex(kept.index)).all()  # comment rows follow the count


def test_each_platform_scales_engagement_by_its_factor(tables):
    """The truth is scaled by exactly the factor; the realised rate follows it (quick preset:
    a post-weighted rate within 25% of the truth's, per platform)."""
    plain = simulate("quick", seed=3, platforms=neutral_platforms())
    platform = tables["post_platforms"].platform
    ratio = (
        tables["truth_posts"].expected_engagement_rate
        / plain["truth_posts"].expected_engagement_rate
    )
    posts = tables["content_posts"]
    realised = (posts.likes + posts.comments + posts.shares + posts.saves) / posts.reach
    expected = tables["truth_posts"].expected_engagement_rate
    for spec in DEFAULT_PLATFORMS:
        on = (platform == spec.name).to_numpy()
        assert np.allclose(ratio[on], spec.engagement)
        big = on & (posts.reach >= 50).to_numpy()
        assert realised[big].mean() == pytest.approx(expected[big].mean(), rel=0.25), spec.name


def _posts(platform: str, reach, impressions, likes, shares=0):
    n = len(reach)
    return pd.DataFrame(
        {
            "post_id": range(n),
            "user_id": range(n),
            "platform": platform,
            "created_at": pd.Timestamp("2026-01-01", tz="UTC"),
            "date": pd.Timestamp("2026-01-01"),
            "reach": reach,
            "impressions": impressions,
            "likes": likes,
            "comments": 0,
            "shares": shares,
            "saves": 1,
        }
    )


def test_native_rates_follow_each_platforms_definition():
    settings = PlatformSettings()
    x = _posts("x", [100], [200], [10])  # X: likes + comments + shares, per impression
    insta = _posts("instagram", [100], [200], [10])  # per reach, saves counted
    unknown = _posts("mastodon", [100], [200], [10])  # not listed: all counts per reach
    posts = pd.concat([x, insta, unknown], ignore_index=True)
    assert native_rates(posts, settings).tolist() == pytest.approx([0.05, 0.11, 0.11])


def test_the_rate_index_is_relative_to_the_platforms_own_median():
    settings = PlatformSettings()
    newest = _posts("x", [1000], [1000], [0]).assign(
        created_at=pd.Timestamp("2026-03-01", tz="UTC")
    )
    x = _posts("x", [1000] * 3, [2000] * 3, [10, 20, 40])  # native 0.005, 0.01, 0.02
    insta = _posts("instagram", [1000] * 3, [2000] * 3, [49, 99, 199])  # 0.05, 0.1, 0.2
    posts = pd.concat([x, insta, newest], ignore_index=True).assign(post_id=range(7))
    rates = post_rates(posts, settings)
    matured = rates[rates.matured]
    assert len(matured) == 6  # the newest post's label window is still open
    # the same relative standing on both platforms: the same index
    assert matured.rate_index.tolist() == pytest.approx([0.5, 1, 2, 0.5, 1, 2])
    table = compare_platforms(rates, follower_growth(None, None, rates, settings), settings)
    assert table.set_index("platform").native_rate.to_dict() == pytest.approx(
        {"x": 70 / 6000, "instagram": 350 / 3000}
    )


def test_posts_without_a_platform_count_as_the_default_one():
    settings = PlatformSettings(default="tiktok")
    posts = _posts("x", [100, 100], [100, 100], [1, 2]).astype({"platform": object})
    posts.loc[1, "platform"] = None
    assert post_rates(posts, settings).platform.tolist() == ["x", "tiktok"]


def test_a_draft_names_its_platform_or_leaves_it_to_the_default():
    from serving.features import draft_rows
    from serving.schemas import DRAFT_EXAMPLE, Draft

    assert Draft(**DRAFT_EXAMPLE).platform is None  # existing requests stay valid
    assert Draft(**{**DRAFT_EXAMPLE, "platform": "TikTok"}).platform == "tiktok"
    with pytest.raises(ValidationError, match="platform"):
        Draft(**{**DRAFT_EXAMPLE, "platform": "my space!"})
    when = pd.Timestamp("2026-06-01 18:00", tz="UTC").to_pydatetime()
    rows = draft_rows(
        [1, 2], ["video"] * 2, ["food"] * 2, [[], []], ["", ""], [when] * 2, [False] * 2
    )
    assert rows["platform"] == ["instagram", "instagram"]  # the table's default
    named = draft_rows([1], ["video"], ["food"], [[]], [""], [when], [False], ["x"])
    assert named["platform"] == ["x"]


def test_the_engagement_model_reads_the_platform_through_engagement_v3():
    from feature_repo.feature_services import DRAFT_SERVICES
    from feature_repo.platform_views import platform_features
    from training.tasks.engagement import TASK

    assert TASK.feature_service == "engagement_v3" and "engagement_v3" in DRAFT_SERVICES
    out = platform_features.feature_transformation.udf({"platform": [" X ", None, "tiktok"]})
    assert out == {"content_platform": ["x", "", "tiktok"]}
