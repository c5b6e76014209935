"""Point-in-time correctness and online/offline agreement, on both profiles."""

from datetime import UTC, datetime

import pandas as pd
import pytest

from feature_repo.store import apply, materialize, open_store
from ingestion.schema import ANALYTICS_TABLES
from ingestion.warehouse import open_warehouse

pytestmark = pytest.mark.integration

T0 = pd.Timestamp("2026-03-01", tz="UTC")


def _user_rows() -> pd.DataFrame:
    base = {c: 0 for c in ANALYTICS_TABLES["user_engagement_metrics"].columns}
    rows = []
    for user_id, day, followers in [(1, 0, 100), (1, 10, 250), (2, 5, 40)]:
        stamp = T0 + pd.Timedelta(days=day)
        rows.append(
            base
            | {
                "user_id": user_id,
                "date": stamp.tz_localize(None) - pd.Timedelta(days=1),
                "event_timestamp": stamp,
                "followers": followers,
                "engagement_rate_28d": followers / 10_000,
                "engagement_rate_7d": 0.01,
                "avg_reach_28d": 10.0,
            }
        )
    return pd.DataFrame(rows)


def _post_rows() -> pd.DataFrame:
    base = {c: 0 for c in ANALYTICS_TABLES["post_features"].columns}
    return pd.DataFrame(
        [
            base
            | {
                "post_id": 7,
                "user_id": 1,
                "event_timestamp": T0 + pd.Timedelta(days=2),
                "date": T0.tz_localize(None) + pd.Timedelta(days=2),
                "post_type": "video",
                "category": "food",
                "caption": "hello",
                "hashtags": "#a",
                "hashtag_momentum_mean": 0.5,
                "hashtag_momentum_max": 0.5,
                "hashtag_popularity_mean": 1.0,
            }
        ]
    )


def _tag_rows() -> pd.DataFrame:
    base = {c: 0 for c in ANALYTICS_TABLES["hashtag_daily"].columns}
    return pd.DataFrame(
        [
            base
            | {
                "hashtag_id": 3,
                "date": T0.tz_localize(None),
                "event_timestamp": T0 + pd.Timedelta(days=1),
                "usage": 12,
                "usage_lag_1": 1.0,
                "usage_lag_7": 1.0,
                "usage_mean_7d": 2.0,
                "usage_mean_28d": 2.0,
                "trend_score": 0.1,
            }
        ]
    )


@pytest.fixture
def store(any_settings):
    warehouse = open_warehouse(any_settings)
    for name, frame in [
        ("user_engagement_metrics", _user_rows()),
        ("post_features", _post_rows()),
        ("hashtag_daily", _tag_rows()),
    ]:
        warehouse.write(ANALYTICS_TABLES[name], frame)
    apply(any_settings)
    return any_settings, open_store(any_settings)


def test_historical_features_never_look_ahead(store):
    _, fs = store
    entities = pd.DataFrame(
        {
            "user_id": [1, 1, 1],
            "event_timestamp": [
                T0 + pd.Timedelta(days=1),
                T0 + pd.Timedelta(days=9, hours=23),
                T0 + pd.Timedelta(days=10, hours=1),
            ],
        }
    )
    got = fs.get_historical_features(
        entity_df=entities, features=fs.get_feature_service("churn_v1")
    ).to_df()
    got = got.sort_values("event_timestamp")
    assert got.followers.tolist() == [100, 100, 250]


def test_request_features_are_computed_in_training_too(store):
    _, fs = store
    entities = pd.DataFrame(
        {
            "post_id": [7],
            "user_id": [1],
            "event_timestamp": [T0 + pd.Timedelta(days=3)],
            "posted_at": [int((T0 + pd.Timedelta(days=2, hours=19)).timestamp())],
            "caption": ["twelve chars"],
            "hashtags": ["#a #b #c"],
        }
    )
    got = fs.get_historical_features(
        entity_df=entities, features=fs.get_feature_service("engagement_v1")
    ).to_df()
    row = got.iloc[0]
    assert (row.posting_hour, row.caption_length, row.hashtag_count) == (19, 12, 3)
    assert row.post_type == "video" and row.followers == 100


def test_online_values_equal_latest_offline_after_materialize(store):
    settings, fs = store
    loaded = materialize(settings, end=datetime(2026, 4, 1, tzinfo=UTC))
    assert "post_context" not in loaded  # offline only: nothing is served by post id
    assert loaded["user_engagement"] == 2
    online = fs.get_online_features(
        features=fs.get_feature_service("churn_v1"), entity_rows=[{"user_id": 1}, {"user_id": 2}]
    ).to_dict()
    assert online["followers"] == [250, 40]
    assert online["engagement_rate_28d"] == pytest.approx([0.025, 0.004])


def test_second_materialize_is_incremental(store):
    settings, fs = store
    materialize(settings, end=datetime(2026, 3, 5, tzinfo=UTC))
    first = fs.get_online_features(
        features=["user_engagement:followers"], entity_rows=[{"user_id": 1}]
    ).to_dict()
    materialize(settings, end=datetime(2026, 4, 1, tzinfo=UTC))
    fs = open_store(settings)
    second = fs.get_online_features(
        features=["user_engagement:followers"], entity_rows=[{"user_id": 1}]
    ).to_dict()
    assert (first["followers"], second["followers"]) == ([100], [250])
