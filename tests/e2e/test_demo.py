"""The README's main job on the embedded profile, end to end on a tiny dataset."""

import pytest

from pipelines.cli import main

pytestmark = pytest.mark.e2e


def test_demo_trains_and_crowns_an_engagement_champion(tmp_path, monkeypatch, capsys):
    import mlflow

    from configs.settings import load_settings
    from training.tracking import use_tracking

    monkeypatch.setenv("SMAP_DATA_DIR", str(tmp_path / "data"))
    assert main(["demo"]) == 0
    assert "smap demo" in capsys.readouterr().out
    for made in (
        "warehouse/content_posts.parquet",
        "online_store.db",
        "feature_repo/feature_store.yaml",
    ):
        assert (tmp_path / "data" / made).is_file()
    use_tracking(load_settings())
    model = mlflow.pyfunc.load_model("models:/engagement@champion")
    assert model.metadata.signature is not None
    assert main(["evaluate", "engagement", "--json"]) == 0
    assert '"oracle_value"' in capsys.readouterr().out
