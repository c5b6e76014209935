"""The analytics layer's arithmetic on tiny hand-made frames whose answers are known."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pandas as pd
import pytest

from analytics import alerts, influence, kpis, segments, trends
from analytics.errors import AnalyticsError
from configs.errors import SmapError
from configs.settings import AnalyticsSettings
from ingestion.warehouse import ParquetWarehouse

T0 = pd.Timestamp("2026-03-01", tz="UTC")


def _posts(rows: list[dict]) -> pd.DataFrame:
    base = {"category": "food", "likes": 0, "comments": 0, "shares": 0, "saves": 0, "reach": 100}
    frame = pd.DataFrame([{**base, **row} for row in rows])
    frame["post_id"] = np.arange(len(frame), dtype=np.int64)
    return frame


def _empty(*columns: str) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="int64") for c in columns})


# --- influence -------------------------------------------------------------------------------


def test_pagerank_matches_the_textbook_two_page_answer():
    # A -> B, B follows nobody: B's score jumps uniformly (networkx: 0.3509, 0.6491)
    score = influence.pagerank(2, np.array([0]), np.array([1]), np.array([1.0]))
    assert score == pytest.approx([0.5 / 1.425, 0.925 / 1.425], abs=1e-8)
    assert score.sum() == pytest.approx(1.0)


def test_pagerank_ranks_the_account_the_hub_follows_above_the_hub():
    # leaves 1..4 follow hub 0; 3 and 4 also follow 6; the hub follows only 5
    src = np.array([1, 2, 3, 4, 3, 4, 0])
    dst = np.array([0, 0, 0, 0, 6, 6, 5])
    score = influence.pagerank(7, src, dst, np.ones(7))
    assert list(np.argsort(-score)[:3]) == [5, 0, 6]
    leaf = score[1]
    # by hand: x0 = x_leaf (1 + 0.85 * 3), x6 = x_leaf * 1.85, x5 = x_leaf + 0.85 * x0
    assert score[0] / leaf == pytest.approx(3.55)
    assert score[6] / leaf == pytest.approx(1.85)
    assert score[5] / leaf == pytest.approx(1 + 0.85 * 3.55)


def test_pagerank_refuses_bad_jump_weights():
    with pytest.raises(AnalyticsError, match="jump"):
        influence.pagerank(2, np.array([0]), np.array([1]), np.ones(1), jump=np.zeros(2))


def _network(posts: pd.DataFrame, follows, likes=None) -> pd.DataFrame:
    users = pd.DataFrame(
        {
            "user_id": np.arange(4, dtype=np.int64),
            "username": [f"u{i}" for i in range(4)],
            "account_type": "personal",
        }
    )
    edges = pd.DataFrame(follows, columns=["follower_id", "followee_id"])
    likes = likes if likes is not None else _empty("post_id", "user_id")
    return influence.influencer_network(users, posts, edges, likes, _empty("post_id", "user_id"))


def test_engagement_received_lifts_an_account_with_the_same_followers():
    # 1 and 2 are each followed by 0 alone; 2's posts earned far more interactions
    posts = _posts([{"user_id": 1, "likes": 5}, {"user_id": 2, "likes": 500, "category": "tech"}])
    network = _network(posts, [(0, 1), (0, 2)])
    assert list(network.user_id[:2]) == [2, 1]
    assert network.set_index("user_id").loc[2, "engagement_received"] == 500
    assert network.set_index("user_id").loc[1, "followers"] == 1


def test_a_follow_acted_on_passes_more_of_the_vote():
    # 0 follows 1 and 2 equally but liked 2's post three times
    posts = _posts([{"user_id": 1}, {"user_id": 2}])
    likes = pd.DataFrame({"post_id": [1, 1, 1], "user_id": [0, 0, 0]})
    network = _network(posts, [(0, 1), (0, 2)], likes).set_index("user_id")
    assert network.loc[2, "pagerank"] > network.loc[1, "pagerank"]


def test_top_of_filters_by_category_and_validates_input():
    posts = _posts(
        [{"user_id": 1, "likes": 50}, {"user_id": 2, "likes": 500, "category": "tech"}]
        + [{"user_id": 3, "likes": 5}, {"user_id": 3, "likes": 5}, {"user_id": 3, "category": "x"}]
    )
    network = _network(posts, [(0, 1), (0, 2), (0, 3)])
    food = influence.top_of(network, "food", 5)
    assert list(food.user_id) == [1, 3]  # 3 posts mostly food
    assert list(food.category_rank) == [1, 2]
    assert len(influence.top_of(network, n=2)) == 2
    with pytest.raises(AnalyticsError, match=r"category: 'sports'.*\(choose food, tech\)"):
        influence.top_of(network, "sports")
    with pytest.raises(AnalyticsError, match="n: must be at least 1"):
        influence.top_of(network, n=0)


# --- trends ----------------------------------------------------------------------------------


def _daily(usage: dict[int, list[int]]) -> pd.DataFrame:
    days = pd.date_range("2026-03-01", periods=len(next(iter(usage.values()))), freq="D")
    return pd.concat(
        pd.DataFrame(
            {"hashtag_id": tag, "date": days, "usage": uses, "engagement": 10 * np.array(uses)}
        )
        for tag, uses in usage.items()
    )


def test_a_growing_tag_trends_and_a_steady_big_one_does_not():
    steady = [40] * 14
    growing = [2] * 11 + [6, 12, 20]
    tags = pd.DataFrame(
        {"hashtag_id": [0, 1, 2], "tag": ["big", "rising", "dead"], "category": "x"}
    )
    out = trends.hashtag_trends(_daily({0: steady, 1: growing, 2: [0] * 14}), tags)
    assert out.date.min() == pd.Timestamp("2026-03-10")  # first day with 3 + 7 days behind it
    top = trends.trending_hashtags(out, n=2)
    assert list(top.tag) == ["rising", "big"]
    rising = top.iloc[0]
    assert rising.usage_recent == 38 and rising.baseline_daily == pytest.approx(2.0)
    assert rising.trend_score == pytest.approx((38 - 6) / np.sqrt(7))
    assert rising.growth == pytest.approx(39 / 7 - 1)
    assert rising.engagement_recent == 380
    assert top.iloc[1].trend_score == pytest.approx(0.0)
    earlier = trends.trending_hashtags(out, as_of=pd.Timestamp("2026-03-11"), n=3)
    assert earlier.trend_score.max() == pytest.approx(0.0)  # nothing grew before the last days
    with pytest.raises(AnalyticsError, match="n: must be at least 1"):
        trends.trending_hashtags(out, n=0)


def test_velocity_against_the_authors_usual_curve():
    now = T0 + pd.Timedelta(days=30)
    posts = _posts(
        [{"user_id": 7, "created_at": T0 + pd.Timedelta(days=d), "likes": 100} for d in (0, 1, 2)]
        + [{"user_id": 7, "created_at": now - pd.Timedelta(hours=12), "likes": 150}]
        + [{"user_id": 8, "created_at": now - pd.Timedelta(hours=100), "likes": 9}]  # not fresh
    )
    # 40 comments on the matured posts: half within 6 hours, half after a day
    delays = [pd.Timedelta(hours=6)] * 20 + [pd.Timedelta(hours=30)] * 20
    comments = pd.DataFrame(
        {
            "post_id": [i % 3 for i in range(40)],
            "created_at": [T0 + (i % 3) * pd.Timedelta(days=1) + d for i, d in enumerate(delays)],
        }
    )
    out = trends.post_velocity(posts, comments, as_of=now)
    assert list(out.post_id) == [3]
    row = out.iloc[0]
    assert row.age_hours == pytest.approx(12.0)
    assert row.velocity == pytest.approx(150 / 12)
    assert row.expected_velocity == pytest.approx(100 * 0.5 / 12)  # median 100 x half arrived
    assert row.velocity_ratio == pytest.approx(3.0)


# --- alerts ----------------------------------------------------------------------------------


def _series_posts(user: int, interactions: list[int], reach: int = 200) -> list[dict]:
    return [
        {
            "user_id": user,
            "created_at": T0 + pd.Timedelta(days=d, hours=12),
            "likes": v,
            "reach": reach,
        }
        for d, v in enumerate(interactions)
    ]


def test_robust_z_flags_a_planted_spike_and_nothing_else():
    usual = [9, 10, 11] * 10
    posts = _posts(
        _series_posts(1, usual + [60])  # the spike on the last day
        + _series_posts(2, usual + [11])  # an ordinary last day
        + _series_posts(3, [5] * 31)  # no spread at all: never scored
    )
    config = AnalyticsSettings(alert_recent_days=3)
    flagged = alerts.flag_anomalies(alerts.account_series(posts), config)
    assert set(zip(flagged.user_id, flagged.metric, strict=True)) == {
        (1, "interactions"),
        (1, "engagement_rate"),
    }
    assert (flagged.date == T0.tz_localize(None) + pd.Timedelta(days=30)).all()
    assert (flagged.direction == "spike").all()
    by_metric = flagged.set_index("metric")
    # interactions: median 10, MAD 1 -> the Poisson floor sqrt(11) is the scale
    assert by_metric.loc["interactions", "robust_z"] == pytest.approx(50 / np.sqrt(11))
    # engagement rate: median 0.05, MAD 0.005 -> 0.6745 * 0.25 / 0.005
    assert by_metric.loc["engagement_rate", "robust_z"] == pytest.approx(0.6745 * 0.25 / 0.005)
    assert by_metric.loc["interactions", "alert_id"] == "1:2026-03-31:interactions"


def test_no_posts_no_alerts(tmp_path):
    warehouse = _warehouse_with_posts(tmp_path, _posts(_series_posts(1, [1])).iloc[:0])
    assert alerts.detect(warehouse, AnalyticsSettings()) == 0
    assert warehouse.exists("alerts") and alerts.pending(warehouse).empty


def test_a_planted_drop_is_flagged_as_a_drop():
    posts = _posts(_series_posts(1, [40, 44, 48, 42, 46] * 4 + [5]))
    flagged = alerts.flag_anomalies(alerts.account_series(posts), AnalyticsSettings())
    assert list(flagged.direction.unique()) == ["drop"]


class _Hook(BaseHTTPRequestHandler):
    received: list[dict] = []
    status = 200

    def do_POST(self):  # noqa: N802 - the http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append({"body": json.loads(body), "type": self.headers["Content-Type"]})
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    _Hook.received, _Hook.status = [], 200
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hooks/abc", _Hook
    server.shutdown()
    server.server_close()


def _warehouse_with_posts(tmp_path, posts: pd.DataFrame) -> ParquetWarehouse:
    from ingestion.schema import RAW_TABLES

    warehouse = ParquetWarehouse(tmp_path / "warehouse")
    full = posts.assign(
        created_at=pd.to_datetime(posts.created_at, utc=True),
        post_type="image",
        caption="",
        hashtags="",
        campaign_id=pd.array([None] * len(posts), dtype="Int64"),
        is_paid=False,
        impressions=posts.reach,
    )
    warehouse.write(RAW_TABLES["content_posts"], full)
    return warehouse


def test_detect_notify_posts_json_once_and_keeps_first_detection(tmp_path, webhook):
    url, hook = webhook
    posts = _posts(_series_posts(1, [9, 10, 11] * 10 + [60]))
    warehouse = _warehouse_with_posts(tmp_path, posts)
    config = AnalyticsSettings(alert_webhook_url=url)
    first = datetime(2026, 4, 1, tzinfo=UTC)
    assert alerts.detect(warehouse, config, now=first) == 2
    assert alerts.detect(warehouse, config, now=datetime(2026, 4, 2, tzinfo=UTC)) == 0
    assert (warehouse.read("alerts").detected_at == pd.Timestamp(first)).all()
    assert len(alerts.pending(warehouse)) == 2

    assert alerts.notify(warehouse, config) == 2
    (call,) = hook.received
    assert call["type"] == "application/json"
    assert call["body"]["count"] == 2 and call["body"]["source"] == "smap"
    assert {a["metric"] for a in call["body"]["alerts"]} == {"interactions", "engagement_rate"}
    assert call["body"]["alerts"][0]["user_id"] == 1
    assert alerts.pending(warehouse).empty
    assert len(alerts.pending(warehouse, everything=True)) == 2
    assert alerts.notify(warehouse, config) == 0
    assert len(hook.received) == 1  # nothing new: nothing sent


def test_a_failing_webhook_is_one_line_and_keeps_alerts_pending(tmp_path, webhook):
    url, hook = webhook
    hook.status = 500
    warehouse = _warehouse_with_posts(tmp_path, _posts(_series_posts(1, [9, 10, 11] * 10 + [60])))
    config = AnalyticsSettings(alert_webhook_url=url)
    alerts.detect(warehouse, config)
    with pytest.raises(SmapError, match=r"webhook at http://127\.0\.0\.1:\d+ answered HTTP 500"):
        alerts.notify(warehouse, config)
    assert len(alerts.pending(warehouse)) == 2
    unreachable = AnalyticsSettings(alert_webhook_url="http://127.0.0.1:9/x")
    with pytest.raises(SmapError, match="not reachable") as caught:
        alerts.notify(warehouse, unreachable)
    assert "/x" not in str(caught.value)  # a path may hold a token: never printed
    with pytest.raises(SmapError, match="alert_webhook_url is not set"):
        alerts.notify(warehouse, AnalyticsSettings())


# --- KPIs ------------------------------------------------------------------------------------


def test_campaign_kpi_arithmetic():
    day = pd.Timedelta(days=1)
    campaigns = pd.DataFrame(
        {
            "campaign_id": [0, 1],
            "user_id": [5, 6],
            "name": ["spring", "idle"],
            "objective": ["engagement", "awareness"],
            "start_date": pd.to_datetime(["2026-03-10", "2026-03-10"]),
            "end_date": pd.to_datetime(["2026-03-12", "2026-03-12"]),
            "budget": [100.0, 50.0],
        }
    )
    posts = _posts(
        [
            {
                "user_id": 5,
                "created_at": T0 + 10 * day,
                "campaign_id": 0,
                "reach": 1000,
                "likes": 80,
                "comments": 10,
                "shares": 10,
            },
            {
                "user_id": 5,
                "created_at": T0 + 11 * day,
                "campaign_id": 0,
                "reach": 1000,
                "likes": 90,
                "shares": 10,
                "saves": 0,
            },
            {
                "user_id": 5,
                "created_at": T0 + 20 * day,
                "campaign_id": None,
                "reach": 10,
                "likes": 1,
            },
        ]
    ).astype({"campaign_id": "Int64"})
    posts["impressions"] = posts.reach * 2
    follows = pd.DataFrame(
        {
            "followee_id": [5, 5, 5, 5, 5, 6],
            "created_at": [  # T0 is March 1: before, before, first day, last day, after
                T0,
                T0 + 8 * day,
                T0 + 9 * day,
                T0 + 11 * day + pd.Timedelta(hours=23),
                T0 + 12 * day + pd.Timedelta(hours=1),
                T0 + 11 * day,
            ],
        }
    )
    # engagers of campaign 0: users 1, 2 and 3 (5 is the owner); 1 comes back on March 21,
    # 2 only after the 28 days
    likes = pd.DataFrame(
        {
            "post_id": [0, 0, 1, 1, 2, 2],
            "user_id": [1, 2, 3, 5, 1, 2],
            "created_at": [T0 + 10 * day] * 4 + [T0 + 20 * day, T0 + 60 * day],
        }
    )
    comments = pd.DataFrame({"post_id": [0], "user_id": [1], "created_at": [T0 + 10 * day]})
    out = kpis.campaign_kpis(campaigns, posts, follows, likes, comments, 0.5).set_index(
        "campaign_id"
    )
    spring = out.loc[0]
    assert (spring.posts, spring.reach, spring.impressions, spring.interactions, spring.shares) == (
        2,
        2000,
        4000,
        200,
        20,
    )
    assert spring.engagement_rate == pytest.approx(0.1)
    assert spring.virality_score == pytest.approx(10.0)  # shares per 1,000 reached
    assert (spring.followers_at_start, spring.follower_growth) == (2, 2)
    assert (spring.engagers, spring.retained) == (3, 1)
    assert spring.retention == pytest.approx(1 / 3)
    assert spring.cost_per_engagement == pytest.approx(0.5)
    assert spring.roi == pytest.approx((200 * 0.5 - 100) / 100)
    idle = out.loc[1]
    assert idle.posts == 0 and idle.follower_growth == 1
    assert np.isnan(idle.engagement_rate) and np.isnan(idle.cost_per_engagement)
    assert np.isnan(idle.retention)
    assert idle.roi == pytest.approx(-1.0)


def test_daily_kpi_arithmetic():
    posts = _posts(
        [
            {
                "user_id": 1,
                "created_at": T0 + pd.Timedelta(hours=1),
                "reach": 100,
                "likes": 10,
                "shares": 2,
            },
            {"user_id": 2, "created_at": T0 + pd.Timedelta(hours=23), "reach": 300, "likes": 30},
            {"user_id": 1, "created_at": T0 + pd.Timedelta(hours=25), "reach": 0},
        ]
    )
    day0 = T0.tz_localize(None)
    activity = pd.DataFrame(
        {"user_id": [1, 2, 3], "date": [day0, day0, day0 + pd.Timedelta(days=1)]}
    )
    follows = pd.DataFrame({"created_at": [T0, T0, T0 + pd.Timedelta(days=5)]})
    out = kpis.kpi_daily(posts, activity, follows)
    assert list(out.posts) == [2, 1]
    first = out.iloc[0]
    assert (first.reach, first.interactions, first.active_accounts, first.new_follows) == (
        400,
        42,
        2,
        2,
    )
    assert first.engagement_rate == pytest.approx(42 / 400)
    assert first.virality_score == pytest.approx(1000 * 2 / 400)
    assert np.isnan(out.iloc[1].engagement_rate)  # no reach that day


def test_campaign_sql_carries_the_configured_value():
    sql = kpis.campaign_sql("smap", 0.25)
    assert "0.25::double precision" in sql and "smap.campaigns" in sql


# --- segments --------------------------------------------------------------------------------


def _segment_tables(version: int = 3):
    user_segments = pd.DataFrame(
        {
            "user_id": [1, 2, 3, 4],
            "segment": [0, 0, 0, 1],
            "segment_label": ["casual engagers"] * 3 + ["highly active creators"],
            "assigned_at": pd.Timestamp("2026-04-01", tz="UTC"),
            "model_version": version,
        }
    )
    profiles = pd.DataFrame(
        {
            "segment": [0, 1],
            "label": ["casual engagers", "highly active creators"],
            "size": [3, 1],
            "share": [0.75, 0.25],
            "profile_json": ["{}", "{}"],
        }
    )
    latest = pd.DataFrame(
        {
            "user_id": [1, 2, 3, 4],
            "posts_28d": [1, 2, 30, 20],
            "active_days_28d": [5, 6, 7, 25],
            "engagement_rate_28d": [0.01, 0.02, 0.9, 0.05],
            "followers": [1, 3, 500, 40],
            "likes_given_28d": [10, 20, 30, 0],
            "comments_given_28d": [1, 2, 3, 0],
        }
    )
    return user_segments, profiles, latest


def test_segment_summary_states_medians_not_means():
    summary = segments.segment_summary(*_segment_tables()).set_index("segment")
    casual = summary.loc[0]
    assert casual["name"] == "casual engagers" and casual["size"] == 3
    assert casual.share == pytest.approx(0.75)
    assert casual.posts_28d_median == 2 and casual.engagement_rate_28d_median == pytest.approx(0.02)
    assert casual.followers_median == 3 and casual.interactions_given_28d_median == 22
    assert casual.model_version == 3
    assert casual.description.startswith("3 users (75%); a typical member posts 2 times")
    assert "2.0% engagement rate" in casual.description


def test_user_segment_lookup(tmp_path):
    from ingestion.schema import INSIGHT_TABLES, SEGMENT_TABLES

    warehouse = ParquetWarehouse(tmp_path / "warehouse")
    with pytest.raises(AnalyticsError, match="smap segment"):
        segments.user_segment(warehouse, 1)
    user_segments, profiles, latest = _segment_tables()
    warehouse.write(SEGMENT_TABLES["user_segments"], user_segments)
    found = segments.user_segment(warehouse, 4)
    assert (found.segment, found.name, found.model_version) == (1, "highly active creators", 3)
    assert found.description == ""  # no summary yet
    summary = segments.segment_summary(user_segments, profiles, latest)
    warehouse.write(INSIGHT_TABLES["segment_summary"], summary)
    assert segments.user_segment(warehouse, 4).description.startswith("1 users (25%)")
    stale = summary.assign(model_version=2)  # a summary of an older model says nothing
    warehouse.write(INSIGHT_TABLES["segment_summary"], stale)
    assert segments.user_segment(warehouse, 4).description == ""
    with pytest.raises(AnalyticsError, match="user_id: 99 has no segment"):
        segments.user_segment(warehouse, 99)
