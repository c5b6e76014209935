"""The sentiment task on the quick preset, on both profiles: VADER crowned without labels,
a trained model gated against it, `smap evaluate sentiment --json` with the champion, VADER and
the oracle side by side, and `POST /analyze_sentiment` over the BentoML app (ASGI)."""

from __future__ import annotations

import json

import mlflow
import pandas as pd
import pytest
from starlette.testclient import TestClient

from ingestion.schema import ALL_TABLES
from ingestion.warehouse import open_warehouse
from pipelines import flows
from pipelines.cli import main
from pipelines.training import train
from training.errors import TaskError
from training.evaluate import evaluate
from training.tasks import get_task

pytestmark = pytest.mark.integration


def _unlabel(settings) -> None:
    """The comments as a real export has them: text, no label."""
    warehouse = open_warehouse(settings)
    comments = warehouse.read("comments")
    comments["label"] = ""
    warehouse.write(ALL_TABLES["comments"], comments)


def test_without_labels_vader_is_the_champion_and_answers(any_settings, service_app, monkeypatch):
    settings = any_settings
    flows.simulate(settings)  # raw tables are all sentiment reads: no ETL needed
    _unlabel(settings)

    result = train(settings, "sentiment", trials=1, families=("tfidf_logreg",))

    assert result.decision is not None and result.decision.decision == "first_champion"
    assert "VADER" in result.decision.reason
    version = mlflow.MlflowClient().get_model_version("sentiment", str(result.version))
    assert mlflow.get_run(version.run_id).data.params["family"] == "vader"
    with pytest.raises(TaskError, match="labelled comments"):
        evaluate(settings, get_task("sentiment"))
    monkeypatch.setenv("SMAP_DATA_DIR", str(settings.root))
    monkeypatch.setenv("SMAP_PROFILE", settings.profile)
    monkeypatch.setenv("SMAP_DATABASE", settings.postgres.database)
    monkeypatch.setenv("SMAP_FEAST__PROJECT", settings.feast.project)
    with TestClient(service_app()) as client:
        answer = client.post("/analyze_sentiment", json={"texts": ["I love this 😍", "awful"]})
        assert answer.status_code == 200, answer.text
        body = answer.json()
    assert [p["sentiment"] for p in body["predictions"]] == ["positive", "negative"]
    assert body["lineage"]["model"] == "sentiment"
    assert body["lineage"]["version"] == result.version


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from configs.settings import load_settings

    root = tmp_path_factory.mktemp("sentiment") / "smap"
    settings = load_settings("local", env={"SMAP_DATA_DIR": str(root)})
    flows.simulate(settings)
    result = train(settings, "sentiment", trials=2, families=("tfidf_logreg",))
    return settings, result


def test_a_trained_model_replaces_vader_only_by_beating_it(trained):
    settings, result = trained
    assert result.decision is not None
    assert result.decision.decision == "promoted", result.decision.reason  # over VADER (v1)
    assert result.decision.champion_before == 1
    metrics = result.test_metrics
    assert metrics["macro_f1"] > metrics["vader_macro_f1"]
    assert metrics["macro_f1"] <= metrics["oracle_macro_f1"] + 0.02
    assert metrics["oracle_macro_f1"] < 0.99  # sarcasm: words that mean the opposite


def test_cli_evaluate_prints_champion_vader_and_oracle(trained, monkeypatch, capsys):
    settings, result = trained
    monkeypatch.setenv("SMAP_DATA_DIR", str(settings.root))
    capsys.readouterr()
    assert main(["evaluate", "sentiment", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["model_version"] == result.version
    assert printed["champion_value"] == pytest.approx(result.test_metrics["macro_f1"])
    assert printed["vader_macro_f1"] == pytest.approx(printed["baseline_value"])
    assert printed["oracle_macro_f1"] == pytest.approx(printed["oracle_value"])
    assert set(printed["per_class_f1"]) == {"negative", "neutral", "positive"}


def test_endpoint_answers_with_the_trained_champion_and_refuses_bad_input(
    trained, monkeypatch, service_app
):
    settings, result = trained
    monkeypatch.setenv("SMAP_DATA_DIR", str(settings.root))
    texts = ["so love this 😍", "the vibe is not good", "where is this"]
    with TestClient(service_app()) as client:
        answer = client.post("/analyze_sentiment", json={"texts": texts})
        empty = client.post("/analyze_sentiment", json={"texts": []})
        wrong = client.post("/analyze_sentiment", json={"texts": [3]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [p["sentiment"] for p in body["predictions"]] == ["positive", "negative", "neutral"]
    scores = pd.DataFrame([p["scores"] for p in body["predictions"]])
    assert scores.sum(axis=1).round(6).eq(1.0).all()  # a trained model's probabilities
    assert body["lineage"]["version"] == result.version
    assert empty.status_code == 422 and "texts" in empty.text  # pydantic names the field
    assert wrong.status_code == 422 and "texts" in wrong.text
