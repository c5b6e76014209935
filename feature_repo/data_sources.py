"""Feast data sources over the ETL's analytics tables; the offline store kind picks the class."""

from __future__ import annotations

from collections.abc import Callable

from feast.data_source import DataSource
from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import (
    PostgreSQLSource,
)
from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource
from feast.infra.offline_stores.file_source import FileSource

from configs.settings import Settings
from feature_repo.entities import MAX_DRAFT_TAGS
from ingestion.lake import table_uri

# feature table -> its event timestamp column
FEATURE_TABLES = {
    "user_engagement_metrics": "event_timestamp",
    "post_features": "event_timestamp",
    "hashtag_daily": "event_timestamp",
    "hashtag_history": "event_timestamp",
    "author_category_posts": "event_timestamp",
}
TABLE_TAG = "smap.table"  # source tag naming the warehouse table a source reads

# hashtag_daily columns a draft's hashtag slot reads, by the name they take in slot i
SLOT_COLUMNS = {
    "tag": "tag_{i}",
    "trend_score": "tag{i}_momentum",
    "usage_mean_28d": "tag{i}_popularity",
}


def _file(settings: Settings, table: str, ts: str, name: str, mapping: dict) -> DataSource:
    return FileSource(
        name=name,
        path=str(settings.warehouse_dir / f"{table}.parquet"),
        timestamp_field=ts,
        field_mapping=mapping,
        tags={TABLE_TAG: table},
    )


def _postgres(settings: Settings, table: str, ts: str, name: str, mapping: dict) -> DataSource:
    return PostgreSQLSource(
        name=name,
        query=f"SELECT * FROM {settings.postgres.db_schema}.{table}",
        timestamp_field=ts,
        field_mapping=mapping,
        tags={TABLE_TAG: table},
    )


def _spark(settings: Settings, table: str, ts: str, name: str, mapping: dict) -> DataSource:
    """The table's folder in the lake. No `date_partition_column`: the lake's `day` is the
    row's `date`, a day before its event timestamp, and Feast prunes days by the timestamp's
    date, which would drop the rows of the first day of a TTL window; Spark still skips the
    row groups outside it by their timestamp statistics.

    Renamed columns (a draft's hashtag slots) are a query's aliases, not a `field_mapping`:
    Feast 0.67's Spark compute engine dedups materialized rows by the unmapped join key
    after the mapping renamed it (`tag` cannot be resolved)."""
    path = table_uri(settings, table)
    if not mapping:
        return SparkSource(
            name=name,
            path=path,
            file_format="parquet",
            timestamp_field=ts,
            tags={TABLE_TAG: table},
        )
    aliases = ", ".join(f"`{column}` AS `{alias}`" for column, alias in mapping.items())
    return SparkSource(
        name=name,
        query=f"SELECT *, {aliases} FROM parquet.`{path}`",  # noqa: S608 - names from code
        timestamp_field=ts,
        tags={TABLE_TAG: table},
    )


SOURCE_KINDS: dict[str, Callable[[Settings, str, str, str, dict], DataSource]] = {
    "duckdb": _file,  # the DuckDB stores read the same Parquet FileSources
    "duckdb_window": _file,
    "file": _file,
    "postgres": _postgres,
    "spark": _spark,
}


def build_sources(settings: Settings) -> dict[str, DataSource]:
    make = SOURCE_KINDS[settings.feast.offline_store]
    return {
        table: make(settings, table, ts, f"{table}_source", {})
        for table, ts in FEATURE_TABLES.items()
    }


def build_tag_slot_sources(settings: Settings) -> list[DataSource]:
    """hashtag_daily once per draft hashtag slot, its columns renamed for that slot, so one
    feature service can look up every hashtag of a draft (Feast joins a view on one key)."""
    make = SOURCE_KINDS[settings.feast.offline_store]
    return [
        make(
            settings,
            "hashtag_daily",
            FEATURE_TABLES["hashtag_daily"],
            f"hashtag_daily_source_tag_{i}",
            {column: alias.format(i=i) for column, alias in SLOT_COLUMNS.items()},
        )
        for i in range(1, MAX_DRAFT_TAGS + 1)
    ]


def table_of(source: DataSource) -> str:
    """The warehouse table behind a source."""
    return source.tags.get(TABLE_TAG) or source.name.removesuffix("_source")
