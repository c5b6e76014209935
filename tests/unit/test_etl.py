import numpy as np
import pandas as pd
import pytest

from ingestion.etl import LABEL_DAYS, build_analytics, run_etl
from ingestion.schema import ALL_TABLES, ANALYTICS_TABLES
from ingestion.simulator import simulate
from ingestion.warehouse import ParquetWarehouse


@pytest.fixture(scope="module")
def raw():
    return simulate("quick", seed=3)


@pytest.fixture(scope="module")
def analytics(raw):
    return build_analytics(raw)


def test_every_analytics_table_conforms_to_its_schema(analytics):
    for name, frame in analytics.items():
        ANALYTICS_TABLES[name].conform(frame)


def test_rolling_engagement_uses_only_matured_posts(raw, analytics):
    posts = raw["content_posts"].copy()
    metrics = analytics["user_engagement_metrics"]
    row = metrics.dropna(subset=["engagement_rate_28d"]).iloc[len(metrics) // 3]
    day = row.date.tz_localize("UTC")
    mine = posts[posts.user_id == row.user_id]
    window = mine[
        (mine.created_at >= day - pd.Timedelta(days=LABEL_DAYS + 27))
        & (mine.created_at < day - pd.Timedelta(days=LABEL_DAYS - 1))
    ]
    inter = window.likes + window.comments + window.shares + window.saves
    assert row.engagement_rate_28d == pytest.approx(inter.sum() / window.reach.sum())


def test_feature_rows_are_stamped_after_their_day_closes(analytics):
    metrics = analytics["user_engagement_metrics"]
    gap = metrics.event_timestamp.dt.tz_localize(None) - metrics.date
    assert (gap == pd.Timedelta(days=1)).all()


def test_hashtag_usage_counts_post_hashtags(raw, analytics):
    daily = analytics["hashtag_daily"]
    assert daily.usage.sum() == len(raw["post_hashtags"])


def test_post_features_use_previous_day_hashtag_stats(raw, analytics):
    feats = analytics["post_features"].set_index("post_id")
    first_day = feats.date.min()
    assert (feats[feats.date == first_day].hashtag_momentum_mean == 0).all()
    assert feats.hashtag_momentum_mean.abs().sum() > 0


def test_etl_rerun_does_not_duplicate_partitions(raw, tmp_path, local_settings):
    warehouse = ParquetWarehouse(tmp_path)
    for name, frame in raw.items():
        warehouse.write(ALL_TABLES[name], frame)
    first = run_etl(local_settings, warehouse)
    sizes = {name: len(warehouse.read(name)) for name in first}
    run_etl(local_settings, warehouse)
    run_etl(local_settings, warehouse, since=pd.Timestamp("2026-03-01"))
    assert {name: len(warehouse.read(name)) for name in first} == sizes


def test_empty_posts_is_a_clear_error(raw):
    empty = dict(raw, content_posts=raw["content_posts"].iloc[:0])
    with pytest.raises(ValueError, match="content_posts is empty"):
        build_analytics(empty)


def test_parquet_write_is_all_or_nothing(raw, tmp_path, monkeypatch):
    warehouse = ParquetWarehouse(tmp_path)
    table = ALL_TABLES["users"]
    warehouse.write(table, raw["users"])
    before = warehouse.read("users")

    def boom(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", boom)
    with pytest.raises(OSError):
        warehouse.write(table, raw["users"].head(3))
    monkeypatch.undo()
    pd.testing.assert_frame_equal(warehouse.read("users"), before)
    assert not list(tmp_path.glob("*.tmp-*"))


def test_missing_column_named(raw):
    with pytest.raises(ValueError, match="missing column.*reach"):
        ALL_TABLES["content_posts"].conform(raw["content_posts"].drop(columns="reach"))


def test_dense_windows_match_naive_rolling():
    from ingestion.etl import _window_sum

    m = np.arange(20, dtype=float).reshape(2, 10)
    got = _window_sum(m, 3, lag=2)
    assert got[0, 5] == m[0, 1:4].sum()
    assert got[1, 1] == 0
