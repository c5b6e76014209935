"""Hashtag forecasts served online (trend_v2, local profile): the inputs the service assembles
equal the training rows, which equal what the label query computed before trend_v2; the served
forecast equals the registered model's; bounds hold the point forecast; bad input is a 422,
an unknown hashtag is listed as missing."""

from __future__ import annotations

import math
from dataclasses import replace

import mlflow
import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

from configs.settings import load_settings
from ingestion.warehouse import open_warehouse
from pipelines import flows
from pipelines.training import train
from serving.features import ForecastPlan
from serving.prediction_log import read_parquet_log
from serving.predictor import Predictor
from training.packaging import input_frame
from training.snapshot import training_set
from training.tasks import get_task

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    """Trend trained on trend_v2 (one LightGBM trial); the online store materialized up to a
    day T of the test window, so hashtags forecast from T see what training saw."""
    root = tmp_path_factory.mktemp("trend") / "smap"
    settings = load_settings("local", env={"SMAP_DATA_DIR": str(root)})
    flows.simulate(settings)
    flows.ingest(settings)
    flows.apply_features(settings)
    trained = train(settings, "trend", trials=1, families=("lightgbm",))
    ts = training_set(settings, get_task("trend")).training_set
    # the stored set keeps no text: the hashtag's text back from its id
    tags = open_warehouse(settings).read("hashtags").set_index("hashtag_id").tag
    ts = replace(ts, frame=ts.frame.assign(tag=ts.frame.hashtag_id.map(tags)))
    day = ts.part("test").event_timestamp.min() + pd.Timedelta(days=2)
    flows.materialize_features(settings, end=(day + pd.Timedelta(hours=1)).to_pydatetime())
    return settings, trained, ts, day


def _old_inputs(settings, rows: pd.DataFrame) -> pd.DataFrame:
    """The inputs as trend_v1's label query computed them from `hashtag_daily`."""
    daily = open_warehouse(settings).read("hashtag_daily", columns=["tag", "date", "usage"])
    usage = daily.pivot(index="tag", columns="date", values="usage").sort_index(axis=1)
    dates = list(usage.columns)
    out = []
    for r in rows.itertuples():
        d = dates.index(r.event_timestamp.tz_localize(None) - pd.Timedelta(days=1))
        series, h = usage.loc[r.tag].to_numpy(dtype=float), int(r.horizon)
        back = 7 * math.ceil(h / 7)
        out.append(
            {
                "target_dow": (dates[d] + pd.Timedelta(days=h)).dayofweek,
                "seasonal_naive": series[d + h - back],
                "same_dow_mean_4w": np.mean([series[d + h - back - 7 * k] for k in range(4)]),
                **{f"lag_{k}": series[d - k + 1] for k in range(1, 29)},
            }
        )
    return pd.DataFrame(out)


def test_served_inputs_and_forecast_equal_training(platform):
    settings, trained, ts, day = platform
    rows = ts.frame[ts.frame.event_timestamp == day].reset_index(drop=True)
    assert len(rows) >= 20 and set(rows.horizon) == {1, 7, 14, 30}
    assert ts.task.feature_service == "trend_v2"

    # trend_v2 computes exactly what the label query computed before it
    old = _old_inputs(settings, rows.head(40))
    for name in old.columns:
        np.testing.assert_array_equal(rows.head(40)[name].astype(float), old[name], err_msg=name)

    predictor = Predictor(settings, background=False)
    champion = predictor.champion("trend")
    assert champion.feature_service == "trend_v2" and champion.version == trained.version
    tags = sorted(set(rows.tag))
    plan = ForecastPlan(tags, 30, None, day.date())
    online = predictor.online.fetch_expanded("trend_v2", {"tag": tags}, plan)
    served = pd.DataFrame({name: online[name] for name in ["tag", *ts.features]})
    assert set(plan.days) == {(day + pd.Timedelta(days=h - 1)).date() for h in range(1, 31)}
    merged = rows.merge(served, on=["tag", "horizon"], suffixes=("", "_served"))
    assert len(merged) == len(rows)
    for name in ts.features:
        if name != "horizon":
            np.testing.assert_array_equal(
                merged[f"{name}_served"].astype(float), merged[name].astype(float), err_msg=name
            )

    # one lookup gives what a lookup of every row with its request data gives
    full = predictor.online.fetch(
        "trend_v2",
        {"tag": online["tag"], "horizon": online["horizon"], "origin_day": online["origin_day"]},
    )
    for name in ts.features:
        assert full[name] == online[name], name

    answer = predictor.forecast_trend(tags, 30, None, "skew")
    offline = mlflow.pyfunc.load_model("models:/trend@champion").unwrap_python_model()
    want = offline.predict_frame(input_frame(rows, ts.features, ts.categorical))
    by_key = {(f.hashtag, d.horizon): d.usage for f in answer.forecasts for d in f.days}
    got = [by_key[(t, h)] for t, h in zip(rows.tag, rows.horizon, strict=True)]
    np.testing.assert_allclose(got, want, rtol=1e-9)
    assert all(f.missing_features == [] for f in answer.forecasts)
    assert {f.history_until for f in answer.forecasts} == {(day - pd.Timedelta(days=1)).date()}

    # intervals: calibrated per trained horizon, always around the point forecast
    assert sorted(champion.model.intervals) == [1, 7, 14, 30]
    assert answer.interval_level == pytest.approx(0.9)
    for f in answer.forecasts:
        for d in f.days:
            assert d.lower is not None and d.lower <= d.usage <= d.upper, (f.hashtag, d)
    width = {d.horizon: d.upper - d.lower for d in answer.forecasts[0].days}
    assert width[30] > 0
    predictor.close()


