"""The lake's layout rules (ingestion/lake.py) and the Feast config of the Spark offline store
(feature_repo/store.py), read without starting Spark or touching a server."""

from __future__ import annotations

import pyarrow as pa

from configs.settings import load_settings
from feature_repo.store import feature_store_config
from ingestion.lake import lake_schema, partition_column, table_uri
from ingestion.schema import ALL_TABLES, ANALYTICS_TABLES, RAW_TABLES


def test_analytics_tables_are_partitioned_by_their_date_and_raw_events_by_their_time():
    assert {name: partition_column(t) for name, t in ANALYTICS_TABLES.items()} == {
        name: "date" for name in ANALYTICS_TABLES
    }
    raw = {name: partition_column(t) for name, t in RAW_TABLES.items()}
    assert {name for name, column in raw.items() if column} == {
        "content_posts",
        "comments",
        "likes",
        "follows",
    }
    assert all(RAW_TABLES[n].columns[c] == "ts" for n, c in raw.items() if c)
    assert partition_column(ALL_TABLES["champion_history"]) is None


def test_the_lake_stores_microsecond_utc_times_and_dates():
    schema = lake_schema(ANALYTICS_TABLES["user_engagement_metrics"])
    assert schema.field("event_timestamp").type == pa.timestamp("us", tz="UTC")
    assert schema.field("date").type == pa.date32()
    assert schema.field("followers").type == pa.int64()
    assert "day" not in schema.names


def test_a_table_lives_under_the_lake_uri(tmp_path):
    settings = load_settings(
        "cluster",
        env={"SMAP_DATA_DIR": str(tmp_path), "SMAP_WAREHOUSE__LAKE_URI": "s3a://bucket/lake/"},
    )
    assert table_uri(settings, "post_features") == "s3a://bucket/lake/post_features"
    default = load_settings("cluster", env={"SMAP_DATA_DIR": str(tmp_path)})
    assert table_uri(default, "users") == (tmp_path / "lake").resolve().as_uri() + "/users"


def test_only_the_spark_store_materializes_with_sparks_engine(tmp_path):
    """The cluster profile's feature_store.yaml: Feast's Spark store and compute engine, both
    on the profile's master; the local profile keeps Feast's in-process engine."""
    cluster = load_settings(
        "cluster", env={"SMAP_DATA_DIR": str(tmp_path), "SMAP_SPARK__MASTER": "local[2]"}
    )
    config = feature_store_config(cluster)
    assert config["offline_store"]["type"] == "spark"
    assert config["offline_store"]["spark_conf"]["spark.master"] == "local[2]"
    engine = config["batch_engine"]
    assert engine["type"] == "spark.engine"
    assert engine["spark_conf"]["spark.app.name"] == "smap-features"
    local = load_settings("local", env={"SMAP_DATA_DIR": str(tmp_path)})
    assert "batch_engine" not in feature_store_config(local)
