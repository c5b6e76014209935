"""Bring-your-own-data import into a Parquet warehouse: mapping, rejects, idempotency, atomicity."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

import ingestion.warehouse as warehouse_module
from ingestion.csv_import import CsvImportError, import_posts, stable_id
from ingestion.schema import RAW_TABLES
from ingestion.warehouse import ParquetWarehouse

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
EXPORT = FIXTURES / "posts_export.csv"
MAPPING = FIXTURES / "posts_mapping.yaml"
MORE = FIXTURES / "posts_more.csv"  # our column names, no mapping; overlaps EXPORT by one post


@pytest.fixture
def warehouse(tmp_path: Path) -> ParquetWarehouse:
    return ParquetWarehouse(tmp_path / "warehouse")


@pytest.fixture
def rejects_dir(tmp_path: Path) -> Path:
    return tmp_path / "rejects"


def snapshot(root: Path) -> dict[str, str]:
    """Every file under the warehouse root with a hash of its bytes."""
    if not root.exists():
        return {}
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.iterdir())}


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text.strip() + "\n", encoding="utf-8")
    return path


def test_fixture_loads_into_all_raw_tables(warehouse, rejects_dir):
    result = import_posts(EXPORT, MAPPING, warehouse, rejects_dir)

    assert (result.rows_read, result.rows_loaded, result.rows_rejected, result.rows_duplicate) == (
        31,
        24,
        6,
        1,
    )
    assert (result.users_added, result.hashtags_added) == (2, 12)
    posts = warehouse.read("content_posts")
    users = warehouse.read("users")
    assert len(posts) == 24 and posts.post_id.is_unique
    assert set(posts.post_type) == {"image", "video", "carousel", "text", "link"}
    assert posts.campaign_id.isna().all() and posts.is_paid.sum() == 3
    assert (posts.impressions == posts.reach).all()
    assert sorted(users.username) == ["acme_coffee", "acme_travel"]
    assert set(posts.user_id) == set(users.user_id) == {0, 1}
    assert (users.country == "unknown").all() and not users.is_verified.any()
    # New York local time (EST before 8 March 2026) stored as UTC; user created at first post.
    first = posts.sort_values("created_at").iloc[0]
    assert first.created_at == pd.Timestamp("2026-03-01 13:00", tz="UTC")
    assert users.set_index("username").created_at["acme_travel"] == first.created_at
    # "1,234" is a valid reach; a caption may span two lines.
    assert 1234 in set(posts.reach)
    assert "Two lines of caption\nsecond line #coffee" in set(posts.caption)


def test_hashtags_come_from_the_caption_with_category_of_first_use(warehouse, rejects_dir):
    import_posts(EXPORT, MAPPING, warehouse, rejects_dir)

    tags = warehouse.read("hashtags").set_index("tag")
    links = warehouse.read("post_hashtags")
    posts = warehouse.read("content_posts").set_index("post_id")
    assert tags.category["coffee"] == "food" and tags.category["lisbon"] == "travel"
    assert sorted(tags.hashtag_id) == list(range(len(tags)))
    assert set(links.post_id) <= set(posts.index) and links.duplicated().sum() == 0
    beach = posts[posts.caption == "Hidden beaches #travel #beach"].iloc[0]
    assert beach.hashtags == "#travel #beach"


def test_other_raw_tables_are_created_empty_for_the_etl(warehouse, rejects_dir):
    import_posts(EXPORT, MAPPING, warehouse, rejects_dir)

    for name in ("comments", "likes", "follows", "campaigns"):
        frame = warehouse.read(name)
        assert frame.empty and list(frame.columns) == list(RAW_TABLES[name].columns)


def test_malformed_rows_go_to_the_rejects_file_with_line_and_reason(warehouse, rejects_dir):
    result = import_posts(EXPORT, MAPPING, warehouse, rejects_dir)

    assert result.rejects_path == rejects_dir / "posts_export.rejects.csv"
    rejects = pd.read_csv(result.rejects_path, dtype=str, keep_default_na=False)
    header = pd.read_csv(EXPORT, nrows=0).columns.tolist()
    assert rejects.columns.tolist() == header + ["_row", "_reason"]
    reasons = dict(zip(rejects._row.astype(int), rejects._reason, strict=True))
    assert sorted(reasons) == [7, 12, 15, 18, 21, 24]  # file lines; line 4-5 is one record
    assert reasons[7].startswith("reach (column 'Reach')") and "'abc'" in reasons[7]
    assert reasons[12].startswith("likes (column 'Likes'): must be >= 0")
    assert reasons[15].startswith("type (column 'Post type'): unknown post type 'Story'")
    assert reasons[18] == "row has 13 fields, the header has 12"
    assert reasons[21].startswith("timestamp (column 'Publish time')")
    assert "reach" in reasons[24] and "comments" in reasons[24]  # every bad field is named
    assert rejects.set_index("_row").loc["7", "Reach"] == "abc"  # original cell kept


def test_second_run_of_the_same_file_adds_nothing(warehouse, rejects_dir):
    import_posts(EXPORT, MAPPING, warehouse, rejects_dir)
    before = snapshot(warehouse.root)

    again = import_posts(EXPORT, MAPPING, warehouse, rejects_dir)

    assert again.rows_loaded == 0 and again.rows_duplicate == 25 and again.rows_rejected == 6
    assert (again.users_added, again.hashtags_added) == (0, 0)
    assert snapshot(warehouse.root) == before


def test_second_file_reuses_accounts_tags_and_skips_known_posts(warehouse, rejects_dir):
    import_posts(EXPORT, MAPPING, warehouse, rejects_dir)
    ids_before = warehouse.read("users").set_index("username").user_id

    result = import_posts(MORE, None, warehouse, rejects_dir)

    # the acme_travel row is the fixture's first post, written with an offset instead of a zone
    assert (result.rows_loaded, result.rows_duplicate, result.rows_rejected) == (2, 1, 0)
    # new: account acme_bakery; tags spring, bread, sourdough
    assert (result.users_added, result.hashtags_added) == (1, 3)
    assert result.rejects_path is None
    users = warehouse.read("users").set_index("username").user_id
    assert users["acme_coffee"] == ids_before["acme_coffee"] and users["acme_bakery"] == 2
    posts = warehouse.read("content_posts")
    assert len(posts) == 26
    april = posts[posts.caption == "April special"].iloc[0]
    assert april.user_id == users["acme_coffee"] and april.is_paid
    assert april.hashtags == "#coffee #spring"
    bread = posts[posts.caption == "Fresh bread"].iloc[0]
    assert bread.saves == 0 and bread.created_at == pd.Timestamp("2026-04-02 07:30", tz="UTC")
    tags = warehouse.read("hashtags").set_index("tag")
    assert tags.hashtag_id["coffee"] == 3 and tags.hashtag_id["sourdough"] == 14


def test_parquet_export_with_external_ids_and_no_account_column(warehouse, rejects_dir, tmp_path):
    export = tmp_path / "mine.parquet"
    frame = pd.DataFrame(
        {
            "post_id": ["a1", "a2"],
            "timestamp": pd.to_datetime(["2026-02-01 10:00", "2026-02-02 11:00"], utc=True),
            "type": ["IMAGE", "carousel_album"],
            "category": ["Tech", "tech"],
            "reach": [100, 200],
            "likes": [5, 9],
            "comments": [0, 1],
            "shares": [1, 0],
            "text": ["launch day #ai", ""],
        }
    )
    frame.to_parquet(export)

    first = import_posts(export, None, warehouse, rejects_dir)
    frame.assign(text=["edited caption #ai", "now with text"], likes=[6, 10]).to_parquet(export)
    second = import_posts(export, None, warehouse, rejects_dir)

    assert first.rows_loaded == 2 and second.rows_duplicate == 2  # the platform id decides
    posts = warehouse.read("content_posts")
    assert posts.post_id.tolist() == [stable_id("external", "me", key) for key in ("a1", "a2")]
    assert posts.post_type.tolist() == ["image", "carousel"] and set(posts.category) == {"tech"}
    assert warehouse.read("users").username.tolist() == ["me"]


def test_semicolon_csv_with_default_account_from_the_mapping(warehouse, rejects_dir, tmp_path):
    export = write_csv(
        tmp_path / "export.csv",
        """
