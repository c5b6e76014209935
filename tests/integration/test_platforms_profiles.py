"""Platforms on both profiles: the simulator's platforms go through the ETL (DuckDB over
Parquet, and inside PostgreSQL) into `platform_posts`, and the dashboard's comparison reads
the same figures from either warehouse."""

from __future__ import annotations

import pandas as pd
import pytest

from analytics.platforms import compare_platforms, follower_growth, post_rates
from analytics.report import write_report
from ingestion.warehouse import open_warehouse
from pipelines import flows

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("profile", ["local", "services"])
def test_platforms_reach_the_dashboard_through_each_profiles_etl(profile, request, tmp_path):
    settings = request.getfixturevalue(f"{profile}_settings")
    flows.simulate(settings, preset="quick", seed=5)
    flows.ingest(settings)
    warehouse = open_warehouse(settings)

    posts = warehouse.read("platform_posts").sort_values("post_id", ignore_index=True)
    truth = warehouse.read("post_platforms").sort_values("post_id", ignore_index=True)
    assert posts.post_id.tolist() == truth.post_id.tolist()
    assert (posts.platform == truth.platform).all()
    raw = warehouse.read("content_posts").sort_values("post_id", ignore_index=True)
    for column in ("reach", "impressions", "likes", "comments", "shares", "saves"):
        assert (posts[column].to_numpy() == raw[column].to_numpy()).all(), column

    report = write_report(settings, out=tmp_path / "dashboard")
    section = next(s for s in report.sections if s.key == "platforms")
    assert len(section.figures) == 3 and not section.empty
    shown = section.shown.set_index("platform")
    assert set(shown.index) == set(settings.platforms.names)
    # the page's figures are the module's, from the raw counts of matured posts
    rates = post_rates(posts, settings.platforms)
    expected = compare_platforms(
        rates, follower_growth(None, None, rates, settings.platforms), settings.platforms
    ).set_index("platform")
    pd.testing.assert_series_equal(
        shown.native_rate.sort_index(), expected.native_rate.sort_index()
    )
    # X reports per impression, Instagram per reach: X's native rate is below its rate per reach
    assert shown.native_rate["x"] < shown.engagement_rate["x"]
    assert shown.native_rate["instagram"] == pytest.approx(shown.engagement_rate["instagram"])
    exported = pd.read_csv(tmp_path / "dashboard" / "exports" / "platform_comparison.csv")
    assert sorted(exported.platform) == sorted(settings.platforms.names)


@pytest.mark.parametrize("profile", ["local", "services"])
def test_an_imports_platforms_reach_platform_posts(profile, request, tmp_path):
    from ingestion.csv_import import import_posts

    settings = request.getfixturevalue(f"{profile}_settings")
    export = tmp_path / "posts.csv"
    export.write_text(
        "account,timestamp,type,category,reach,likes,comments,shares,network\n"
        "a,2026-03-01 10:00,photo,food,100,5,1,0,Twitter\n"
        "a,2026-03-02 10:00,photo,food,100,6,1,0,\n",
        encoding="utf-8",
    )
    mapping = tmp_path / "map.yaml"
    mapping.write_text("platform: youtube\ncolumns: {platform: network}\n", encoding="utf-8")
    warehouse = open_warehouse(settings)
    result = import_posts(export, mapping, warehouse, tmp_path / "rejects")
    assert result.rows_loaded == 2
    flows.ingest(settings)
    posts = warehouse.read("platform_posts").sort_values("likes")
    assert posts.platform.tolist() == ["x", "youtube"]
