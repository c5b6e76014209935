"""`smap ingest csv --dry-run` validates a file and its mapping and writes nothing."""

from __future__ import annotations

import os
from pathlib import Path

from pipelines.cli import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
EXPORT = FIXTURES / "posts_export.csv"
MAPPING = FIXTURES / "posts_mapping.yaml"


def _data_files(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under the data dir with its size and mtime, except smap's own log."""
    found = {}
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            if path.relative_to(root).parts[0] != "logs":
                stat = path.stat()
                found[str(path.relative_to(root))] = (stat.st_size, stat.st_mtime_ns)
    return found


def test_dry_run_after_an_import_changes_nothing_and_counts_the_loaded_rows(capsys):
    root = Path(os.environ["SMAP_DATA_DIR"])
    assert main(["ingest", "csv", str(EXPORT), "--mapping", str(MAPPING)]) == 0
    before = _data_files(root)
    capsys.readouterr()

    assert main(["ingest", "csv", str(EXPORT), "--mapping", str(MAPPING), "--dry-run"]) == 0

    text = " ".join(capsys.readouterr().out.split())
    assert _data_files(root) == before
    assert "rows that would load │ 0" in text
    assert "rows already loaded or repeated │ 25" in text and "accounts (new) │ 0 (0)" in text


def test_dry_run_on_an_empty_data_dir_prints_the_summary_and_writes_nothing(capsys):
    root = Path(os.environ["SMAP_DATA_DIR"])

    assert main(["ingest", "csv", str(EXPORT), "--mapping", str(MAPPING), "--dry-run"]) == 0

    assert _data_files(root) == {}
    text = " ".join(capsys.readouterr().out.split())
    assert "rows that would load │ 24" in text and "accounts (new) │ 2 (2)" in text
    assert "rows rejected │ 6" in text and "delimiter │ comma" in text
    assert "2026-03-01 13:00 .. 2026-03-30 13:23 UTC" in text
    assert "unknown post type 'Story'" in text  # rejects by reason
    assert "must be >= 0 │ 1" in text  # the rule is kept, the row's own value is not


def test_dry_run_of_a_file_nothing_would_load_from_exits_1(capsys, tmp_path):
    export = tmp_path / "bad.csv"
    export.write_text(
        "timestamp;type;category;reach;likes;comments;shares\n"
        "yesterday;image;travel;10;1;1;1\n"
        "1900-01-01;image;travel;10;1;1;1\n",
        encoding="utf-8",
    )

    assert main(["ingest", "csv", str(export), "--dry-run"]) == 1

    captured = capsys.readouterr()
    text = " ".join(captured.out.split())
    assert "delimiter │ semicolon" in text and "rows rejected │ 2" in text
    assert "cannot be read as a date" in text and "is before 2004-01-01" in text
    assert captured.err.strip() == "error: bad.csv: no row would load"
    assert not (tmp_path / "smap" / "rejects").exists()


def test_a_time_column_in_several_formats_loads_each_row_as_read_alone(tmp_path):
    from configs.settings import load_settings
    from ingestion.csv_import import import_posts
    from ingestion.warehouse import open_warehouse

    export = tmp_path / "mixed.csv"
    export.write_text(
        "timestamp,type,category,reach,likes,comments,shares\n"
        "2026-03-01 08:00,image,a,10,1,1,1\n"
        "03/02/2026 09:30,image,b,10,1,1,1\n"  # another format than the first row's
        "2025-11-02 01:30,image,c,10,1,1,1\n"  # ambiguous in New York: first (DST) reading
        "soon,image,d,10,1,1,1\n",
        encoding="utf-8",
    )
    mapping = tmp_path / "m.yaml"
    mapping.write_text("timezone: America/New_York\n", encoding="utf-8")
    warehouse = open_warehouse(load_settings("local"))

    result = import_posts(export, mapping, warehouse, tmp_path / "rejects")

    stamps = warehouse.read("content_posts").set_index("category").created_at
    assert result.rows_loaded == 3 and result.rows_rejected == 1
    assert str(stamps["a"]) == "2026-03-01 13:00:00+00:00"
    assert str(stamps["b"]) == "2026-03-02 14:30:00+00:00"
    assert str(stamps["c"]) == "2025-11-02 05:30:00+00:00"
    rejects = result.rejects_path.read_text(encoding="utf-8")
    assert "cannot be read as a date (got 'soon')" in rejects
