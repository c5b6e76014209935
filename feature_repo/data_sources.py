"""Feast data sources over the ETL's analytics tables; the offline store kind picks the class."""

from __future__ import annotations

from collections.abc import Callable

from feast.data_source import DataSource
from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import (
    PostgreSQLSource,
)
from feast.infra.offline_stores.file_source import FileSource

from configs.settings import Settings

# feature table -> its event timestamp column
FEATURE_TABLES = {
    "user_engagement_metrics": "event_timestamp",
    "post_features": "event_timestamp",
    "hashtag_daily": "event_timestamp",
}


def _file(settings: Settings, table: str, ts: str) -> DataSource:
    return FileSource(
        name=f"{table}_source",
        path=str(settings.warehouse_dir / f"{table}.parquet"),
        timestamp_field=ts,
    )


def _postgres(settings: Settings, table: str, ts: str) -> DataSource:
    return PostgreSQLSource(
        name=f"{table}_source",
        query=f"SELECT * FROM {settings.postgres.db_schema}.{table}",
        timestamp_field=ts,
    )


SOURCE_KINDS: dict[str, Callable[[Settings, str, str], DataSource]] = {
    "duckdb": _file,  # the DuckDB store reads the same Parquet FileSources
    "file": _file,
    "postgres": _postgres,
}


def build_sources(settings: Settings) -> dict[str, DataSource]:
    make = SOURCE_KINDS[settings.feast.offline_store]
    return {table: make(settings, table, ts) for table, ts in FEATURE_TABLES.items()}
