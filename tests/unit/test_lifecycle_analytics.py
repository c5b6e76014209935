"""Engagement quality, share cascades and lifecycles: the rules on hand-made frames, and what
they find on the quick preset against what the simulator planted."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics.cascades import cascade_starters, organic_shares, post_cascades
from analytics.churn_risk import ChurnScorer
from analytics.lifecycle import half_lives, user_stages, with_champion
from analytics.lifecycle_report import cascades_part, lifecycle_parts, quality_part
from analytics.quality import BURST_MIN, COMMENT, LIKE, SHARE, account_quality, post_quality
from ingestion.schema import ALL_TABLES
from ingestion.simulate_cascades import SHARE_DELAY_HOURS
from ingestion.simulator import simulate

T0 = pd.Timestamp("2026-03-01 12:00", tz="UTC")


@pytest.fixture(scope="module")
def platform():
    return simulate("quick", seed=11)


def _posts(n: int, **columns) -> pd.DataFrame:
    base = {
        "post_id": np.arange(n),
        "user_id": np.arange(n) + 100,
        "created_at": T0,
        "post_type": "image",
        "reach": 1000,
        "likes": 0,
        "comments": 0,
        "shares": 0,
        "saves": 0,
    }
    return pd.DataFrame({**base, **columns})


def _events(rows: list[tuple[int, int, pd.Timestamp]], **extra) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["post_id", "user_id", "created_at"])
    return frame.assign(**extra)


NO_LIKES = _events([])


def test_share_graph_matches_the_counters_and_plants_bots_outside_the_users(platform):
    posts, events = platform["content_posts"], platform["share_events"]
    bots = platform["truth_bot_bursts"]
    for name in ("share_events", "truth_bot_bursts"):
        ALL_TABLES[name].conform(platform[name])  # the schema holds what the simulator writes
    recorded = events.groupby("post_id").size().reindex(posts.post_id, fill_value=0)
    expected = posts.set_index("post_id").shares.add(
        bots.set_index("post_id").bot_shares, fill_value=0
    )
    assert (recorded == expected.reindex(posts.post_id)).all()
    planted = events.user_id >= len(platform["users"])
    assert planted.sum() == bots.bot_shares.sum() and (events[planted].depth == 1).all()
    first = events[events.depth == 1]
    author = first.post_id.map(posts.set_index("post_id").user_id)
    assert (first.from_user_id == author).all()
    assert events.depth.max() >= 3  # shares of shares exist
    posted = events.post_id.map(posts.set_index("post_id").created_at)
    assert (events.created_at >= posted).all()


def test_quality_discounts_exactly_the_planted_bot_bursts(platform):
    scored = post_quality(
        platform["content_posts"],
        platform["likes"],
        platform["comments"],
        platform["share_events"],
    )
    flagged = scored[scored.bot_engagements > 0].set_index("post_id").bot_engagements
    planted = platform["truth_bot_bursts"].set_index("post_id").bot_shares
    assert flagged.sort_index().to_dict() == planted.sort_index().to_dict()
    counters = platform["content_posts"].set_index("post_id").shares
    assert (scored.set_index("post_id").shares == counters).all()  # bots out, organic in
    assert set(scored.quality_class) == {"low", "medium", "high"}
    assert 0.25 < (scored.quality_class == "high").mean() < 0.4


def test_comments_and_shares_weigh_more_than_likes_and_sentiment_counts():
    posts = _posts(4, likes=[1, 0, 0, 0], comments=[0, 1, 1, 0], shares=[0, 0, 0, 1])
    comments = _events([(1, 7, T0), (2, 8, T0)], sentiment=[1.0, -1.0])
    scored = post_quality(posts, NO_LIKES, comments, None).set_index("post_id")
    assert scored.weighted_engagement.tolist() == [LIKE, 2 * COMMENT, 0.0, SHARE]
    assert scored.quality_score[0] == pytest.approx(1000 * LIKE / 1000)


def test_a_burst_needs_enough_new_accounts_within_minutes():
    posts = _posts(3, shares=[0, 0, 0])
    old = T0 - pd.Timedelta(days=30)
    rows = [(0, 1000 + i, T0 + pd.Timedelta(seconds=20 * i)) for i in range(BURST_MIN)]
    rows += [(1, 2000 + i, T0 + pd.Timedelta(seconds=20 * i)) for i in range(BURST_MIN - 1)]
    rows += [(2, 3000 + i, T0 + pd.Timedelta(minutes=5 * i)) for i in range(BURST_MIN)]
    veterans = [(0, 4000 + i, T0 + pd.Timedelta(seconds=i)) for i in range(BURST_MIN)]
    history = [(9, 4000 + i, old) for i in range(BURST_MIN)]  # the veterans liked before
    scored = post_quality(
        posts, _events(history), _events([], sentiment=[]), _events(rows + veterans)
    )
    assert scored.bot_engagements.tolist() == [BURST_MIN, 0, 0]
    assert scored.shares.tolist() == [BURST_MIN, BURST_MIN - 1, BURST_MIN]


def test_account_quality_pools_its_posts():
    posts = _posts(3, user_id=[1, 1, 2], reach=[100, 300, 100], likes=[10, 30, 1])
    accounts = account_quality(post_quality(posts, NO_LIKES, _events([], sentiment=[]), None))
    assert accounts.set_index("user_id").quality_score.to_dict() == {1: 100.0, 2: 10.0}


def test_cascade_depth_breadth_viral_share_and_starters():
    posts = _posts(2, user_id=[1, 2], reach=[1000, 500])
    shares = pd.DataFrame(
        {
            "post_id": [0, 0, 0, 0, 1],
            "user_id": [10, 11, 12, 13, 14],
            "from_user_id": [1, 1, 10, 12, 2],
            "created_at": T0,
            "depth": [1, 1, 2, 3, 1],
            "reached": [100, 50, 20, 30, 10],
        }
    )
    cascades = post_cascades(posts, shares).set_index("post_id")
    assert cascades.loc[0, ["cascade_size", "depth", "breadth", "viral_reach"]].tolist() == [
        4,
        3,
        2,
        200,
    ]
    assert cascades.viral_share.tolist() == [0.2, 0.02]
    starters = cascade_starters(posts, cascades.reset_index(), shares).set_index("user_id")
    assert starters["rank"].to_dict() == {1: 1, 2: 2}
    assert starters.reshared.to_dict() == {1: 0, 2: 0}  # 10 and 12 reshared, not the authors


def test_organic_shares_leave_the_planted_bots_out(platform):
    organic = organic_shares(
        platform["share_events"], platform["content_posts"], platform["likes"], platform["comments"]
    )
    assert (organic.user_id < len(platform["users"])).all()
    assert len(organic) == platform["content_posts"].shares.sum()


def test_half_life_recovers_the_planted_delays(platform):
    posts, comments = platform["content_posts"], platform["comments"]
    # as `smap analytics run` does: bot-like bursts (shares within minutes) left out first
    organic = organic_shares(platform["share_events"], posts, platform["likes"], comments)
    first = organic[organic.depth == 1]
    found = half_lives(posts, comments, first).set_index(["post_type", "kind"]).half_life_hours
    for post_type, mean_hours in SHARE_DELAY_HOURS.items():
        assert found[(post_type, "share")] == pytest.approx(np.log(2) * mean_hours, rel=0.2)
        assert found[(post_type, "comment")] == pytest.approx(np.log(2) * 0.6 * 24, rel=0.25)
    assert found[("video", "all")] > found[("text", "all")]


def test_stages_by_activity_windows_and_their_transitions():
    end = pd.Timestamp("2026-06-30")
    days = pd.date_range(end - pd.Timedelta(days=199), end)
    users = pd.DataFrame(
        {
            "user_id": [1, 2, 3, 4, 5],
            "created_at": pd.to_datetime(["2025-01-01"] * 4 + ["2026-06-20"], utc=True),
        }
    )
    last_active = {1: end, 2: end - pd.Timedelta(days=10), 3: end - pd.Timedelta(days=40)}
    last_active[4] = end - pd.Timedelta(days=100)
    rows = [(u, d) for u, stop in last_active.items() for d in days if d <= stop]
    rows.append((5, end))
    activity = pd.DataFrame(rows, columns=["user_id", "date"])
    stages, transitions, summary = user_stages(users, activity)
    now = stages[stages.date == stages.date.max()].set_index("user_id").stage.to_dict()
    assert now == {1: "active", 2: "at-risk", 3: "dormant", 4: "churned", 5: "new"}
    seen = transitions[transitions.rate.notna()]  # no one was new a period before the end
    assert np.allclose(seen.groupby("from_stage").rate.sum(), 1.0)
    assert set(seen.from_stage) == {"active", "at-risk", "dormant", "churned"}
    assert summary.set_index("stage").users.to_dict() == {
        "new": 1,
        "active": 1,
        "at-risk": 1,
        "dormant": 1,
        "churned": 1,
    }


def test_churn_rate_rises_from_active_to_dormant_on_the_quick_preset(platform):
    activity = pd.concat(
        [
            platform[name][["user_id", "created_at"]]
            for name in ("content_posts", "likes", "comments")
        ]
    )
    activity["date"] = activity.created_at.dt.tz_localize(None).dt.normalize()
    _, _, summary = user_stages(platform["users"], activity.drop_duplicates(["user_id", "date"]))
    rate = summary.set_index("stage").churn_rate
    assert rate["active"] < rate["at-risk"] < rate["dormant"] <= rate["churned"]


def test_sections_say_what_to_run_and_why_a_share_graph_is_missing():
    parts = lifecycle_parts(lambda *_args: None)
    assert [p.title for p in parts] == ["Engagement quality", "Share cascades", "Lifecycles"]
    assert all("smap analytics run" in p.note and not p.figures for p in parts)
    empty = pd.DataFrame(columns=["post_id"])
    assert "No share graph" in cascades_part(empty, empty).note
    assert "No engagement quality" in quality_part(None, None).note


def test_the_churn_champion_s_mean_probability_joins_each_stage():
    day = pd.Timestamp("2026-06-30")
    stages = pd.DataFrame(
        {
            "user_id": [1, 2, 3, 1],
            "date": [day, day, day, day - pd.Timedelta(days=28)],
            "stage": ["active", "active", "dormant", "new"],
        }
    )
    metrics = pd.DataFrame({"user_id": [1, 2, 3], "days_since_last_activity": [0, 2, 40]})
    scorer = ChurnScorer(7, ["days_since_last_activity"], lambda f: f.iloc[:, 0] / 50.0)
    summary = pd.DataFrame(
        {"stage": ["new", "active", "dormant"], "churn_probability": np.nan, "risk_source": "x"}
    )
    out = with_champion(summary, stages, metrics, scorer).set_index("stage")
    assert out.churn_probability.to_dict() == pytest.approx(
        {"new": np.nan, "active": 0.02, "dormant": 0.8}, nan_ok=True
    )
    assert out.risk_source.iloc[0].startswith("churn champion v7 on 2026-06-30")
