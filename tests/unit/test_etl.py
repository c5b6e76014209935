import pandas as pd
import pytest

from configs.settings import load_settings
from ingestion.etl import LABEL_DAYS, run_etl
from ingestion.schema import ALL_TABLES, ANALYTICS_TABLES
from ingestion.simulator import simulate
from ingestion.warehouse import ParquetWarehouse, open_warehouse


@pytest.fixture(scope="module")
def raw():
    return simulate("quick", seed=3)


@pytest.fixture(scope="module")
def analytics(raw, tmp_path_factory):
    """The local profile's ETL (DuckDB over Parquet) on the quick platform."""
    root = tmp_path_factory.mktemp("etl") / "smap"
    settings = load_settings("local", env={"SMAP_DATA_DIR": str(root)})
    warehouse = open_warehouse(settings)
    for name, frame in raw.items():
        warehouse.write(ALL_TABLES[name], frame)
    run_etl(settings, warehouse)
    return {name: warehouse.read(name) for name in ANALYTICS_TABLES}


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


def test_empty_posts_is_a_clear_error(raw, local_settings):
    warehouse = open_warehouse(local_settings)
    for name, frame in dict(raw, content_posts=raw["content_posts"].iloc[:0]).items():
        warehouse.write(ALL_TABLES[name], frame)
    with pytest.raises(ValueError, match="content_posts is empty"):
        run_etl(local_settings, warehouse)


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


def test_rolling_windows_match_a_naive_count(raw, analytics):
    posts = raw["content_posts"]
    metrics = analytics["user_engagement_metrics"]
    row = metrics[metrics.posts_28d > 0].iloc[len(metrics) // 5]
    day_end = row.date.tz_localize("UTC") + pd.Timedelta(days=1)
    mine = posts[posts.user_id == row.user_id]
    for days, column in ((7, "posts_7d"), (28, "posts_28d")):
        window = mine[
            (mine.created_at >= day_end - pd.Timedelta(days=days)) & (mine.created_at < day_end)
        ]
        assert row[column] == len(window)
    assert row.posts_all == (mine.created_at < day_end).sum()


def test_activity_trend_matches_a_naive_count(raw, analytics):
    """Given the quick platform, when the ETL runs, then an account's recent active days and
    its usual rate (active days over days since signup, before the last 14) match a count of
    its `user_activity` days."""
    metrics = analytics["user_engagement_metrics"]
    active = analytics["user_activity"]
    first_day = raw["content_posts"].created_at.min().tz_convert(None).normalize()
    rows = metrics[(metrics.active_days_28d > 0) & metrics.usual_active_rate.notna()]
    for row in rows.iloc[[len(rows) // 4, len(rows) // 2]].itertuples():
        days = pd.to_datetime(active[active.user_id == row.user_id].date)
        for n, column in ((3, "active_days_3d"), (14, "active_days_14d")):
            assert (
                getattr(row, column)
                == days.between(row.date - pd.Timedelta(days=n - 1), row.date).sum()
            )
        before = row.date - pd.Timedelta(days=14)
        signup = raw["users"].set_index("user_id").created_at[row.user_id].tz_convert(None)
        present = (before - max(first_day, signup.normalize())).days + 1
        assert row.usual_active_rate == pytest.approx((days <= before).sum() / present)
