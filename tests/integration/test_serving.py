"""The prediction service on a tiny simulated platform (local profile): training/serving skew,
the BentoML app over ASGI, bad input, missing entities, lineage and the prediction log."""

from __future__ import annotations

from datetime import UTC, datetime

import mlflow
import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

from configs.settings import load_settings
from feature_repo.drafts import parse_hashtags
from pipelines import flows
from pipelines.training import train
from serving.features import model_frame
from serving.prediction_log import read_parquet_log
from serving.predictor import Predictor
from serving.schemas import Draft, DraftTemplate
from training.dataset import build_training_set
from training.packaging import input_frame
from training.tasks import get_task

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    """Engagement trained on engagement_v3; the online store materialized up to a day T of
    the test window, so test posts of day T see online what training saw offline."""
    root = tmp_path_factory.mktemp("serving") / "smap"
    settings = load_settings("local", env={"SMAP_DATA_DIR": str(root)})
    flows.simulate(settings)
    flows.ingest(settings)
    flows.apply_features(settings)
    trained = train(settings, "engagement", trials=2, families=("linear", "lightgbm"))
    ts = build_training_set(settings, get_task("engagement"))
    day = ts.part("test").event_timestamp.min().normalize() + pd.Timedelta(days=1)
    flows.materialize_features(settings, end=day.to_pydatetime())
    return settings, trained, ts, day


def _drafts(rows: pd.DataFrame) -> list[Draft]:
    return [
        Draft(
            user_id=int(r.user_id),
            post_type=r.post_type,
            category=r.category,
            hashtags=parse_hashtags(r.hashtags),
            caption=r.caption,
            planned_at=datetime.fromtimestamp(int(r.posted_at), UTC),
            is_paid=bool(r.is_paid),
            platform=r.platform,
        )
        for r in rows.itertuples()
    ]


def test_served_vector_and_prediction_equal_training(platform):
    settings, trained, ts, day = platform
    frame = ts.frame
    rows = frame[
        (frame.event_timestamp >= day) & (frame.event_timestamp < day + pd.Timedelta(days=1))
    ]
    assert len(rows) >= 5
    predictor = Predictor(settings, background=False)
    champion = predictor.champion("engagement", draft=True)
    assert champion.feature_service == "engagement_v3" and champion.version == trained.version
    drafts = _drafts(rows)
    request = predictor._draft_rows(drafts, [d.planned_at for d in drafts])
    served = model_frame(predictor.online.fetch(champion.feature_service, request), ts.features)
    expected = rows[ts.features].reset_index(drop=True)
    for name in ts.features:
        if name in ts.categorical:
            assert served[name].astype(str).tolist() == expected[name].astype(str).tolist(), name
        else:
            np.testing.assert_allclose(
                served[name].astype(float), expected[name].astype(float), rtol=1e-9, err_msg=name
            )
    offline = mlflow.pyfunc.load_model("models:/engagement@champion").unwrap_python_model()
    want = offline.predict_frame(input_frame(rows, ts.features, ts.categorical))
    answer = predictor.predict_engagement(drafts, "skew")
    np.testing.assert_allclose([p.engagement_rate for p in answer.predictions], want, rtol=1e-9)
    assert all(p.missing_features == [] for p in answer.predictions)

    # best posting time looks the draft up once and varies the hour: the same answers as
    # every hour looked up in full
    template = DraftTemplate(**drafts[0].model_dump(exclude={"planned_at"}))
    best = predictor.best_posting_time(template, "best", start=day.to_pydatetime())
    hours = [s.planned_at for s in best.slots]
    full = predictor.predict_engagement(
        [Draft(**template.model_dump(), planned_at=h) for h in hours], "full"
    )
    np.testing.assert_allclose(
        [s.engagement_rate for s in best.slots],
        [p.engagement_rate for p in full.predictions],
        rtol=1e-12,
    )
    assert len({round(s.engagement_rate, 12) for s in best.slots}) > 1  # the hour matters
    top = max(s.engagement_rate for s in best.slots)
    tied = [s for s in best.slots if top - s.engagement_rate < best.resolution]
    assert best.tied_slots == len(tied)  # ties are the slots within the answer's resolution
    assert all(s.tied_with_best == (len(tied) > 1 and s in tied) for s in best.slots)
    predictor.close()


DRAFT = {
    "user_id": 1,
    "post_type": "video",
    "category": "food",
    "hashtags": ["#no_such_tag"],
    "planned_at": "2026-06-01T12:00:00Z",
}


