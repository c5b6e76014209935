"""The analytics SQL gives the same tables on every engine: PostgreSQL (services) and Spark
over a lake (cluster) equal DuckDB's (the local profile's), on the quick preset's platform.
(Before the pandas ETL was removed, all three equalled its tables; docs/scale-out.md.)

Keys equal exactly, floats to 1e-9 relative, the same dtypes and the same NaN pattern. Spark
runs on `spark_master` (local[2]; SPARK_TEST_MASTER=spark://host:port for a standalone
cluster), one session for the module.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pytest

from configs.settings import load_settings
from ingestion.etl import run_etl
from ingestion.etl_engines import run_on_spark
from ingestion.lake import LakeFolders
from ingestion.schema import ALL_TABLES, ANALYTICS_TABLES, RAW_TABLES, Table
from ingestion.simulator import simulate
from ingestion.warehouse import open_warehouse

pytestmark = pytest.mark.integration

FLOAT_RTOL = 1e-9


@pytest.fixture(scope="module")
def raw() -> dict[str, pd.DataFrame]:
    """The quick platform with timestamps to the microsecond, as the lake stores them."""
    tables = simulate("quick", seed=3)
    for name, frame in tables.items():
        for column, kind in ALL_TABLES[name].columns.items():
            if kind == "ts":
                frame[column] = frame[column].dt.floor("us")
    return tables


@pytest.fixture(scope="module")
def expected(raw, tmp_path_factory) -> dict[str, pd.DataFrame]:
    """The local profile's tables (DuckDB over Parquet)."""
    root = tmp_path_factory.mktemp("local") / "smap"
    settings = load_settings("local", env={"SMAP_DATA_DIR": str(root)})
    load_raw(settings, raw)
    warehouse = open_warehouse(settings)
    written = run_etl(settings, warehouse)
    assert set(written) == set(ANALYTICS_TABLES)
    return {name: warehouse.read(name) for name in ANALYTICS_TABLES}


def assert_same_table(table: Table, got: pd.DataFrame, want: pd.DataFrame) -> None:
    """Same rows by key, same dtypes, same NaN pattern; floats to FLOAT_RTOL relative."""
    order = list(table.key)
    got = table.conform(got).sort_values(order).reset_index(drop=True)
    want = table.conform(want).sort_values(order).reset_index(drop=True)
    assert len(got) == len(want), f"{table.name}: {len(got)} rows, expected {len(want)}"
    pd.testing.assert_frame_equal(got[order], want[order], obj=f"{table.name} keys")
    for column in table.columns:
        mine, theirs = got[column], want[column]
        assert mine.dtype == theirs.dtype, f"{table.name}.{column}: {mine.dtype}/{theirs.dtype}"
        if mine.dtype.kind == "f":
            assert (mine.isna() == theirs.isna()).all(), f"{table.name}.{column}: NaN pattern"
            close = np.isclose(mine, theirs, rtol=FLOAT_RTOL, atol=0.0, equal_nan=True)
            assert close.all(), f"{table.name}.{column}: {int((~close).sum())} values differ"
        else:
            pd.testing.assert_series_equal(mine, theirs, obj=f"{table.name}.{column}")


def load_raw(settings, raw) -> None:
    warehouse = open_warehouse(settings)
    for name, frame in raw.items():
        warehouse.write(ALL_TABLES[name], frame)


def test_postgres_tables_equal_the_local_tables(services_settings, raw, expected):
    load_raw(services_settings, raw)
    warehouse = open_warehouse(services_settings)

    written = run_etl(services_settings, warehouse)
    again = run_etl(services_settings, warehouse, since=pd.Timestamp("2026-03-01"))

    assert written == {name: len(expected[name]) for name in ANALYTICS_TABLES}
    assert 0 < again["user_engagement_metrics"] < written["user_engagement_metrics"]
    for name, table in ANALYTICS_TABLES.items():
        assert_same_table(table, warehouse.read(name), expected[name])


# --- Spark over a lake ---------------------------------------------------------------


class UnlockedLake:
    """The lake's locks for one test process (the cluster profile's are PostgreSQL's)."""

    def writing(self):
        return contextlib.nullcontext()

    def exclusive(self, name: str):
        return contextlib.nullcontext(True)


def lake_folders(settings) -> LakeFolders:
    """The lake warehouse's own reads and writes over the settings' lake."""
    return LakeFolders(settings.lake_uri, UnlockedLake())


@pytest.fixture(scope="module")
def spark_master() -> str:
    """Where the module's Spark session runs: local[2] unless SPARK_TEST_MASTER names a
    standalone master."""
    return os.environ.get("SPARK_TEST_MASTER", "local[2]")


@pytest.fixture(scope="module")
def lake_settings(spark_master, tmp_path_factory):
    """The cluster profile on `spark_master` with a lake in a temporary folder; the module's
    one Spark session is stopped after it."""
    root = tmp_path_factory.mktemp("cluster")
    settings = load_settings(
        "cluster",
        env={
            "SMAP_DATA_DIR": str(root / "smap"),
            "SMAP_SPARK__MASTER": spark_master,
            "SMAP_SPARK__SHUFFLE_PARTITIONS": "4",
        },
    )
    yield settings
    from pyspark.sql import SparkSession

    if (session := SparkSession.getActiveSession()) is not None:
        session.stop()


def test_spark_tables_equal_the_local_tables(lake_settings, raw, expected):
    lake, folders = Path(urlparse(lake_settings.lake_uri).path), lake_folders(lake_settings)
    folders.write_many([(RAW_TABLES[n], frame) for n, frame in raw.items() if n in RAW_TABLES])
    heard: list[str] = []

    written = run_on_spark(lake_settings, folders, None, heard.append)
    again = run_on_spark(lake_settings, folders, pd.Timestamp("2026-03-01"), heard.append)

    assert heard[0] == "transform" and set(heard[1 : len(ANALYTICS_TABLES) + 1]) == set(
        ANALYTICS_TABLES
    )
    assert written == {name: len(expected[name]) for name in ANALYTICS_TABLES}
    assert 0 < again["hashtag_daily"] < written["hashtag_daily"]
    for name, table in ANALYTICS_TABLES.items():
        days = {p.name for p in (lake / name).iterdir() if p.name.startswith("day=")}
        assert len(days) == expected[name].date.nunique(), f"{name}: one folder per day"
        assert_same_table(table, folders.read(name), expected[name])
