"""Serving rules, request bounds, model inputs and the prediction log, without a server."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from pydantic import TypeAdapter, ValidationError
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from feature_repo.drafts import draft_keys, parse_hashtags
from feature_repo.feature_views import author_affinity, draft_hashtags
from serving import rules
from serving.features import AUTHOR_DEFAULTS, draft_rows, missing_per_row, model_frame
from serving.prediction_log import ParquetParts, PredictionLog, read_parquet_log
from serving.schemas import MAX_BATCH, Draft, Drafts
from serving.service import ApiKeyMiddleware

DRAFT = {
    "user_id": 3,
    "post_type": "video",
    "category": "Food",
    "hashtags": ["#Pasta", "food_2"],
    "planned_at": "2026-03-02T10:30:00",
}


def test_churn_bands_and_virality_label_follow_the_thresholds():
    assert [rules.churn_band(r) for r in (0.05, 0.3, 0.59, 0.6, 1.0)] == [
        "low",
        "medium",
        "medium",
        "high",
        "high",
    ]
    assert rules.is_viral(0.31, 0.3) and not rules.is_viral(0.29, 0.3)
    assert rules.is_viral(0.5, None)


def test_posting_candidates_are_the_next_168_whole_hours_and_best_three_are_ranked():
    hours = rules.candidate_hours(datetime(2026, 3, 2, 10, 30, tzinfo=UTC))
    assert len(hours) == 168 and hours[0] == datetime(2026, 3, 2, 11, tzinfo=UTC)
    assert rules.best_slots(np.array([0.1, 0.5, 0.3, 0.5, 0.2])) == [1, 3, 2]


def test_slots_within_the_answers_resolution_of_the_best_are_ties():
    rates = np.array([0.06104, 0.0610, 0.06095, 0.0608, 0.02])
    assert rules.ties_with_best(rates) == [True, True, True, False, False]
    assert rules.ties_with_best(np.array([0.07, 0.06])) == [True, False]  # a clear best
    assert rules.ties_with_best(np.array([])) == []


def test_draft_bounds_name_the_field():
    drafts = TypeAdapter(Drafts)
    assert drafts.validate_python([DRAFT])[0].category == "food"
    cases = {
        "post_type": {**DRAFT, "post_type": "hologram"},
        "user_id": {**DRAFT, "user_id": "abc"},
        "planned_at": {**DRAFT, "planned_at": "yesterday"},
        "caption": {**DRAFT, "caption": "x" * 5000},
        "hashtags": {**DRAFT, "hashtags": ["#ok", "not a tag"]},
    }
    for field, bad in cases.items():
        with pytest.raises(ValidationError) as err:
            drafts.validate_python([bad])
        assert field in {str(p) for e in err.value.errors() for p in e["loc"]}
    with pytest.raises(ValidationError):
        drafts.validate_python([])
    with pytest.raises(ValidationError):
        drafts.validate_python([DRAFT] * (MAX_BATCH + 1))


def test_draft_rows_match_the_training_keys():
    draft = Draft.model_validate(DRAFT)
    rows = draft_rows([3], ["video"], ["food"], [draft.hashtags], [""], [draft.planned_at], [True])
    assert rows["hashtags"] == ["#pasta #food_2"]
    assert rows["tag_1"] == ["pasta"] and rows["tag_2"] == ["food_2"] and rows["tag_3"] == [""]
    assert rows["post_category"] == ["food"] and rows["is_paid"] == [1]
    # training builds the same keys from the stored hashtag text of a published post
    assert draft_keys(["food"], ["#pasta #food_2"]) == {k: rows[k] for k in draft_keys([""], [""])}
    assert parse_hashtags("#A, b;#a c") == ["a", "b", "c"]


def test_on_demand_aggregates_skip_unknown_tags_online_and_offline():
    n = float("nan")
    inputs = {f"tag{i}_momentum": [None, n] for i in range(1, 6)}
    inputs |= {f"tag{i}_popularity": [None, n] for i in range(1, 6)}
    inputs["tag1_momentum"], inputs["tag1_popularity"] = [2.0, n], [10.0, n]
    inputs["tag2_momentum"], inputs["tag2_popularity"] = [-1.0, n], [20.0, n]
    out = draft_hashtags(inputs)
    assert out["hashtag_momentum_mean"] == [0.5, 0.0]
    assert out["hashtag_momentum_max"] == [2.0, 0.0]
    assert out["hashtag_popularity_mean"] == [15.0, 0.0]
    assert out["hashtags_known"] == [2, 0]
    aff = author_affinity({"posts_all": [4, None, 3], "category_posts": [1, None, n]})
    assert aff["author_prior_posts"] == [4, 0, 3]
    assert aff["author_category_share"][0] == 0.25 and aff["author_category_share"][2] == 0
    assert np.isnan(aff["author_category_share"][1])


def test_unknown_author_and_tags_get_defaults_and_are_listed():
    rows = {"user_id": [1, 2], "tag_1": ["a", "b"], "tag_2": ["", "c"]}
    online = {
        "followers": [10, None],
        "engagement_rate_28d": [0.1, None],
        "tag1_momentum": [0.2, None],
        "tag2_momentum": [None, 0.5],
    }
    assert missing_per_row(online, rows) == [[], ["author:2", "hashtag:b"]]
    frame = model_frame(online, ["followers", "engagement_rate_28d"])
    assert frame.followers.tolist() == [10, AUTHOR_DEFAULTS["followers"]]
    assert np.isnan(float(frame.engagement_rate_28d[1]))


def _rows(n: int) -> list[tuple]:
    now = datetime.now(UTC)
    return [("r", now, "engagement", "{}", "{}", 0.1, "engagement", 1, "run", "fs", "champion")] * n


def test_prediction_log_writes_parts_drops_past_the_bound_and_retries(tmp_path):
    folder = tmp_path / "predictions"
    log = PredictionLog(ParquetParts(folder), max_rows=5, batch_rows=2)
    log.add(_rows(7))
    assert log.dropped == 2 and log.pending() == 5
    assert log.flush() == 5
    assert len(read_parquet_log(folder)) == 5 and len(list(folder.glob("part-*.parquet"))) == 3

    calls = []

    def broken(rows):
        calls.append(len(rows))
        raise OSError("disk gone")

    failing = PredictionLog(broken, max_rows=10, batch_rows=10)
    failing.add(_rows(3))
    assert failing.flush() == 0 and failing.pending() == 3 and failing.failed_flushes == 1


def test_prediction_log_flushes_on_close(tmp_path):
    log = PredictionLog(ParquetParts(tmp_path), flush_seconds=60).start()
    log.add(_rows(4))
    log.close()
    assert len(read_parquet_log(tmp_path)) == 4 and log.written == 4


def test_api_key_is_required_except_on_health():
    app = Starlette(
        routes=[
            Route("/healthz", lambda r: PlainTextResponse("ok")),
            Route("/predict", lambda r: PlainTextResponse("yes"), methods=["POST"]),
        ]
    )
    client = TestClient(ApiKeyMiddleware(app, key="s3cret"))
    assert client.get("/healthz").status_code == 200
    denied = client.post("/predict")
    assert denied.status_code == 401 and "x-api-key" in denied.json()["error"]
    assert client.post("/predict", headers={"x-api-key": "wrong"}).status_code == 401
    assert client.post("/predict", headers={"x-api-key": "s3cret"}).text == "yes"
    assert client.post("/predict", headers={"authorization": "Bearer s3cret"}).status_code == 200


def test_feature_frame_keeps_row_order():
    frame = model_frame({"followers": [1, 2, 3]}, ["followers"])
    pd.testing.assert_series_equal(frame.followers, pd.Series([1, 2, 3], name="followers"))


@pytest.mark.parametrize("scale", [False, True])
def test_encoded_matrix_equals_the_training_encoder_on_a_frame(scale):
    from serving.features import encode, feature_columns
    from training.families import FeatureEncoder
    from training.packaging import input_frame

    features = ["followers", "engagement_rate_28d", "content_type", "posting_hour"]
    train = pd.DataFrame(
        {
            "followers": [10.0, 20.0, np.nan, 5.0],
            "engagement_rate_28d": [0.1, np.nan, 0.3, 0.2],
            "content_type": ["video", "image", "video", "text"],
            "posting_hour": [1, 5, 7, 23],
        }
    )
    encoder = FeatureEncoder.fit(train, features, ["content_type"], scale=scale)
    online = {  # author 2 unknown (defaults), an unseen category, a missing rate
        "followers": [7, None, 3],
        "engagement_rate_28d": [None, None, 0.25],
        "content_type": ["image", "reel", "video"],
        "posting_hour": [3, 4, 5],
    }
    columns = feature_columns(online, features)
    frame = input_frame(model_frame(online, features), features, ["content_type"])
    np.testing.assert_array_equal(encode(columns, features, encoder), encoder.transform(frame))
    assert columns[0] == [7, AUTHOR_DEFAULTS["followers"], 3]
