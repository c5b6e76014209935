"""The README's main job on the embedded profile, end to end on a tiny dataset."""

import pytest

from pipelines.cli import main

pytestmark = pytest.mark.e2e


def test_demo_runs_the_loop_on_local_defaults(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SMAP_DATA_DIR", str(tmp_path / "data"))
    assert main(["demo"]) == 0
    assert "smap demo" in capsys.readouterr().out
    assert (tmp_path / "data" / "warehouse" / "content_posts.parquet").is_file()
    assert (tmp_path / "data" / "online_store.db").is_file()
    assert (tmp_path / "data" / "feature_repo" / "feature_store.yaml").is_file()
