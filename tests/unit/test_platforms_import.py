"""A post's platform in an import: a constant of the mapping, a column, or neither (the
settings' default), through the ETL into `platform_posts`."""

from __future__ import annotations

from pathlib import Path

import pytest

from configs.settings import load_settings
from ingestion.csv_import import CsvImportError, import_posts
from ingestion.etl import run_etl
from ingestion.warehouse import ParquetWarehouse

HEADER = "account,timestamp,type,category,reach,likes,comments,shares"


def write(path: Path, text: str) -> Path:
    path.write_text(text.strip() + "\n", encoding="utf-8")
    return path


@pytest.fixture
def warehouse(tmp_path: Path) -> ParquetWarehouse:
    return ParquetWarehouse(tmp_path / "warehouse")


def test_a_mapping_constant_and_a_column_set_each_posts_platform(tmp_path, warehouse):
    export = write(
        tmp_path / "posts.csv",
        f"""
{HEADER},network
a,2026-03-01 10:00,photo,food,100,5,1,0,Twitter
a,2026-03-02 10:00,photo,food,100,6,1,0,
a,2026-03-03 10:00,photo,food,100,7,1,0,LinkedIn
a,2026-03-04 10:00,photo,food,100,8,1,0,my space!
""",
    )
    mapping = write(tmp_path / "map.yaml", "platform: tiktok\ncolumns: {platform: network}")
    result = import_posts(export, mapping, warehouse, tmp_path / "rejects")
    assert (result.rows_loaded, result.rows_rejected) == (3, 1)
    rejects = (tmp_path / "rejects" / "posts.rejects.csv").read_text()
    assert "platform (column 'network'): must be a platform name" in rejects
    stored = warehouse.read("post_platforms").merge(warehouse.read("content_posts"))
    by_likes = dict(zip(stored.likes, stored.platform, strict=True))
    assert by_likes == {5: "x", 6: "tiktok", 7: "linkedin"}  # blank cell: the constant

    run_etl(load_settings(), warehouse)
    posts = warehouse.read("platform_posts")
    assert sorted(posts.platform) == ["linkedin", "tiktok", "x"]


def test_an_export_without_platforms_leaves_them_to_the_default(tmp_path, warehouse):
    export = write(tmp_path / "posts.csv", f"{HEADER}\na,2026-03-01 10:00,photo,food,100,5,1,0")
    import_posts(export, None, warehouse, tmp_path / "rejects")
    assert warehouse.read("post_platforms").empty
    run_etl(load_settings(), warehouse)
    assert warehouse.read("platform_posts").platform.isna().all()  # the report's default


def test_a_bad_platform_constant_is_refused_naming_the_key(tmp_path, warehouse):
    export = write(tmp_path / "posts.csv", f"{HEADER}\na,2026-03-01 10:00,photo,food,100,5,1,0")
    mapping = write(tmp_path / "map.yaml", "platform: 'Tik Tok'")
    with pytest.raises(CsvImportError, match="map.yaml: platform must be a platform name"):
        import_posts(export, mapping, warehouse, tmp_path / "rejects")
    assert not warehouse.exists("content_posts")