def test_http_forecast_validates_defaults_unknown_tags_and_logs(platform, monkeypatch, service_app):
    settings, trained, ts, day = platform
    monkeypatch.setenv("SMAP_DATA_DIR", str(settings.root))
    tag = str(ts.frame.tag.iloc[0])
    with TestClient(service_app()) as client:
        ok = client.post(
            "/forecast_trend",
            json={"hashtags": [f"#{tag}", "#No_Such_Tag"], "horizon": 7},
            headers={"x-request-id": "trend-1"},
        )
        assert ok.status_code == 200, ok.text
        body = ok.json()
        assert body["lineage"] == {
            "model": "trend",
            "version": trained.version,
            "run_id": trained.run_id,
            "feature_service": "trend_v2",
            "request_id": "trend-1",
            "arm": "champion",
        }
        known, unknown = body["forecasts"]
        assert known["hashtag"] == tag and known["missing_features"] == []
        assert [d["horizon"] for d in known["days"]] == list(range(1, 8))
        assert known["days"][0]["day"] == str(day.date())
        # no history: forecast from zero usage, listed as missing, starting today by default
        assert unknown["hashtag"] == "no_such_tag" and unknown["history_until"] is None
        assert unknown["missing_features"] == ["hashtag:no_such_tag"]
        assert len(unknown["days"]) == 7
        assert all(d["lower"] <= d["usage"] <= d["upper"] for d in unknown["days"])

        later = str((day + pd.Timedelta(days=3)).date())
        shifted = client.post(
            "/forecast_trend", json={"hashtags": [tag], "horizon": 2, "start": later}
        )
        assert shifted.status_code == 200, shifted.text
        assert [d["horizon"] for d in shifted.json()["forecasts"][0]["days"]] == [4, 5]
        past = str((day - pd.Timedelta(days=1)).date())
        early = client.post(
            "/forecast_trend", json={"hashtags": [tag], "horizon": 2, "start": past}
        )
        assert early.status_code == 422 and "start" in early.json()["error"], early.text

        bad = {
            "horizon": {"hashtags": [tag], "horizon": 0},
            "hashtags": {"hashtags": [], "horizon": 7},
        }
        for field, payload in bad.items():
            answer = client.post("/forecast_trend", json=payload)
            assert answer.status_code == 422, (field, answer.text)
            assert field in str(answer.json()["detail"]), field
        too_far = client.post("/forecast_trend", json={"hashtags": [tag], "horizon": 31})
        assert too_far.status_code == 422 and "horizon" in str(too_far.json()["detail"])
        too_many = client.post(
            "/forecast_trend", json={"hashtags": [f"#t{i}" for i in range(51)], "horizon": 1}
        )
        assert too_many.status_code == 422
    logged = read_parquet_log(settings.root / "predictions")
    logged = logged[logged.request_id == "trend-1"]
    assert len(logged) == 14 and logged.task.eq("trend").all()
    assert logged.feature_service.eq("trend_v2").all()
