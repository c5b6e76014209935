"""The lake warehouse (ingestion/lake.py) on a real folder and PostgreSQL's locks: the day
layout, `replace_partitions` touching only its days, and writes that fail (in staging, in
the middle of the swap, or killed) leaving the previous tables readable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from configs.settings import load_settings
from ingestion.lake import PARTITION_KEY, partition_column, table_uri
from ingestion.schema import ALL_TABLES, ANALYTICS_TABLES, Table
from ingestion.warehouse import LakeWarehouse, WarehouseError, open_warehouse

pytestmark = pytest.mark.integration
ACTIVITY = ANALYTICS_TABLES["user_activity"]  # partitioned by its `date`
POSTS = ALL_TABLES["content_posts"]  # a raw event table: partitioned by `created_at`
HASHTAGS = ALL_TABLES["hashtags"]  # not partitioned


@pytest.fixture
def lake_settings(tmp_path: Path, pg_database: str):
    return load_settings(
        "cluster", env={"SMAP_DATA_DIR": str(tmp_path / "smap"), "SMAP_DATABASE": pg_database}
    )


@pytest.fixture
def lake(lake_settings) -> LakeWarehouse:
    warehouse = open_warehouse(lake_settings)
    assert isinstance(warehouse, LakeWarehouse)
    return warehouse


def _activity(days: list[str], users=(1, 2), posts: int = 1) -> pd.DataFrame:
    rows = [(u, pd.Timestamp(d), posts, 0, 0) for d in days for u in users]
    return pd.DataFrame(rows, columns=list(ACTIVITY.columns))


def _files(folder: Path) -> dict[str, int]:
    """Part files under a folder (relative path -> mtime in ns)."""
    return {
        str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*.parquet"))
    }


def _folder(settings, name: str) -> Path:
    return Path(table_uri(settings, name).removeprefix("file://"))


def test_tables_are_day_folders_of_microsecond_parquet(lake, lake_settings):
    """Given a partitioned, an event and a plain table, when written, then the first two are
    `day=` folders by their column's UTC date (no `day` column in the files), timestamps are
    microseconds UTC, the third is one folder of part files, and each reads back equal."""
    import pyarrow.parquet as pq

    posts = pd.DataFrame(
        {
            "post_id": [1, 2, 3],
            "user_id": [7, 7, 8],
            "created_at": pd.to_datetime(
                ["2026-01-01 23:59:59.123456", "2026-01-02 00:00:00.0", "2026-01-02 08:00:00.5"],
                utc=True,
            ),
            "post_type": ["image", "video", "text"],
            "category": ["food", "tech", "food"],
            "caption": ["a", "", "c"],
            "hashtags": ["#x", "", "#y #z"],
            "campaign_id": pd.array([None, 3, None], dtype="Int64"),
            "is_paid": [False, True, False],
            **{c: [10, 20, 30] for c in ("reach", "impressions", "likes", "comments")},
            **{c: [1, 2, 3] for c in ("shares", "saves")},
        }
    )
    hashtags = pd.DataFrame({"hashtag_id": [1, 2], "tag": ["x", "007"], "category": ["a", "b"]})
    lake.write_many([(POSTS, posts), (ACTIVITY, _activity(["2026-01-01"])), (HASHTAGS, hashtags)])

    assert partition_column(POSTS) == "created_at" and partition_column(HASHTAGS) is None
    folder = _folder(lake_settings, "content_posts")
    assert sorted(p.name for p in folder.iterdir()) == ["day=2026-01-01", "day=2026-01-02"]
    part = next((folder / "day=2026-01-02").glob("*.parquet"))
    schema = pq.read_schema(part)
    assert PARTITION_KEY not in schema.names
    assert str(schema.field("created_at").type) == "timestamp[us, tz=UTC]"
    assert [p.name for p in (_folder(lake_settings, "user_activity")).iterdir()] == [
        "day=2026-01-01"
    ]
    assert all(p.suffix == ".parquet" for p in _folder(lake_settings, "hashtags").iterdir())

    for table, frame in ((POSTS, posts), (HASHTAGS, hashtags)):
        back = lake.read(table.name).sort_values(table.key[0]).reset_index(drop=True)
        pd.testing.assert_frame_equal(back, table.conform(frame))
    late = lake.read(
        "content_posts",
        columns=["post_id"],
        between=("created_at", pd.Timestamp("2026-01-02", tz="UTC"), None),
    )
    assert sorted(late.post_id) == [2, 3]


def test_replace_partitions_touches_only_its_days(lake, lake_settings):
    """Given three days, when day two is replaced, then only its folder changes on disk and
    the table holds days one and three as they were beside the new day two."""
    lake.write(ACTIVITY, _activity(["2026-01-01", "2026-01-02", "2026-01-03"]))
    folder = _folder(lake_settings, "user_activity")
    before = _files(folder)

    lake.replace_partitions(ACTIVITY, _activity(["2026-01-02"], users=(1, 2, 3), posts=5))

    after = _files(folder)
    kept = {k: v for k, v in before.items() if not k.startswith("day=2026-01-02")}
    assert kept and {k: after[k] for k in kept} == kept
    assert not set(before) - set(kept) & set(after)  # day two's old part files are gone
    table = lake.read("user_activity").sort_values(["date", "user_id"])
    assert table.groupby("date").posts.sum().tolist() == [2, 15, 2]
    assert len(table) == 7


def test_a_write_failing_while_staging_changes_nothing(lake):
    """Given two tables, when a write of both fails on the second (a row without its day),
    then neither table changed and no staged folder is left behind."""
    lake.write_many([(ACTIVITY, _activity(["2026-01-01"])), (HASHTAGS, _hashtags())])
    broken = _activity(["2026-01-05"]).astype({"date": "object"})
    broken.loc[0, "date"] = None

    with pytest.raises(ValueError, match="date is empty"):
        lake.write_many([(HASHTAGS, _hashtags(["new"])), (ACTIVITY, broken)])

    assert lake.read("hashtags").tag.tolist() == ["x"]
    assert lake.read("user_activity").date.dt.strftime("%F").unique().tolist() == ["2026-01-01"]
    assert not [p for p in Path(lake.base).iterdir() if p.name.startswith(".")]


def _failing_move(lake, fail_at: int):
    """The lake's rename, failing its `fail_at`-th call (a disk full, a lost mount)."""
    real, calls = lake.move, []

    def move(source, target):
        calls.append(target)
        if len(calls) == fail_at:
            raise OSError("no space left on device")
        real(source, target)

    return move


