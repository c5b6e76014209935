"""The content classifier on the quick preset (one fast trial): trained, logged, gated,
evaluated next to its oracle; then `classify_content` and `recommend_content` through the
BentoML app over ASGI (no engagement champion: recommendations use the documented proxy)."""

from __future__ import annotations

import json

import mlflow
import pandas as pd
import pytest
from starlette.testclient import TestClient

from analytics import recommend as rec
from configs.settings import load_settings
from ingestion.warehouse import open_warehouse
from pipelines import flows
from pipelines.cli import main
from pipelines.training import train
from training.evaluate import evaluate
from training.tasks import get_task

pytestmark = pytest.mark.integration

FOOD = {"caption": "pasta with sushi and dessert", "hashtags": [], "post_type": "image"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("content") / "smap"
    settings = load_settings("local", env={"SMAP_DATA_DIR": str(root)})
    flows.simulate(settings)
    flows.ingest(settings)
    result = train(settings, "content", trials=1, families=("tfidf_logreg",))
    return settings, result


def test_content_is_trained_logged_gated_and_reported_next_to_its_oracle(trained):
    settings, result = trained
    assert result.decision.decision == "first_champion", result.decision.reason
    assert result.test_metrics["macro_f1"] > 0.85
    run = mlflow.get_run(result.run_id)
    assert run.data.tags["features"] == "content_v1"
    oracle = run.data.metrics["test_oracle_macro_f1"]
    assert result.test_metrics["macro_f1"] < oracle < 0.97  # the Bayes classifier is the bar

    report = evaluate(settings, get_task("content"))
    assert report["model_version"] == result.version
    assert report["champion_value"] == pytest.approx(result.test_metrics["macro_f1"])
    assert report["oracle_value"] == pytest.approx(oracle)
    assert report["baseline_value"] < 0.1  # one category for every post
    assert set(report["per_class_f1"]) == {
        "fashion", "food", "travel", "fitness", "tech", "music", "gaming", "beauty"
    }  # fmt: skip


def test_cli_evaluate_prints_json(trained, monkeypatch, capsys):
    settings, result = trained
    monkeypatch.setenv("SMAP_DATA_DIR", str(settings.root))
    capsys.readouterr()
    assert main(["evaluate", "content", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["metric"] == "macro_f1" and printed["model_version"] == result.version


def test_endpoints_classify_and_recommend_over_http(trained, monkeypatch, service_app):
    settings, result = trained
    monkeypatch.setenv("SMAP_DATA_DIR", str(settings.root))

    platform = rec.read_platform(open_warehouse(settings))
    at = platform.now + pd.Timedelta(seconds=1)
    user = int(platform.posts.user_id.value_counts().index[0])  # the busiest author
    with TestClient(service_app()) as client:
        answer = client.post("/classify_content", json={"posts": [FOOD, {**FOOD, "caption": ""}]})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        first = body["predictions"][0]
        assert first["category"] == "food"
        assert sum(first["probabilities"].values()) == pytest.approx(1.0)
        assert body["lineage"]["version"] == result.version
        assert body["lineage"]["feature_service"] == "content_v1"
        for field, payload in {
            "post_type": {"posts": [{**FOOD, "post_type": "hologram"}]},
            "posts": {"posts": []},
            "hashtags": {"posts": [{**FOOD, "hashtags": ["not a tag"]}]},
        }.items():
            bad = client.post("/classify_content", json=payload)
            assert 400 <= bad.status_code < 500 and field in bad.text, (field, bad.text)

        recs = client.post("/recommend_content", json={"user_id": user, "n": 5})
        assert recs.status_code == 200, recs.text
        body = recs.json()
        assert body["scored_by"].startswith("proxy") and body["lineage"] is None
        assert 0 < len(body["posts"]) <= 5
        following = rec.followed(platform, user, at)
        for post in body["posts"]:
            assert post["category"] in body["interests"]
            assert post["author_id"] != user and post["author_id"] not in following
            assert pd.Timestamp(post["published_at"]) >= at - pd.Timedelta(days=rec.RECENT_DAYS)
        scores = [p["predicted_engagement"] for p in body["posts"]]
        assert scores == sorted(scores, reverse=True)
        too_many = client.post("/recommend_content", json={"user_id": user, "n": 1000})
        assert too_many.status_code == 422 and "n" in too_many.text

        paths = client.get("/docs.json").json()["paths"]
        assert {"/classify_content", "/recommend_content"} <= set(paths)