Datum;Typ;Thema;Reichweite;Likes;Kommentare;Geteilt
15.03.2026 18:00;Photo;food;"1.200";30;2;1
16.03.2026 18:00;Reel;food;900;25;1;0
""",
    )
    mapping = write_csv(
        tmp_path / "mapping.yaml",
        """
columns: {timestamp: Datum, type: Typ, category: Thema, reach: Reichweite, likes: Likes,
          comments: Kommentare, shares: Geteilt}
timestamp_format: "%d.%m.%Y %H:%M"
timezone: Europe/Berlin
default_account: cafe_berlin
""",
    )
    result = import_posts(export, mapping, warehouse, rejects_dir)

    # "1.200" is not a whole number we can trust ("1.2" or "1200"?), so the row is rejected
    assert (result.rows_loaded, result.rows_rejected) == (1, 1)
    posts = warehouse.read("content_posts")
    assert posts.created_at.tolist() == [pd.Timestamp("2026-03-16 17:00", tz="UTC")]
    assert warehouse.read("users").username.tolist() == ["cafe_berlin"]


def test_missing_required_column_is_one_line_and_writes_nothing(warehouse, rejects_dir, tmp_path):
    export = write_csv(
        tmp_path / "posts.csv",
        """
Publish time,Post type,Category,Likes,Comments,Shares
03/01/2026 08:00,Photo,food,1,2,3
""",
    )
    with pytest.raises(CsvImportError) as error:
        import_posts(export, MAPPING, warehouse, rejects_dir)

    assert str(error.value) == (
        "posts.csv: required column 'Reach' (field reach) is missing "
        "(set engagement_denominator: followers or none if it has no reach)"
    )
    assert snapshot(warehouse.root) == {} and not rejects_dir.exists()


def test_missing_required_column_leaves_existing_tables_unchanged(warehouse, rejects_dir, tmp_path):
    import_posts(EXPORT, MAPPING, warehouse, rejects_dir)
    before = snapshot(warehouse.root)
    export = write_csv(tmp_path / "more.csv", "timestamp,type,category,reach,likes,comments")

    with pytest.raises(CsvImportError, match=r"^more.csv: required column 'shares' \(field shares"):
        import_posts(export, None, warehouse, rejects_dir)

    assert snapshot(warehouse.root) == before


@pytest.mark.parametrize(
    ("mapping_text", "message"),
    [
        ("columns: {reach: Reach}\nsheet: 1\n", "mapping.yaml: unknown key 'sheet'"),
        ("columns: {views: Views}\n", "mapping.yaml: columns: unknown field 'views'"),
        ("columns: {reach: 3}\n", "mapping.yaml: columns.reach must be a column name"),
        ("columns: [reach]\n", "mapping.yaml: columns must map our field names"),
        ("columns: {reach: Reach\n", "mapping.yaml line 2: not valid YAML"),
        ("timezone: Mars/Olympus\n", "mapping.yaml: timezone 'Mars/Olympus' is unknown"),
        ("- reach\n", "mapping.yaml: top level must be a mapping"),
    ],
)
def test_bad_mapping_is_one_line(warehouse, rejects_dir, tmp_path, mapping_text, message):
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(mapping_text)

    with pytest.raises(CsvImportError) as error:
        import_posts(EXPORT, mapping, warehouse, rejects_dir)

    assert str(error.value).startswith(message) and "\n" not in str(error.value)
    assert snapshot(warehouse.root) == {}


def test_explicitly_mapped_optional_column_must_exist(warehouse, rejects_dir, tmp_path):
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(MAPPING.read_text().replace("  paid:", "  hashtags: Tags\n  paid:"))

    with pytest.raises(CsvImportError, match=r"mapped column 'Tags' \(field hashtags\) is missing"):
        import_posts(EXPORT, mapping, warehouse, rejects_dir)


def test_failed_file_swap_rolls_back_tables_already_replaced(warehouse, rejects_dir, monkeypatch):
    import_posts(EXPORT, MAPPING, warehouse, rejects_dir)
    before = snapshot(warehouse.root)
    real_replace = warehouse_module.os.replace
    calls = []

    def replace_then_fail(src, dst):
        calls.append(dst)
        if len(calls) == 3:  # users and hashtags are swapped in, content_posts fails
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(warehouse_module.os, "replace", replace_then_fail)
    with pytest.raises(OSError, match="disk full"):
        import_posts(MORE, None, warehouse, rejects_dir)

    assert len(calls) > 3  # the rollback ran
    assert snapshot(warehouse.root) == before  # same tables, no temp or backup files left


def test_failed_staging_writes_no_table(warehouse, rejects_dir, monkeypatch):
    import_posts(EXPORT, MAPPING, warehouse, rejects_dir)
    before = snapshot(warehouse.root)
    real_stage = ParquetWarehouse._stage_append
    staged = []

    def stage_then_fail(self, table, frames, tmp):
        staged.append(table.name)
        if table.name == "post_hashtags":  # users, hashtags, content_posts already staged
            raise OSError("disk full")
        return real_stage(self, table, frames, tmp)

    monkeypatch.setattr(ParquetWarehouse, "_stage_append", stage_then_fail)
    with pytest.raises(OSError, match="disk full"):
        import_posts(MORE, None, warehouse, rejects_dir)

    assert staged == ["users", "hashtags", "content_posts", "post_hashtags"]
    assert snapshot(warehouse.root) == before


def test_first_import_that_fails_leaves_no_tables(warehouse, rejects_dir, monkeypatch):
    def fail(frame, path, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", fail)
    with pytest.raises(OSError):
        import_posts(EXPORT, MAPPING, warehouse, rejects_dir)

    assert snapshot(warehouse.root) == {}


def test_unsupported_or_missing_file_is_one_line(warehouse, rejects_dir, tmp_path):
    with pytest.raises(CsvImportError, match=r"^posts.xlsx: unsupported file type"):
        import_posts(tmp_path / "posts.xlsx", None, warehouse, rejects_dir)
    with pytest.raises(CsvImportError, match=r"absent.csv: file not found$"):
        import_posts(tmp_path / "absent.csv", None, warehouse, rejects_dir)


def test_stable_id_is_fixed_across_processes_and_versions():
    # pinned: changing the hash would make every re-import duplicate already loaded posts
    assert stable_id("external", "me", "a1") == 2879760827139726576
    assert 0 <= stable_id("x") < 1 << 62
