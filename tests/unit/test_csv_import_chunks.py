"""An export read in many chunks loads what one chunk loads, and a failure in a middle chunk
(while reading it, or while writing its rows) changes no table of a Parquet warehouse."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pandas as pd
import pytest

from ingestion import csv_import
from ingestion.csv_import import import_posts
from ingestion.warehouse import ParquetWarehouse

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
# 45 rows read 7 at a time: rejects, repeats (within a chunk and across chunks), accounts and
# hashtags whose earliest post comes in a later chunk, day-first times, a blank line
EXPORT = FIXTURES / "posts_chunked.csv"
MORE = FIXTURES / "posts_more.csv"
TABLES = ("users", "hashtags", "content_posts", "post_hashtags", "follower_counts")


def contents(warehouse: ParquetWarehouse) -> dict[str, pd.DataFrame]:
    """The post tables sorted by their leading columns (row order is not part of a table)."""
    tables = {name: warehouse.read(name) for name in TABLES}
    return {
        name: frame.sort_values(list(frame.columns[:2])).reset_index(drop=True)
        for name, frame in tables.items()
    }


def snapshot(root: Path) -> dict[str, str]:
    """Every file in a folder with a hash of its bytes (none when there is no folder)."""
    if not root.exists():
        return {}
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.iterdir())}


def _as_parquet(tmp_path: Path) -> Path:
    """The same export as a Parquet file of text columns (its short row padded with blanks)."""
    frame = pd.read_csv(EXPORT, dtype=str, keep_default_na=False)
    frame.to_parquet(tmp_path / "posts_chunked.parquet", index=False)
    return tmp_path / "posts_chunked.parquet"


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_many_chunks_load_the_same_rows_and_rejects_as_one(tmp_path, kind):
    export = EXPORT if kind == "csv" else _as_parquet(tmp_path)
    one, many = ParquetWarehouse(tmp_path / "one"), ParquetWarehouse(tmp_path / "many")
    calls = []

    single = import_posts(export, None, one, tmp_path / "one" / "rejects", chunk_rows=10_000)
    chunked = import_posts(
        export,
        None,
        many,
        tmp_path / "many" / "rejects",
        chunk_rows=7,
        progress=lambda done, total: calls.append((done, total)),
    )

    assert len(calls) == 1 + 7  # before the first chunk, then after each of 7 chunks
    size = export.stat().st_size
    assert calls[-1] == (size, size) and [done for done, _ in calls] == sorted(d for d, _ in calls)
    counts = ("rows_read", "rows_loaded", "rows_rejected", "rows_duplicate", "users_added")
    assert [getattr(single, name) for name in counts] == [45, 36, 6, 3, 7]
    assert dataclasses.replace(chunked, rejects_path=None) == dataclasses.replace(
        single, rejects_path=None
    )
    expected, got = contents(one), contents(many)
    for name in TABLES:
        pd.testing.assert_frame_equal(got[name], expected[name])
    assert chunked.rejects_path.read_text() == single.rejects_path.read_text()
    # what only a pass over the whole file knows, though its rows come in a later chunk
    users = got["users"].set_index("username")
    assert users.user_id["beta"] == 0  # its first post is the file's earliest
    assert users.created_at["beta"] == pd.Timestamp("2026-02-10 07:00", tz="UTC")
    assert got["hashtags"].set_index("tag").category["sunset"] == "fitness"  # first use: beta
    march = got["content_posts"][got["content_posts"].caption == "March the first #sea"]
    assert march.created_at.tolist() == [pd.Timestamp("2026-03-01 09:00", tz="UTC")]  # day first


def _fail_in_middle_chunk_while_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    """The 4th of 7 chunks cannot be staged (a full disk)."""
    real_add, calls = csv_import._Staging.add, []

    def add(self, posts):
        calls.append(len(posts))
        if len(calls) == 4:
            raise OSError("disk full")
        real_add(self, posts)

    monkeypatch.setattr(csv_import._Staging, "add", add)


def _fail_in_middle_chunk_while_writing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The 4th chunk's posts fail while they are being added to content_posts, after the new
    users and hashtags and the first chunks' posts went in."""
    real_rows, calls = csv_import._post_rows, []

    def rows(part, user_ids):
        calls.append(len(part))
        if len(calls) == 4:
            raise OSError("disk full")
        return real_rows(part, user_ids)

    monkeypatch.setattr(csv_import, "_post_rows", rows)


@pytest.mark.parametrize(
    "fail", [_fail_in_middle_chunk_while_reading, _fail_in_middle_chunk_while_writing]
)
def test_a_failure_in_a_middle_chunk_changes_no_table(tmp_path, monkeypatch, fail):
    warehouse, rejects_dir = ParquetWarehouse(tmp_path / "warehouse"), tmp_path / "rejects"
    import_posts(MORE, None, warehouse, rejects_dir)
    before, rejects_before = snapshot(warehouse.root), snapshot(rejects_dir)

    fail(monkeypatch)
    with pytest.raises(OSError, match="disk full"):
        import_posts(EXPORT, None, warehouse, rejects_dir, chunk_rows=7)

    assert snapshot(warehouse.root) == before  # no table changed, no temporary file left
    assert snapshot(rejects_dir) == rejects_before  # no rejects file of a failed import
    assert not list(tmp_path.glob(".import-staging-*"))  # the staged parts are gone

    monkeypatch.undo()
    again = import_posts(EXPORT, None, warehouse, rejects_dir, chunk_rows=7)
    assert (again.rows_loaded, again.rows_duplicate) == (36, 3)  # nothing of it was loaded
