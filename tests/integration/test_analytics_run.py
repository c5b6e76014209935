"""The analytics layer on simulated data whose answers the simulator knows, on both profiles.

The segment tables are written here from a fixed rule (thirds by active days) rather than by
`smap segment`, whose own integration test covers the model: the summary only reads the
tables' schema, and fitting the model would triple the run time.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analytics.alerts import notify, pending
from analytics.kpis import campaign_kpis, kpi_daily
from analytics.trends import trend_scores
from ingestion.schema import RAW_TABLES, SEGMENT_TABLES
from ingestion.warehouse import open_warehouse
from pipelines import flows
from pipelines.analytics import run as run_analytics
from pipelines.cli import main

pytestmark = pytest.mark.integration
DOC = Path(__file__).resolve().parents[2] / "docs" / "analytics.md"


def _plant_spike(warehouse) -> tuple[int, pd.Timestamp]:
    """Ten times the likes on one steady account's newest posting day (within the alert days)."""
    posts = warehouse.read("content_posts")
    day = posts.created_at.dt.tz_localize(None).dt.normalize()
    newest = day.max()
    recent = posts[day > newest - pd.Timedelta(days=35)]
    days_posted = recent.groupby("user_id").created_at.apply(lambda s: s.dt.normalize().nunique())
    last_day = day.groupby(posts.user_id).max()
    steady = days_posted[
        (days_posted >= 12) & (last_day.reindex(days_posted.index) >= newest - pd.Timedelta(days=2))
    ]
    user = int(steady.index[0])
    hit = (posts.user_id == user) & (day == last_day[user])
    posts.loc[hit, "likes"] = posts.loc[hit, "likes"] * 10 + 50
    warehouse.write(RAW_TABLES["content_posts"], posts)
    return user, last_day[user]


def _write_segments(warehouse) -> None:
    """Recently active users split into thirds by active days (a fixed, known rule)."""
    metrics = warehouse.read("user_engagement_metrics")
    latest = metrics[(metrics.date == metrics.date.max()) & (metrics.active_days_28d > 0)]
    third = pd.qcut(latest.active_days_28d.rank(method="first"), 3, labels=False).astype(int)
    labels = {0: "dormant", 1: "casual", 2: "highly active"}
    users = pd.DataFrame(
        {
            "user_id": latest.user_id.to_numpy(),
            "segment": 2 - third.to_numpy(),  # 0 = most active
            "segment_label": [labels[t] for t in third],
            "assigned_at": pd.Timestamp("2026-07-01", tz="UTC"),
            "model_version": 1,
        }
    )
    sizes = users.groupby("segment").size()
    profiles = pd.DataFrame(
        {
            "segment": sizes.index,
            "label": [labels[2 - s] for s in sizes.index],
            "size": sizes.to_numpy(),
            "share": sizes.to_numpy() / len(users),
            "profile_json": "{}",
        }
    )
    warehouse.write_many(
        [(SEGMENT_TABLES["user_segments"], users), (SEGMENT_TABLES["segment_profiles"], profiles)]
    )


def _prepare(settings):
    flows.simulate(settings)
    warehouse = open_warehouse(settings)
    planted = _plant_spike(warehouse)
    flows.ingest(settings)
    _write_segments(warehouse)
    return warehouse, planted


def _strongest_bursts(warehouse, k: int) -> pd.DataFrame:
    """The simulator's planted bursts: the top trend scores of the noise-free expected usage."""
    truth = warehouse.read("truth_hashtag_daily")
    usage = truth.pivot(index="hashtag_id", columns="date", values="expected_usage")
    _, _, score = trend_scores(usage.to_numpy())
    scored = pd.DataFrame(score, index=usage.index, columns=usage.columns).stack()
    best = scored.dropna().rename("score").reset_index()
    best = best.sort_values("score", ascending=False).drop_duplicates("hashtag_id")
    return best.head(k)


class _Hook(BaseHTTPRequestHandler):
    bodies: list[dict] = []

    def do_POST(self):  # noqa: N802 - the http.server API
        self.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@contextmanager
def _webhook() -> Iterator[str]:
    """A local HTTP server thread that keeps what it is posted in `_Hook.bodies`."""
    _Hook.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook"
    finally:
        server.shutdown()
        server.server_close()


