"""Real exports: no reach, no category, followers, blank counts, bad dates and huge cells."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ingestion.csv_import import CsvImportError, import_posts
from ingestion.warehouse import ParquetWarehouse

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture
def warehouse(tmp_path: Path) -> ParquetWarehouse:
    return ParquetWarehouse(tmp_path / "warehouse")


@pytest.fixture
def rejects_dir(tmp_path: Path) -> Path:
    return tmp_path / "rejects"


def write(path: Path, text: str) -> Path:
    path.write_text(text.strip() + "\n", encoding="utf-8")
    return path


def reasons(result) -> dict[int, str]:
    frame = pd.read_csv(result.rejects_path, dtype=str, keep_default_na=False)
    return dict(zip(frame._row.astype(int), frame._reason, strict=True))


def test_page_export_with_followers_and_no_reach_or_category(warehouse, rejects_dir):
    result = import_posts(
        FIXTURES / "page_export.csv", FIXTURES / "page_mapping.yaml", warehouse, rejects_dir
    )

    assert result.rows_rejected == 0 and result.rows_loaded == 12
    assert result.engagement_denominator == "followers"
    posts = warehouse.read("content_posts")
    assert (posts.reach == 0).all() and (posts.category == "brand").all()
    counts = warehouse.read("follower_counts")
    assert len(counts) == 12 and counts.followers.min() >= 5000
    assert warehouse.read("engagement_definition").denominator.tolist() == ["followers"]


def test_blank_interaction_counts_load_as_zero_and_are_counted(warehouse, rejects_dir, tmp_path):
    export = write(
        tmp_path / "posts.csv",
        """
timestamp,type,category,reach,likes,comments,shares,saves
2026-03-01 10:00,photo,food,100,5,,,
2026-03-02 10:00,photo,food,100,,1,2,3
2026-03-03 10:00,photo,food,,4,1,2,3
""",
    )
    result = import_posts(export, None, warehouse, rejects_dir)

    assert (result.rows_loaded, result.rows_rejected, result.blank_counts_as_zero) == (2, 1, 4)
    posts = warehouse.read("content_posts").sort_values("created_at")
    assert posts[["likes", "comments", "shares", "saves"]].to_numpy().tolist() == [
        [5, 0, 0, 0],
        [0, 1, 2, 3],
    ]
    assert reasons(result)[4] == "reach (column 'reach'): is empty"  # the denominator


def test_every_row_rejected_is_an_error_with_the_first_reason(warehouse, rejects_dir, tmp_path):
    export = write(
        tmp_path / "posts.csv",
        """
timestamp,type,category,reach,likes,comments,shares
2026-03-01 10:00,photo,food,abc,5,1,1
2026-03-02 10:00,story,food,100,5,1,1
""",
    )
    with pytest.raises(CsvImportError) as error:
        import_posts(export, None, warehouse, rejects_dir)

    message = str(error.value)
    assert message.startswith("posts.csv: all 2 rows were rejected, nothing loaded (first: row 2")
    assert "reach (column 'reach')" in message and "\n" not in message
    assert (rejects_dir / "posts.rejects.csv").is_file()
    assert not warehouse.exists("content_posts")


def test_every_missing_required_column_is_named(warehouse, rejects_dir, tmp_path):
    export = write(tmp_path / "posts.csv", "timestamp,likes\n2026-03-01 10:00,4")

    with pytest.raises(CsvImportError) as error:
        import_posts(export, None, warehouse, rejects_dir)

    message = str(error.value)
    for column in ("'type'", "'category'", "'reach'", "'comments'", "'shares'"):
        assert column in message
    assert message.startswith("posts.csv: required columns ") and "default_category" in message


def test_interactions_per_post_needs_neither_reach_nor_followers(warehouse, rejects_dir, tmp_path):
    export = write(
        tmp_path / "seller.csv",
        "timestamp,type,likes,comments,shares\n2026-03-01 10:00,photo,5,1,0",
    )
    mapping = write(
        tmp_path / "mapping.yaml", "engagement_denominator: none\ndefault_category: shop"
    )
    result = import_posts(export, mapping, warehouse, rejects_dir)

    assert result.rows_loaded == 1 and warehouse.read("content_posts").reach.tolist() == [0]
    assert warehouse.read("follower_counts").empty


def test_a_second_engagement_target_in_one_warehouse_is_refused(warehouse, rejects_dir, tmp_path):
    import_posts(
        FIXTURES / "page_export.csv", FIXTURES / "page_mapping.yaml", warehouse, rejects_dir
    )
    export = write(
        tmp_path / "more.csv",
        "timestamp,type,category,reach,likes,comments,shares\n2026-03-01 10:00,photo,a,9,5,1,0",
    )
    with pytest.raises(CsvImportError, match="engagement_denominator 'reach' differs"):
        import_posts(export, None, warehouse, rejects_dir)


def test_dates_outside_the_sane_window_and_contradicting_counts_are_rejected(
    warehouse, rejects_dir, tmp_path
):
    export = write(
        tmp_path / "posts.csv",
        """
timestamp,type,category,reach,likes,comments,shares
1900-01-01 10:00,photo,food,100,5,1,1
2999-01-01 10:00,photo,food,100,5,1,1
2100-01-01 10:00,photo,food,100,5,1,1
2026-03-01 10:00,photo,food,100,500,1,1
2026-03-02 10:00,photo,food,99999999999999999999,5,1,1
2026-03-03 10:00,photo,food,100,5,1,1
""",
    )
    result = import_posts(export, None, warehouse, rejects_dir)

    why = reasons(result)
    assert result.rows_loaded == 1 and sorted(why) == [2, 3, 4, 5, 6]
    assert why[2].startswith("timestamp (column 'timestamp'): is before 2004-01-01")
    assert why[3].startswith("timestamp (column 'timestamp'): is in the future")
    assert why[4].startswith("timestamp (column 'timestamp'): is in the future")
    assert why[5].startswith("likes (column 'likes'): 500 is above reach (100)")
    assert why[6].startswith("reach (column 'reach'): is implausibly large")


def test_sampled_reach_and_an_earlier_floor_are_mapping_options(warehouse, rejects_dir, tmp_path):
    export = write(
        tmp_path / "posts.csv",
        """
timestamp,type,category,reach,likes,comments,shares
1999-01-01 10:00,photo,food,100,500,1,1
""",
    )
    mapping = write(tmp_path / "mapping.yaml", "reach_sampled: true\nearliest_date: 1990-01-01")

    assert import_posts(export, mapping, warehouse, rejects_dir).rows_loaded == 1


def test_a_one_megabyte_caption_rejects_its_row_not_the_file(warehouse, rejects_dir, tmp_path):
    huge = "x" * 1_000_000
    export = write(
        tmp_path / "posts.csv",
        f"""
timestamp,type,category,text,reach,likes,comments,shares
2026-03-01 10:00,photo,food,"{huge}",100,5,1,1
2026-03-02 10:00,photo,food,short,100,5,1,1
""",
    )
    result = import_posts(export, None, warehouse, rejects_dir)

    assert (result.rows_loaded, result.rows_rejected) == (1, 1)
    assert (
        reasons(result)[2] == "text (column 'text'): is 1,000,000 characters long (at most 100,000)"
    )
