"""`smap demo` on imported posts: it uses them (no simulation over them) and skips a task
whose inputs are absent, naming the reason and the column that would enable it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ingestion.csv_import import import_posts
from ingestion.warehouse import open_warehouse
from pipelines import flows
from pipelines.cli import main

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _import_page_export(settings, tmp_path) -> pd.DataFrame:
    """A page's posts without hashtags; returns the posts as stored."""
    warehouse = open_warehouse(settings)
    import_posts(
        FIXTURES / "page_export.csv",
        FIXTURES / "page_mapping.yaml",
        warehouse,
        tmp_path / "rejects",
    )
    return warehouse.read("content_posts")


def test_readiness_names_trend_without_hashtags(local_settings, tmp_path):
    _import_page_export(local_settings, tmp_path)

    ready, skipped = flows.ready_tasks(local_settings, ("engagement", "trend"))

    assert ready == ["engagement"]
    assert list(skipped) == ["trend"] and "hashtags column" in skipped["trend"]
    assert flows.has_imported_posts(local_settings)


def test_demo_on_imported_posts_skips_trend_with_the_reason(local_settings, tmp_path, capsys):
    posts = _import_page_export(local_settings, tmp_path)

    assert main(["demo", "--tasks", "trend"]) == 0

    out = capsys.readouterr().out
    skipped = [line for line in out.splitlines() if line.startswith("skipped ")]
    assert skipped == [
        "skipped trend: the data has no hashtag usage to forecast (import a hashtags column)"
    ]
    assert "posts simulated" not in out and "trend model" not in out
    after = open_warehouse(local_settings).read("content_posts")
    pd.testing.assert_frame_equal(after, posts)  # the demo did not simulate over them