def test_local_run_finds_what_the_simulator_planted(local_settings, monkeypatch, capsys):
    warehouse, (user, spike_day) = _prepare(local_settings)
    with _webhook() as url:
        monkeypatch.setenv("SMAP_ANALYTICS__ALERT_WEBHOOK_URL", url)
        assert main(["analytics", "run"]) == 0
        assert main(["alerts", "--post"]) == 0
        shown = capsys.readouterr().out
        assert main(["alerts"]) == 0  # posted: nothing new any more
        assert "no new alerts" in capsys.readouterr().out
        assert main(["analytics", "influencers", "--category", "food", "--top", "3"]) == 0
        influencers_shown = capsys.readouterr().out

    # the planted spike is flagged, printed and posted
    alerts = warehouse.read("alerts")
    mine = alerts[(alerts.user_id == user) & (alerts.date == spike_day)]
    assert "spike" in set(mine.direction) and (mine.robust_z > 3.5).all()
    assert f"{spike_day:%Y-%m-%d}" in shown and "posted" in shown
    (body,) = _Hook.bodies
    assert body["count"] == len(alerts) and alerts.notified_at.notna().all()
    assert any(a["user_id"] == user for a in body["alerts"])

    # brands and creators, whose appeal the simulator raises 2.5x, lead the ranking
    network = warehouse.read("influencer_network").sort_values("rank")
    top = network.head(10)
    assert (top.account_type != "personal").mean() >= 0.6  # 25% of all accounts
    assert top.followers.median() > 5 * network.followers.median()
    assert "top 3 influencers in food" in influencers_shown

    # the simulator's strongest hashtag bursts surface as trending on their day
    trends = warehouse.read("hashtag_trends")
    for burst in _strongest_bursts(warehouse, 5).itertuples():
        day = trends[(trends.date == burst.date) & (trends.hashtag_id == burst.hashtag_id)]
        assert day["rank"].item() <= 3, f"tag {burst.hashtag_id} on {burst.date:%Y-%m-%d}"

    velocity = warehouse.read("post_velocity")
    assert len(velocity) and (velocity.age_hours <= 72).all() and velocity.velocity.gt(0).any()
    summary = warehouse.read("segment_summary").set_index("segment")
    assert list(summary.name) == ["highly active", "casual", "dormant"]
    assert summary.active_days_28d_median.is_monotonic_decreasing
    kpis = warehouse.read("campaign_kpis")
    assert len(kpis) == len(warehouse.read("campaigns")) and kpis.engagement_rate.notna().any()
    assert warehouse.read("kpi_daily").posts.sum() == len(warehouse.read("content_posts"))


def _sql_blocks() -> list[str]:
    return re.findall(r"```sql\n(.*?)```", DOC.read_text(), flags=re.S)


def test_services_views_match_pandas_and_sample_queries_return_rows(services_settings):
    import psycopg2

    warehouse, (user, spike_day) = _prepare(services_settings)
    result = run_analytics(services_settings)
    assert result["alerts (new)"] > 0 and result["segment_summary"] == 3

    alerts = warehouse.read("alerts")
    assert ((alerts.user_id == user) & (alerts.date == spike_day)).any()
    assert len(pending(warehouse)) == len(alerts)  # NULL notification times read back as NaT
    with _webhook() as url:
        config = services_settings.analytics.model_copy(update={"alert_webhook_url": url})
        assert notify(warehouse, config) == len(alerts)
    assert len(_Hook.bodies) == 1
    assert pending(warehouse).empty and warehouse.read("alerts").notified_at.notna().all()

    # the views compute what the local profile's pandas code computes
    read = warehouse.read
    posts = read("content_posts")
    follows, likes, comments = read("follows"), read("likes"), read("comments")
    value = services_settings.analytics.value_per_engagement
    expected = campaign_kpis(read("campaigns"), posts, follows, likes, comments, value)
    viewed = read("campaign_kpis").sort_values("campaign_id", ignore_index=True)
    pd.testing.assert_frame_equal(viewed, expected, check_dtype=False, rtol=1e-9)
    assert viewed.retained.sum() > 0 and viewed.follower_growth.sum() > 0
    daily = kpi_daily(posts, read("user_activity"), follows)
    pd.testing.assert_frame_equal(
        read("kpi_daily").sort_values("date", ignore_index=True), daily, check_dtype=False
    )

    blocks = _sql_blocks()
    assert len(blocks) >= 3
    with psycopg2.connect(services_settings.postgres.dsn()) as conn, conn.cursor() as cur:
        for sql in blocks:
            cur.execute(sql)
            rows = cur.fetchall()
            assert rows, sql
            assert all(np.all([v is not None for v in row[:2]]) for row in rows)
    conn.close()