def _hashtags(tags=("x",)) -> pd.DataFrame:
    return pd.DataFrame({"hashtag_id": range(1, len(tags) + 1), "tag": list(tags), "category": "c"})


def test_a_swap_failing_midway_puts_the_old_tables_back(lake):
    """Given two tables, when their swap fails after the first was renamed in, then both
    read as they were: the first is put back, the second never changed."""
    lake.write_many([(HASHTAGS, _hashtags()), (ACTIVITY, _activity(["2026-01-01"]))])
    lake.move = _failing_move(lake, fail_at=3)  # hashtags aside, new in; activity aside fails
    with pytest.raises(OSError, match="no space"):
        lake.write_many([(HASHTAGS, _hashtags(["y", "z"])), (ACTIVITY, _activity(["2026-02-01"]))])
    del lake.move
    assert lake.read("hashtags").tag.tolist() == ["x"]
    assert lake.read("user_activity").date.dt.strftime("%F").unique().tolist() == ["2026-01-01"]


KILLED_WRITER = """
import os, sys
import pandas as pd
from configs.settings import load_settings
from ingestion.schema import ALL_TABLES
from ingestion.warehouse import open_warehouse

lake = open_warehouse(load_settings("cluster"))
real, moves = lake.move, []

def dies_on_second_move(source, target):
    moves.append(target)
    if len(moves) == 2:
        os._exit(9)  # killed between moving the old folder aside and the new one in
    real(source, target)

lake.move = dies_on_second_move
new = pd.DataFrame({"hashtag_id": [5], "tag": ["killed"], "category": ["c"]})
lake.write(ALL_TABLES["hashtags"], new)
"""


def test_the_next_writer_undoes_a_killed_writers_swap(lake, lake_settings):
    """Given a writer killed after moving the old table aside, when the next writer takes
    the lock, then the old table is back and the transaction folder is gone."""
    lake.write(HASHTAGS, _hashtags())
    env = {
        **os.environ,
        "SMAP_PROFILE": "cluster",
        "SMAP_DATA_DIR": str(lake_settings.data_dir),
        "SMAP_DATABASE": lake_settings.postgres.database,
    }
    done = subprocess.run([sys.executable, "-c", KILLED_WRITER], env=env, capture_output=True)
    assert done.returncode == 9, done.stderr.decode()[-1500:]
    assert [p.name[:4] for p in Path(lake.base).iterdir() if p.name.startswith(".")] == [".tx-"]
    with pytest.raises(WarehouseError, match="does not exist"):
        lake.read("hashtags")  # moved aside by the killed writer

    lake.write(ACTIVITY, _activity(["2026-01-01"]))  # the next writer

    assert lake.read("hashtags").tag.tolist() == ["x"]
    assert not [p for p in Path(lake.base).iterdir() if p.name.startswith(".")]


def test_append_adds_part_files_to_the_days_it_touches(lake, lake_settings):
    """Given a table of two days, when rows of day two and a new day three are appended,
    then day one's files are untouched and every row is there once."""
    lake.write(ACTIVITY, _activity(["2026-01-01", "2026-01-02"]))
    folder = _folder(lake_settings, "user_activity")
    day_one = {k: v for k, v in _files(folder).items() if k.startswith("day=2026-01-01")}

    added = lake.append_many(
        [(ACTIVITY, [_activity(["2026-01-02"], users=(3,)), _activity(["2026-01-03"])])]
    )

    assert added == {"user_activity": 3}
    assert {k: v for k, v in _files(folder).items() if k.startswith("day=2026-01-01")} == day_one
    table = lake.read("user_activity")
    assert table.groupby(table.date.dt.strftime("%F")).size().to_dict() == {
        "2026-01-01": 2,
        "2026-01-02": 3,
        "2026-01-03": 2,
    }
    new = Table("lake_test_log", {"n": "int"})
    assert lake.append(new, pd.DataFrame({"n": [1, 2]})) == 2
    assert lake.read("lake_test_log").n.tolist() == [1, 2]


VERSION = """
from configs.settings import load_settings
from ingestion.warehouse import open_warehouse
print(open_warehouse(load_settings("cluster")).version(["user_activity", "hashtags"]))
"""


def test_version_changes_with_a_write_and_not_with_the_process(lake, lake_settings):
    """A stored training set is reused while the version of its tables holds: the same in
    another process, different once a day is replaced."""
    lake.write(ACTIVITY, _activity(["2026-01-01", "2026-01-02"]))
    first = lake.version(["user_activity", "hashtags"])
    env = {
        **os.environ,
        "SMAP_PROFILE": "cluster",
        "SMAP_DATA_DIR": str(lake_settings.data_dir),
        "SMAP_DATABASE": lake_settings.postgres.database,
    }
    done = subprocess.run(
        [sys.executable, "-c", VERSION], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == first
    assert "hashtags:-" in first

    lake.replace_partitions(ACTIVITY, _activity(["2026-01-02"], posts=3))
    assert lake.version(["user_activity", "hashtags"]) != first
