"""The ETL on imported exports: followers, the engagement denominator, very short exports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ingestion.csv_import import import_posts
from ingestion.etl import run_etl
from ingestion.warehouse import ParquetWarehouse

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture
def warehouse(tmp_path: Path) -> ParquetWarehouse:
    return ParquetWarehouse(tmp_path / "warehouse")


def load(settings, warehouse, tmp_path: Path, csv_text: str, mapping_text: str | None = None):
    export = tmp_path / "export.csv"
    export.write_text(csv_text.strip() + "\n", encoding="utf-8")
    mapping = None
    if mapping_text is not None:
        mapping = tmp_path / "mapping.yaml"
        mapping.write_text(mapping_text, encoding="utf-8")
    import_posts(export, mapping, warehouse, tmp_path / "rejects")
    run_etl(settings, warehouse)


def test_followers_column_flows_into_followers_and_author_followers(
    local_settings, warehouse, tmp_path
):
    import_posts(
        FIXTURES / "page_export.csv", FIXTURES / "page_mapping.yaml", warehouse, tmp_path / "r"
    )
    run_etl(local_settings, warehouse)

    metrics = warehouse.read("user_engagement_metrics").sort_values("date")
    assert metrics.followers.iloc[0] == 5000 and metrics.followers.iloc[-1] == 5000 + 11 * 37
    features = warehouse.read("post_features").sort_values("event_timestamp")
    # the first post has no earlier observation (known at publishing time only); later ones do
    assert features.author_followers.iloc[0] == 0
    assert (features.author_followers.iloc[1:] >= 5000).all()


def test_engagement_per_follower_divides_by_the_reported_audience(
    local_settings, warehouse, tmp_path
):
    import_posts(
        FIXTURES / "page_export.csv", FIXTURES / "page_mapping.yaml", warehouse, tmp_path / "r"
    )
    run_etl(local_settings, warehouse)

    perf = warehouse.read("content_performance_metrics")
    counts = warehouse.read("follower_counts").set_index("post_id").followers
    expected = perf.interactions / perf.post_id.map(counts)
    assert np.allclose(perf.engagement_rate, expected)


def test_no_denominator_models_log_interactions_per_post(local_settings, warehouse, tmp_path):
    load(
        local_settings,
        warehouse,
        tmp_path,
        """
timestamp,account,type,likes,comments,shares
2026-03-01 10:00,a,photo,9,0,0
2026-03-02 10:00,a,photo,99,0,0
2026-03-20 10:00,a,photo,0,0,0
""",
        "engagement_denominator: none\ndefault_category: shop\n",
    )

    perf = warehouse.read("content_performance_metrics").sort_values("created_at")
    assert np.allclose(perf.engagement_rate, np.log1p([9, 99, 0]))
    metrics = warehouse.read("user_engagement_metrics").set_index("date")
    # the author's rate on 20 March: the mean log interactions of the two matured posts
    assert np.isclose(metrics.engagement_rate_28d.iloc[-1], np.log1p([9, 99]).mean())


def test_an_export_shorter_than_a_week_without_hashtags_goes_through(
    local_settings, warehouse, tmp_path
):
    load(
        local_settings,
        warehouse,
        tmp_path,
        """
timestamp,type,category,reach,likes,comments,shares,hashtags
2026-03-01 10:00,photo,food,100,5,1,1,#a
2026-03-03 10:00,photo,food,100,5,1,1,
""",
    )

    daily = warehouse.read("hashtag_daily")
    assert len(daily) == 3 and daily.usage_lag_7.isna().all()
    assert daily.sort_values("date").usage_lag_1.tolist()[1:] == [1.0, 0.0]
