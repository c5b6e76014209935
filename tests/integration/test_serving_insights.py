"""`top_influencers` and `user_segment` through the BentoML app over ASGI (local profile, no
champion trained): answers with the table's computed_at, 4xx naming the field, 503 while a
table is not built, the API key, and both paths in the served OpenAPI schema."""

from __future__ import annotations

import pandas as pd
import pytest
from starlette.testclient import TestClient

from ingestion.schema import INSIGHT_TABLES, SEGMENT_TABLES
from ingestion.warehouse import open_warehouse

pytestmark = pytest.mark.integration

RANKED = pd.Timestamp("2026-07-01 05:00", tz="UTC")


def _network() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": [1, 2, 3],
            "username": ["ana", "bo", "cy"],
            "account_type": ["creator", "brand", "personal"],
            "category": ["food", "tech", "food"],
            "followers": [90, 80, 10],
            "following": [3, 4, 5],
            "engagement_received": [900, 700, 50],
            "pagerank": [0.5, 0.3, 0.2],
            "rank": [1, 2, 3],
            "category_rank": [1, 1, 2],
            "computed_at": RANKED,
        }
    )


def _user_segments() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": [1],
            "segment": [0],
            "segment_label": ["power users"],
            "assigned_at": RANKED,
            "model_version": 1,
        }
    )


def test_analytics_endpoints_over_http(local_settings, monkeypatch, service_app):
    monkeypatch.setenv("SMAP_DATA_DIR", str(local_settings.root))
    monkeypatch.setenv("SMAP_API_KEY", "k")
    warehouse = open_warehouse(local_settings)
    warehouse.write(INSIGHT_TABLES["influencer_network"], _network())

    key = {"x-api-key": "k"}
    with TestClient(service_app()) as client:
        assert client.post("/top_influencers", json={}).status_code == 401

        top = client.post("/top_influencers", json={"category": "Food", "n": 5}, headers=key)
        assert top.status_code == 200, top.text
        body = top.json()
        assert [i["username"] for i in body["influencers"]] == ["ana", "cy"]
        assert body["category"] == "food" and body["influencers"][1]["category_rank"] == 2
        assert pd.Timestamp(body["computed_at"]) == RANKED
        assert top.headers["x-request-id"]
        assert "lineage" not in body

        bad = {
            "category": {"category": "sport"},  # not a category of any ranked account
            "n": {"n": 0},
        }
        for field, payload in bad.items():
            answer = client.post("/top_influencers", json=payload, headers=key)
            assert answer.status_code == 422, (field, answer.text)
            assert field in answer.text

        # segments not written yet: the service says which command builds them
        waiting = client.post("/user_segment", json={"user_id": 1}, headers=key)
        assert waiting.status_code == 503 and "smap segment" in waiting.json()["error"]
        warehouse.write(SEGMENT_TABLES["user_segments"], _user_segments())
        found = client.post("/user_segment", json={"user_id": 1}, headers=key)
        assert found.status_code == 200, found.text
        assert found.json()["name"] == "power users" and found.json()["model_version"] == 1
        unknown = client.post("/user_segment", json={"user_id": 42}, headers=key)
        assert unknown.status_code == 404 and unknown.json()["error"].startswith("user_id: 42")
        invalid = client.post("/user_segment", json={"user_id": "x"}, headers=key)
        assert invalid.status_code == 422 and "user_id" in invalid.text

        paths = client.get("/docs.json", headers=key).json()["paths"]
        assert {"/top_influencers", "/user_segment"} <= set(paths)
