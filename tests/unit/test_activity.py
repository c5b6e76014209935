"""The activity recommendations read: posts in time order with lowercase categories, follows,
and likes and comments as one table; a table not built yet reads as empty."""

from __future__ import annotations

import pandas as pd

from ingestion.activity import read_activity
from ingestion.schema import RAW_TABLES
from ingestion.warehouse import ParquetWarehouse

T0 = pd.Timestamp("2026-03-01", tz="UTC")
COLUMNS = ["post_id", "user_id", "created_at", "category"]


def _write(warehouse: ParquetWarehouse, name: str, frame: pd.DataFrame) -> None:
    table = RAW_TABLES[name]
    warehouse.write(table, table.conform(frame))


def test_an_empty_warehouse_reads_as_empty_tables(tmp_path):
    activity = read_activity(ParquetWarehouse(tmp_path / "w"), COLUMNS)

    assert activity.posts.empty and list(activity.posts.columns) == COLUMNS
    assert activity.follows.empty and activity.interactions.empty
    assert list(activity.interactions.columns) == ["user_id", "post_id", "created_at", "kind"]


def test_posts_come_in_time_order_and_likes_and_comments_as_one_table(tmp_path):
    warehouse = ParquetWarehouse(tmp_path / "w")
    posts = pd.DataFrame(
        {
            "post_id": [2, 1, 3],
            "user_id": [7, 7, 8],
            "created_at": [T0, T0, T0 - pd.Timedelta(hours=1)],
            "post_type": "image",
            "category": ["Food", None, "tech"],
            "caption": "",
            "hashtags": "",
            "campaign_id": None,
            "is_paid": False,
        }
    )
    for metric in ("reach", "impressions", "likes", "comments", "shares", "saves"):
        posts[metric] = 0
    _write(warehouse, "content_posts", posts)
    _write(warehouse, "likes", pd.DataFrame({"post_id": [1], "user_id": [8], "created_at": [T0]}))

    activity = read_activity(warehouse, COLUMNS)

    assert activity.posts.post_id.tolist() == [3, 1, 2]  # by time, then post id
    assert activity.posts.category.tolist() == ["tech", "", "food"]
    assert activity.follows.empty  # no follows table: none
    assert activity.interactions[["post_id", "kind"]].values.tolist() == [[1, "like"]]
