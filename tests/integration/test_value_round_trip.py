"""Values come back exactly as written on both profiles: text stays text (`007` is not 7, a
literal `\\N` is not NULL), quotes, commas, newlines and emoji survive, and a NUL is a reject."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ingestion.csv_import import NUL_REASON, import_posts
from ingestion.schema import RAW_TABLES
from ingestion.warehouse import open_warehouse

pytestmark = pytest.mark.integration

ACCOUNTS = ["007", "\\N", "008", "0.50", "NULL"]
CAPTIONS = [
    "a literal \\N inside",
    "\\N",
    'she said "hi", then left',
    "line one\nline two\r\nline three",
    "party time 🎉🔥 #fun",
]
HEADER = "account,timestamp,type,category,text,reach,likes,comments,shares\n"


def _csv_cell(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _export(path: Path) -> Path:
    rows = [
        f"{_csv_cell(account)},2026-03-0{day + 1} 08:00,image,travel,{_csv_cell(caption)},100,1,1,1"
        for day, (account, caption) in enumerate(zip(ACCOUNTS, CAPTIONS, strict=True))
    ]
    rows.append('nul_account,2026-03-07 08:00,image,travel,"bad \x00 byte",100,1,1,1')
    path.write_text(HEADER + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_awkward_values_survive_an_import_and_a_second_one(any_settings, tmp_path):
    warehouse = open_warehouse(any_settings)
    export = _export(tmp_path / "awkward.csv")

    first = import_posts(export, None, warehouse, tmp_path / "rejects")
    second = import_posts(export, None, warehouse, tmp_path / "rejects")

    users = warehouse.read("users")
    posts = warehouse.read("content_posts").sort_values("created_at")
    assert (first.rows_loaded, first.users_added, first.rows_rejected) == (5, 5, 1)
    assert (second.rows_loaded, second.users_added, second.rows_duplicate) == (0, 0, 5)
    assert sorted(users.username) == sorted(ACCOUNTS)  # one row each: no second `007`
    assert users.username.map(type).eq(str).all()
    assert list(posts.caption) == CAPTIONS
    names = dict(zip(users.user_id, users.username, strict=True))
    assert [names[user] for user in posts.user_id] == ACCOUNTS
    rejects = pd.read_csv(second.rejects_path, dtype=str, keep_default_na=False)
    assert list(rejects.account) == ["nul_account"]
    assert NUL_REASON in rejects._reason.iloc[0]


def test_typed_columns_round_trip(any_settings):
    warehouse = open_warehouse(any_settings)
    campaigns = RAW_TABLES["campaigns"]
    frame = campaigns.conform(
        pd.DataFrame(
            {
                "campaign_id": [1, 2],
                "user_id": [7, 2**40],
                "name": ["007", "\\N"],
                "start_date": pd.to_datetime(["1999-12-31", "2026-03-01"]),
                "end_date": pd.to_datetime(["2000-01-01", "2026-04-30"]),
                "budget": [0.1, 1e12 + 0.5],
                **{
                    column: ["x", ""]
                    for column, kind in campaigns.columns.items()
                    if kind == "str" and column != "name"
                },
            }
        )
    )
    posts = RAW_TABLES["content_posts"]
    post = posts.conform(
        pd.DataFrame(
            {
                "post_id": [2**61, 3],
                "user_id": [1, 2],
                "created_at": pd.to_datetime(
                    ["2026-03-01 08:00:00.123456+00", "1970-01-01 00:00:00+00"],
                    utc=True,
                    format="ISO8601",
                ),
                "post_type": ["image", "text"],
                "category": ["0", "travel"],
                "caption": ["tab\there", ""],
                "hashtags": ["", "#a"],
                "campaign_id": pd.array([None, 5], dtype="Int64"),
                "is_paid": [True, False],
                **dict.fromkeys(("reach", "impressions", "likes", "comments"), [10, 0]),
                **dict.fromkeys(("shares", "saves"), [1, 2]),
            }
        )
    )

    warehouse.write_many([(campaigns, frame), (posts, post)])

    pd.testing.assert_frame_equal(warehouse.read("campaigns"), frame)
    back = warehouse.read("content_posts").sort_values("post_id", ascending=False)
    pd.testing.assert_frame_equal(back.reset_index(drop=True), post)
