"""The cluster profile's lake and Feast on Spark against the local profile, on the same
simulated platform (`flows.prepare_data` on both): every raw and analytics table, Spark's own
read of the lake, the training sets of Feast's Spark offline store and the online store that
Feast's Spark compute engine materialized into Redis.

Spark runs in this process on `spark_master` (local[2] here; a standalone cluster's
`spark://` URL can be given instead), one application for the whole module.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from configs.settings import load_settings
from feature_repo.data_sources import table_of
from feature_repo.store import online_views, open_store
from ingestion.lake import PARTITION_KEY, table_uri
from ingestion.schema import ANALYTICS_TABLES, RAW_TABLES, TRUTH_TABLES
from ingestion.spark import spark_session
from ingestion.warehouse import LakeWarehouse, ParquetWarehouse, open_warehouse
from pipelines import flows
from training.dataset import build_training_set
from training.tasks import get_task

pytestmark = pytest.mark.integration
TABLES = {**RAW_TABLES, **TRUTH_TABLES, **ANALYTICS_TABLES}


@pytest.fixture(scope="module", params=["local[2]"])
def spark_master(request: pytest.FixtureRequest) -> str:
    """The Spark master the cluster profile runs on in these tests."""
    return request.param


@pytest.fixture(scope="module")
def platforms(module_services_settings, spark_master):
    """(local, cluster) settings, each with the quick preset prepared: the cluster profile on
    the module's PostgreSQL database and Feast project (its Redis keys removed after)."""
    services = module_services_settings
    cluster = load_settings(
        "cluster",
        env={
            "SMAP_DATA_DIR": str(services.root / "cluster"),
            "SMAP_DATABASE": services.postgres.database,
            "SMAP_FEAST__PROJECT": services.feast.project,
            "SMAP_SPARK__MASTER": spark_master,
        },
    )
    local = load_settings("local", env={"SMAP_DATA_DIR": str(services.root / "local")})
    for settings in (local, cluster):
        flows.prepare_data(settings, preset="quick")
    return local, cluster


def _by_key(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    key = list(TABLES[name].key) or list(frame.columns)
    return frame.sort_values(key, kind="stable").reset_index(drop=True)


def _microseconds(frame: pd.DataFrame) -> pd.DataFrame:
    """The lake keeps microseconds (Spark's precision): the simulator's comment times have
    nanoseconds, which the lake truncates."""
    stamps = frame.select_dtypes("datetimetz").columns
    return frame.assign(**{c: frame[c].dt.floor("us") for c in stamps})


def test_the_lake_holds_every_table_as_the_parquet_warehouse(platforms):
    local, cluster = platforms
    parquet, lake = open_warehouse(local), open_warehouse(cluster)
    assert isinstance(parquet, ParquetWarehouse) and isinstance(lake, LakeWarehouse)
    compared = []
    for name in TABLES:
        assert lake.exists(name) == parquet.exists(name), name
        if not parquet.exists(name):
            continue
        expected = _microseconds(_by_key(parquet.read(name), name))
        pd.testing.assert_frame_equal(_by_key(lake.read(name), name), expected, obj=name)
        compared.append(name)
    assert set(ANALYTICS_TABLES) <= set(compared) and "content_posts" in compared


def test_spark_reads_a_lake_table_with_the_same_rows(platforms):
    """Spark reads the folders as they are (day partitions discovered, `day` dropped)."""
    _local, cluster = platforms
    lake = open_warehouse(cluster)
    spark = spark_session(cluster, "features")
    for name in ("user_engagement_metrics", "content_posts", "hashtags"):
        frame = spark.read.parquet(table_uri(cluster, name)).toPandas()
        frame = frame.drop(columns=[PARTITION_KEY], errors="ignore")
        expected = _by_key(lake.read(name), name)
        table = TABLES[name]
        read = _by_key(table.conform(frame), name)  # Spark gives naive UTC times
        if any(kind == "ts" for kind in table.columns.values()):
            stamps = [c for c, kind in table.columns.items() if kind == "ts"]
            naive = frame[stamps[0]].dt.tz is None
            assert naive or str(frame[stamps[0]].dt.tz) == "UTC"
        pd.testing.assert_frame_equal(read, expected, obj=name)


@pytest.mark.parametrize("task_name", ["engagement", "churn"])
def test_sparks_training_set_equals_the_local_one(platforms, task_name):
    """Feast's Spark offline store gives the local DuckDB path's training set row for row:
    same point-in-time rule and TTL, same values and dtypes, same fingerprint."""
    local, cluster = platforms
    task = get_task(task_name)
    expected = build_training_set(local, task)
    got = build_training_set(cluster, task)
    assert got.features == expected.features
    # the views' own columns (inputs of on-demand views) come back in another order
    assert sorted(got.frame.columns) == sorted(expected.frame.columns)
    pd.testing.assert_frame_equal(got.frame[expected.frame.columns], expected.frame)
    assert got.missing == expected.missing
    assert got.fingerprint == expected.fingerprint


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _entity_rows(settings, view) -> list[dict]:
    """Every key of a view: its source table's distinct join keys, under the names the
    view's entities use (a hashtag slot reads `tag` as `tag_<i>`)."""
    source = view.batch_source
    table = table_of(source)
    frame = open_warehouse(settings).read(table)
    mapping = dict(source.field_mapping)
    keys = [c.name for c in view.entity_columns]
    columns = {next((s for s, t in mapping.items() if t == k), k): k for k in keys}
    rows = frame[list(columns)].rename(columns=columns).drop_duplicates()
    return rows.to_dict("records")


def test_sparks_materialization_equals_the_local_one(platforms):
    """After Feast's Spark compute engine loaded Redis, every feature of every online view reads
    (Feast's get_online_features) what the local profile's SQLite store answers."""
    local, cluster = platforms
    local_store, cluster_store = open_store(local), open_store(cluster)
    checked = 0
    for view in online_views(local_store):
        rows = _entity_rows(local, view)
        refs = [f"{view.name}:{f.name}" for f in view.features]
        expected = local_store.get_online_features(features=refs, entity_rows=rows).to_dict()
        got = cluster_store.get_online_features(features=refs, entity_rows=rows).to_dict()
        assert set(got) == set(expected), view.name
        for column, values in expected.items():
            differ = [
                i
                for i, (a, b) in enumerate(zip(got[column], values, strict=True))
                if not _same(a, b)
            ]
            assert not differ, (view.name, column, len(differ), rows[differ[0]])
        known = sum(v is not None for v in expected[view.features[0].name])
        assert known > 0, view.name
        checked += len(rows)
    assert checked > 1_500  # users, author categories, hashtags in five slots and by text
