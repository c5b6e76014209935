"""Where the analytics SQL (`ingestion.etl_sql`) runs: one runner per warehouse kind.

Each runner registers the raw tables under their names (an absent optional raw table as an
empty typed one), runs the queries in order, registering each result under its table's name
for the queries after it, and replaces the analytics tables' date partitions from `since` on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pandas as pd

from configs.settings import Settings
from ingestion.etl_sql import QUERIES, analytics_sql
from ingestion.lake import LakeFolders, table_uri
from ingestion.schema import ANALYTICS_TABLES, RAW_TABLES, TYPES, Table
from ingestion.spark import spark_session
from ingestion.warehouse import ParquetWarehouse, PostgresWarehouse, WarehouseError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

REQUIRED_RAW = ("content_posts", "users")  # the others may be absent from an export
NO_POSTS = "content_posts is empty: nothing to transform"
POSTGRES_SORT_MEMORY = "256MB"  # per sort of the ETL's session (the server default is 4MB)

Progress = Callable[[str], None]

POSTGRES_VIEWS = {
    "top_performing_content": """
        SELECT c.post_id, c.user_id, c.created_at, c.post_type, c.category, c.reach,
               c.interactions, c.engagement_rate, c.share_rate,
               rank() OVER (PARTITION BY c.category ORDER BY c.engagement_rate DESC)
                   AS category_rank
        FROM {schema}.content_performance_metrics c
        WHERE c.reach >= 100
    """,
    "trending_hashtags": """
        SELECT h.hashtag_id, t.tag, h.date, h.usage, h.usage_mean_7d, h.trend_score
        FROM {schema}.hashtag_daily h JOIN {schema}.hashtags t USING (hashtag_id)
        WHERE h.date = (SELECT max(date) FROM {schema}.hashtag_daily)
        ORDER BY h.trend_score DESC
    """,
}


def _missing(name: str, where: str) -> None:
    """An absent raw table: an error for the ones every platform has, else nothing."""
    if name in REQUIRED_RAW:
        raise WarehouseError(
            f"raw table {name} is missing from {where} (run `smap simulate` or `smap ingest csv`)"
        )


def _empty_table_ddl(table: Table, temporary: str = "TEMP") -> str:
    columns = ", ".join(f'"{c}" {TYPES[kind][1]}' for c, kind in table.columns.items())
    return f"CREATE {temporary} TABLE {table.name} ({columns})"


def _replace(warehouse, table: Table, frame: pd.DataFrame, since: pd.Timestamp | None) -> int:
    """Replace the table's partitions that `frame` holds from `since` on (an empty result
    still creates the table: an empty table says "no such data" more clearly than none)."""
    if since is not None:
        frame = frame[pd.to_datetime(frame[table.partition]) >= since.tz_localize(None)]
    if len(frame):
        return warehouse.replace_partitions(table, frame)
    return 0 if warehouse.exists(table.name) else warehouse.write(table, frame)


def run_on_duckdb(
    settings: Settings, warehouse: ParquetWarehouse, since: pd.Timestamp | None, tick: Progress
) -> dict[str, int]:
    """DuckDB over the warehouse's Parquet files, in this process."""
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        for name, table in RAW_TABLES.items():
            if warehouse.exists(name):
                path = str(warehouse.path(name)).replace("'", "''")
                con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{path}')")
            else:
                _missing(name, str(warehouse.root))
                con.execute(_empty_table_ddl(table))
        if con.execute("SELECT EXISTS (SELECT 1 FROM content_posts)").fetchone() != (True,):
            raise ValueError(NO_POSTS)
        frames = {}
        for name in QUERIES:
            con.execute(f"CREATE TEMP TABLE {name} AS {analytics_sql(name, 'duckdb')}")
            # through Arrow: DuckDB's own pandas conversion took 8x longer on 3M rows
            frames[name] = con.sql(f"SELECT * FROM {name}").to_arrow_table().to_pandas()
        tick("transform")
    finally:
        con.close()
    written = {}
    for name, frame in frames.items():
        written[name] = _replace(warehouse, ANALYTICS_TABLES[name], frame, since)
        tick(name)
    return written