def test_http_app_answers_with_lineage_validates_and_logs(platform, monkeypatch, service_app):
    settings, trained, _ts, _day = platform
    monkeypatch.setenv("SMAP_DATA_DIR", str(settings.root))
    monkeypatch.setenv("SMAP_API_KEY", "k")

    key = {"x-api-key": "k"}
    with TestClient(service_app()) as client:
        assert client.get("/healthz").status_code == 200
        assert client.post("/predict_engagement", json={"drafts": [DRAFT]}).status_code == 401

        ok = client.post("/predict_engagement", json={"drafts": [DRAFT] * 3}, headers=key)
        assert ok.status_code == 200, ok.text
        body = ok.json()
        assert body["lineage"]["version"] == trained.version
        assert body["lineage"]["run_id"] == trained.run_id
        assert body["lineage"]["feature_service"] == "engagement_v3"
        assert body["lineage"]["request_id"] == ok.headers["x-request-id"]
        assert body["predictions"][0]["missing_features"] == ["hashtag:no_such_tag"]
        for answered in body["predictions"]:  # the champion's 90% conformal interval
            interval = answered["interval"]
            assert interval["level"] == 0.9
            assert 0 <= interval["low"] <= answered["engagement_rate"] <= interval["high"]
            assert interval["high"] > interval["low"]
        generic = client.post(
            "/predict", json={"task": "engagement", "drafts": [DRAFT]}, headers=key
        )
        assert generic.json()["predictions"][0]["interval"] == interval  # same draft, same bounds

        unknown = client.post(
            "/predict_engagement", json={"drafts": [{**DRAFT, "user_id": 10**9}]}, headers=key
        )
        assert unknown.status_code == 200
        assert f"author:{10**9}" in unknown.json()["predictions"][0]["missing_features"]

        best = client.post(
            "/best_posting_time",
            json={"draft": {k: v for k, v in DRAFT.items() if k != "planned_at"}},
            headers=key,
        )
        assert best.status_code == 200 and len(best.json()["slots"]) == 168
        assert all(
            s["interval"]["low"] <= s["engagement_rate"] <= s["interval"]["high"]
            for s in best.json()["slots"]
        )
        assert len(best.json()["best"]) == 3

        bad = {
            "post_type": {"drafts": [{**DRAFT, "post_type": "hologram"}]},
            "user_id": {"drafts": [{**DRAFT, "user_id": "abc"}]},
            "drafts": {"drafts": []},
        }
        for field, payload in bad.items():
            answer = client.post("/predict_engagement", json=payload, headers=key)
            assert answer.status_code == 422, (field, answer.text)
            assert field in str(answer.json()["detail"]), field
        oversize = client.post("/predict_engagement", json={"drafts": [DRAFT] * 257}, headers=key)
        assert oversize.status_code == 422

        churn = client.post("/predict_churn", json={"user_ids": [1]}, headers=key)
        assert churn.status_code == 503 and "churn" in churn.json()["error"]

        meta = client.get("/metadata", headers=key).json()
        tasks = {t["task"]: t for t in meta["tasks"]}
        assert tasks["engagement"]["version"] == trained.version and not tasks["churn"]["serving"]
        assert tasks["engagement"]["training_window"]["test_end"]
    # shutdown flushed the log: one row per prediction (3 + 1 + 1 + 168)
    logged = read_parquet_log(settings.root / "predictions")
    logged = logged[~logged.request_id.isin(["skew", "best", "full"])]  # skew test rows
    assert (logged.task == "engagement").sum() == 173
    assert logged.feature_service.eq("engagement_v3").all()


def test_features_passed_in_score_as_the_lookup_does(platform, monkeypatch, service_app):
    """`/predict_features` takes the vector the service would have looked up and gives the
    same score; a record missing a feature or naming an unknown one is a 422 naming it."""
    settings, trained, ts, day = platform
    monkeypatch.setenv("SMAP_DATA_DIR", str(settings.root))
    frame = ts.frame
    next_day = day + pd.Timedelta(days=1)
    rows = frame[(frame.event_timestamp >= day) & (frame.event_timestamp < next_day)].head(4)
    with TestClient(service_app()) as client:
        meta = client.get("/metadata").json()
        features = next(t for t in meta["tasks"] if t["task"] == "engagement")["features"]
        assert sorted(features) == sorted(ts.features)
        drafts = [d.model_dump(mode="json") for d in _drafts(rows)]
        looked_up = client.post("/predict_engagement", json={"drafts": drafts})
        assert looked_up.status_code == 200, looked_up.text
        records = [
            {k: (None if v is None or v != v else v) for k, v in r.items()}
            for r in rows[features].to_dict(orient="records")
        ]
        answer = client.post("/predict_features", json={"task": "engagement", "records": records})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["lineage"]["version"] == trained.version
        np.testing.assert_allclose(
            body["predictions"],
            [p["engagement_rate"] for p in looked_up.json()["predictions"]],
            rtol=1e-9,
        )
        short = [{k: v for k, v in records[0].items() if k != features[0]}]
        bad = client.post("/predict_features", json={"task": "engagement", "records": short})
        assert bad.status_code == 422 and features[0] in bad.json()["error"], bad.text
        extra = [{**records[0], "shoe_size": 42}]
        bad = client.post("/predict_features", json={"task": "engagement", "records": extra})
        assert bad.status_code == 422 and "shoe_size" in bad.json()["error"], bad.text
        bad = client.post("/predict_features", json={"task": "weather", "records": records})
        assert bad.status_code == 422 and "task" in bad.text


def test_registered_model_loads_where_smap_is_not_importable(platform, tmp_path):
    """The model carries the `training` modules it unpickles with (`code_paths`): another
    folder, a Python where the checkout is not on the path, still loads and predicts it."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    settings, trained, ts, _day = platform
    rows = ts.part("test").head(20)
    frame = input_frame(rows, ts.features, ts.categorical)
    frame.to_parquet(tmp_path / "rows.parquet")
    root = str(Path(__file__).resolve().parents[2])
    script = f"""
import json, sys
sys.path = [p for p in sys.path if p not in ({root!r}, "")]
try:
    import training
    sys.exit("smap's training package is importable: the test proves nothing")
except ModuleNotFoundError:
    pass
import mlflow, pandas as pd
mlflow.set_tracking_uri({settings.mlflow_tracking_uri!r})
model = mlflow.pyfunc.load_model("models:/engagement/{trained.version}")
print(json.dumps(model.predict(pd.read_parquet("rows.parquet")).tolist()))
"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    here = mlflow.pyfunc.load_model(f"models:/engagement/{trained.version}")
    np.testing.assert_allclose(loaded, here.predict(frame), rtol=1e-12)
