"""The ALS recommender on both profiles (quick preset): trained, logged as a pyfunc,
registered and gated against popularity on the held-out likes; evaluated next to the oracle;
a version that ranks worse than popularity is refused; `recommend_content` serves the
champion over ASGI."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

from configs.settings import load_settings
from ingestion.warehouse import open_warehouse
from pipelines import flows
from pipelines import recommend as recommend_flow
from pipelines.cli import main
from training import recommender
from training.registry import promote
from training.tasks.recommendation import TASK
from training.tracking import register_version, use_tracking

pytestmark = pytest.mark.integration


def _trained(settings):
    flows.simulate(settings)
    return settings, recommend_flow.train(settings, max_queries=400)


@pytest.fixture(scope="module")
def local_trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("recommend") / "smap"
    return _trained(load_settings("local", env={"SMAP_DATA_DIR": str(root)}))


@pytest.fixture(scope="module")
def services_trained(module_services_settings):
    return _trained(module_services_settings)


@pytest.fixture(params=["local", "services"])
def trained(request: pytest.FixtureRequest):
    return request.getfixturevalue(f"{request.param}_trained")


def _by_method(report) -> dict[str, dict[str, float]]:
    return {row["method"]: row for row in report["methods"]}


def test_recommender_is_registered_gated_and_beats_popularity(trained):
    settings, report = trained
    assert report["decision"] == "first_champion", report["reason"]
    table = _by_method(report)
    for metric in ("hit_rate_at_10", "ndcg_at_10"):
        assert table["recommender"][metric] > 1.2 * table["popularity"][metric], table
        assert table["oracle"][metric] > table["popularity"][metric]

    use_tracking(settings)
    model = mlflow.pyfunc.load_model(f"models:/{TASK.name}@champion")
    assert model.metadata.run_id == report["run_id"]
    data = recommender.read_interactions(open_warehouse(settings))
    frame, _ = recommender.Pools(data).frame(int(data.posts.user_id.iloc[-1]), data.now.value)
    scores = model.predict(frame.drop(columns=["post_id"]))
    assert len(scores) == len(frame) and np.isfinite(scores).all()

    again = recommend_flow.evaluate_models(settings, max_queries=400)
    assert again["champion_version"] == report["version"]
    assert _by_method(again) == table  # the same held-out sample, the same model


def test_a_version_below_popularity_is_refused(local_trained):
    settings, report = local_trained
    client = use_tracking(settings)
    champion = mlflow.pyfunc.load_model(f"models:/{TASK.name}@champion").unwrap_python_model()
    upside_down = recommender.AffinityModel(champion.factors, -champion.coef, champion.params)
    mlflow.set_experiment("recommendation-test")
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="model", python_model=upside_down, pip_requirements=recommender.requirements()
        )
    version = register_version(info.model_uri, TASK.name, tags={})
    data = recommender.read_interactions(open_warehouse(settings))
    days = recommender.split_days(data)
    holdout = recommender.ranking_frame(data, days["test"], days["end"], 400)
    decision = promote(
        client,
        open_warehouse(settings),
        TASK,
        version,
        holdout,
        recommender.ranking_scorer,
        settings.training.promote_margin,
    )
    assert decision.decision == "below_baseline", decision.reason
    assert decision.champion_after == report["version"]


def test_cli_evaluate_json_and_recommend_content_serve_the_champion(
    local_trained, monkeypatch, capsys, service_app
):
    settings, report = local_trained
    monkeypatch.setenv("SMAP_DATA_DIR", str(settings.root))
    capsys.readouterr()
    assert main(["recommend", "--evaluate", "--json", "--queries", "400"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [row["method"] for row in printed["methods"]] == [
        "popularity", "als_alone", "recommender", "oracle"
    ]  # fmt: skip
    assert set(printed["methods"][0]) == {"method", "hit_rate_at_10", "ndcg_at_10"}

    flows.ingest(settings)
    posts = open_warehouse(settings).read("content_posts")
    now = posts.created_at.max()
    user = int(posts.user_id.value_counts().index[0])
    with TestClient(service_app()) as client:
        answer = client.post("/recommend_content", json={"user_id": user, "n": 5})
        assert answer.status_code == 200, answer.text
        body = answer.json()
    assert body["scored_by"] == f"recommendation champion v{report['version']}"
    assert body["lineage"]["model"] == TASK.name
    assert body["lineage"]["version"] == report["version"]
    assert len(body["posts"]) == 5
    scores = [p["score"] for p in body["posts"]]
    assert scores == sorted(scores, reverse=True)
    for post in body["posts"]:
        assert post["author_id"] != user
        published = pd.Timestamp(post["published_at"])
        assert now - pd.Timedelta(days=recommender.WINDOW_DAYS) <= published <= now
