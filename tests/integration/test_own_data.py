"""A user's own export: import it, run the ETL, apply features and train on it."""

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from configs.settings import load_settings
from ingestion.simulator import simulate
from pipelines.cli import main

pytestmark = pytest.mark.integration


def _export(tmp_path, with_hashtags: bool = True):
    """A platform export in our own column names, as a creator tool would write it."""
    tables = simulate("quick", seed=11)
    posts = tables["content_posts"]
    names = tables["users"].set_index("user_id").username
    export = pd.DataFrame(
        {
            "timestamp": posts.created_at.dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "type": posts.post_type,
            "category": posts.category,
            "reach": posts.reach,
            "likes": posts.likes,
            "comments": posts.comments,
            "shares": posts.shares,
            "saves": posts.saves,
            "account": posts.user_id.map(names),
            "text": posts.caption,
        }
    )
    if with_hashtags:
        export["hashtags"] = posts.hashtags
    path = tmp_path / "export.csv"
    export.to_csv(path, index=False)
    return path


def test_engagement_trains_on_an_imported_export(tmp_path, monkeypatch):
    monkeypatch.setenv("SMAP_DATA_DIR", str(tmp_path / "smap"))
    path = _export(tmp_path)
    assert main(["ingest", "csv", str(path)]) == 0
    assert main(["ingest"]) == 0
    assert main(["features", "apply"]) == 0
    assert main(["train", "engagement", "--trials", "2", "--families", "linear,lightgbm"]) == 0
    load_settings()  # same SMAP_DATA_DIR: the registry the CLI wrote
    from training.tracking import use_tracking

    client = use_tracking(load_settings())
    assert client.get_model_version_by_alias("engagement", "champion").version is not None


def test_task_without_its_data_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SMAP_DATA_DIR", str(tmp_path / "smap"))
    path = _export(tmp_path, with_hashtags=False)
    assert main(["ingest", "csv", str(path)]) == 0
    assert main(["ingest"]) == 0
    assert main(["features", "apply"]) == 0
    capsys.readouterr()
    assert main(["train", "trend", "--trials", "1", "--families", "lightgbm"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert (
        err == "error: trend: the data has no hashtag usage to forecast (import a hashtags column)"
    )
    # this test's registry, not whichever one an earlier test left as mlflow's current URI
    settings = load_settings("local", env={"SMAP_DATA_DIR": str(tmp_path / "smap")})
    uri = settings.mlflow_tracking_uri
    assert MlflowClient(uri, registry_uri=uri).search_registered_models() == []