def run_on_postgres(
    settings: Settings, warehouse: PostgresWarehouse, since: pd.Timestamp | None, tick: Progress
) -> dict[str, int]:
    """In the database: results go to temporary tables, then replace the tables' partitions
    in one transaction, so a reader sees the old tables or the new ones."""
    schema = warehouse.schema
    conn = warehouse.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SET TIME ZONE 'UTC'")
            cur.execute(f"SET search_path TO {schema}")  # temporary tables come first
            # the window passes sort the users x days grid: in memory, not in temporary files
            cur.execute(f"SET work_mem = '{POSTGRES_SORT_MEMORY}'")
            for name, table in RAW_TABLES.items():
                if not warehouse.exists(name):
                    _missing(name, f"PostgreSQL schema {schema}")
                    cur.execute(_empty_table_ddl(table))
            cur.execute("SELECT EXISTS (SELECT 1 FROM content_posts)")
            if not cur.fetchone()[0]:
                raise ValueError(NO_POSTS)
            for name in QUERIES:
                cur.execute(f"CREATE TEMP TABLE {name} AS {analytics_sql(name, 'postgres')}")
                cur.execute(f"ANALYZE pg_temp.{name}")  # the queries after it join it
        tick("transform")
        written = {}
        with warehouse.writing(), conn.cursor() as cur:
            for name in QUERIES:
                written[name] = _insert_partitions(cur, warehouse, ANALYTICS_TABLES[name], since)
            for view, sql in POSTGRES_VIEWS.items():
                cur.execute(
                    f"CREATE OR REPLACE VIEW {schema}.{view} AS " + sql.format(schema=schema)
                )
            conn.commit()
        for name in QUERIES:
            tick(name)
    finally:
        conn.close()
    return written


def _insert_partitions(cur, warehouse: PostgresWarehouse, table: Table, since) -> int:
    """Move the temporary table's partitions from `since` on into the warehouse's table."""
    target, partition = f"{warehouse.schema}.{table.name}", table.partition
    for stmt in warehouse.table_ddl(table):
        cur.execute(stmt)
    new = f"SELECT * FROM pg_temp.{table.name}"  # noqa: S608
    if since is not None:
        new += f" WHERE {partition} >= %(since)s"
    params = {"since": since.tz_localize(None).date() if since is not None else None}
    cur.execute(
        f"DELETE FROM {target} WHERE {partition} IN (SELECT {partition} FROM ({new}) AS n)",
        params,
    )
    columns = ", ".join(f'"{c}"' for c in table.columns)
    cur.execute(f"INSERT INTO {target} ({columns}) SELECT {columns} FROM ({new}) AS n", params)
    return cur.rowcount


def run_on_spark(
    settings: Settings, warehouse: LakeFolders, since: pd.Timestamp | None, tick: Progress
) -> dict[str, int]:
    """Spark over the lake at `settings.lake_uri`: raw tables read from it, analytics tables
    written into it (the lake warehouse's own reads and locks are not needed here)."""
    spark = spark_session(settings, "etl")
    for name, table in RAW_TABLES.items():
        read_lake(spark, settings, table, warehouse).createOrReplaceTempView(name)
    if spark.table("content_posts").isEmpty():
        raise ValueError(NO_POSTS)
    results = {}
    for name in QUERIES:
        frame = spark.sql(analytics_sql(name, "spark")).persist()
        frame.createOrReplaceTempView(name)
        results[name] = frame
    tick("transform")
    written = {}
    for name, frame in results.items():
        written[name] = write_lake(frame, settings, ANALYTICS_TABLES[name], since)
        tick(name)
    for frame in results.values():
        frame.unpersist()
    return written


LAKE_PARTITION = "day"  # the lake's day folders (ingestion/lake.py:partition_column)


def read_lake(spark: SparkSession, settings: Settings, table: Table, lake) -> DataFrame:
    """A lake table as a Spark frame with exactly its columns (an absent optional raw table
    as an empty one; the lake is asked first, as Spark logs a stack trace for a missing
    path)."""
    if not lake.exists(table.name):
        _missing(table.name, settings.lake_uri)
        return spark.createDataFrame([], _spark_schema(table))
    return spark.read.parquet(table_uri(settings, table.name)).select(*table.columns)


def _spark_schema(table: Table) -> str:
    types = {"ts": "TIMESTAMP", "date": "DATE", "float": "DOUBLE", "str": "STRING"}
    types |= {"int": "BIGINT", "nint": "BIGINT", "bool": "BOOLEAN"}
    return ", ".join(f"`{c}` {types[kind]}" for c, kind in table.columns.items())


def write_lake(
    frame: DataFrame, settings: Settings, table: Table, since: pd.Timestamp | None
) -> int:
    """Replace the table's `day` partitions that `frame` holds from `since` on (dates as
    Parquet dates, as `ingestion/lake.py:lake_schema` has them)."""
    from pyspark.sql import functions as F

    spark = frame.sparkSession
    spark.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
    spark.conf.set("spark.sql.sources.partitionOverwriteMode", "dynamic")
    assert table.partition is not None, f"{table.name} has no date partition"
    partition = F.col(table.partition)
    if since is not None:
        frame = frame.where(partition >= F.lit(since.tz_localize(None).date()))
    dates = [c for c, kind in table.columns.items() if kind == "date"]
    out = frame.select(
        *[F.col(c).cast("date") if c in dates else F.col(c) for c in table.columns],
        F.date_format(partition, "yyyy-MM-dd").alias(LAKE_PARTITION),
    )
    rows = out.count()
    # one task per day writes that day's file: a folder per day, not a file per task and day
    out.repartition(LAKE_PARTITION).write.mode("overwrite").partitionBy(LAKE_PARTITION).parquet(
        table_uri(settings, table.name)
    )
    return rows
