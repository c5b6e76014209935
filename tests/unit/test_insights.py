"""The service's analytics answers on a Parquet warehouse of hand-made tables: top influencers
(category filter, bad input named, re-read after `smap analytics run`), a user's segment, and
the two endpoints' input validation and OpenAPI entries (no service started)."""

from __future__ import annotations

import pandas as pd
import pytest
from pydantic import ValidationError

from ingestion.schema import INSIGHT_TABLES, SEGMENT_TABLES
from ingestion.warehouse import ParquetWarehouse
from serving.insights import Insights, NotAnswerable, NotBuilt

RANKED = pd.Timestamp("2026-07-01 05:00", tz="UTC")


def network(computed_at: pd.Timestamp = RANKED, leader: str = "ana") -> pd.DataFrame:
    names = [leader, "bo", "cy", "di"]
    return pd.DataFrame(
        {
            "user_id": [1, 2, 3, 4],
            "username": names,
            "account_type": ["creator", "brand", "personal", "creator"],
            "category": ["food", "tech", "food", "travel"],
            "followers": [90, 80, 10, 5],
            "following": [3, 4, 5, 6],
            "engagement_received": [900, 700, 50, 20],
            "pagerank": [0.4, 0.3, 0.2, 0.1],
            "rank": [1, 2, 3, 4],
            "category_rank": [1, 1, 2, 1],
            "computed_at": computed_at,
        }
    )


def segments(warehouse: ParquetWarehouse, version: int = 2) -> None:
    users = pd.DataFrame(
        {
            "user_id": [1, 2],
            "segment": [0, 1],
            "segment_label": ["power users", "lurkers"],
            "assigned_at": pd.Timestamp("2026-07-01 04:00", tz="UTC"),
            "model_version": 2,
        }
    )
    summary = pd.DataFrame(
        {
            "segment": [0, 1],
            "name": ["power users", "lurkers"],
            "size": [1, 1],
            "share": [0.5, 0.5],
            **{
                f"{c}_median": [1.0, 0.0]
                for c in ("posts_28d", "active_days_28d", "engagement_rate_28d", "followers")
            },
            "interactions_given_28d_median": [3.0, 0.0],
            "description": ["1 users (50%); posts a lot", "1 users (50%); reads"],
            "model_version": version,
        }
    )
    warehouse.write(SEGMENT_TABLES["user_segments"], users)
    warehouse.write(INSIGHT_TABLES["segment_summary"], summary)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_top_influencers_filter_name_bad_input_and_follow_a_new_ranking(local_settings, tmp_path):
    warehouse = ParquetWarehouse(tmp_path / "warehouse")
    clock = Clock()
    insights = Insights(local_settings, warehouse, clock)
    with pytest.raises(NotBuilt, match="smap analytics run"):
        insights.top_influencers(None, 3)

    warehouse.write(INSIGHT_TABLES["influencer_network"], network())
    top = insights.top_influencers(None, 3)
    assert [i.username for i in top.influencers] == ["ana", "bo", "cy"]
    assert top.computed_at == RANKED.to_pydatetime() and top.category is None
    food = insights.top_influencers("food", 10)
    assert [(i.user_id, i.category_rank) for i in food.influencers] == [(1, 1), (3, 2)]

    with pytest.raises(NotAnswerable, match=r"^category: 'sport' .*food, tech, travel") as bad:
        insights.top_influencers("sport", 3)
    assert bad.value.status == 400

    # a new ranking is served once the re-check interval has passed, not before
    later = RANKED + pd.Timedelta(days=1)
    warehouse.write(INSIGHT_TABLES["influencer_network"], network(later, leader="eve"))
    assert insights.top_influencers(None, 1).influencers[0].username == "ana"
    clock.now += local_settings.serving.alias_poll_seconds
    again = insights.top_influencers(None, 1)
    assert again.influencers[0].username == "eve" and again.computed_at == later


def test_user_segment_answers_names_unknown_users_and_waits_for_segments(local_settings, tmp_path):
    warehouse = ParquetWarehouse(tmp_path / "warehouse")
    insights = Insights(local_settings, warehouse)
    with pytest.raises(NotBuilt, match="smap segment"):
        insights.user_segment(1)

    segments(warehouse)
    found = insights.user_segment(1)
    assert (found.segment, found.name, found.model_version) == (0, "power users", 2)
    assert found.description == "1 users (50%); posts a lot"
    assert found.computed_at == pd.Timestamp("2026-07-01 04:00", tz="UTC").to_pydatetime()
    with pytest.raises(NotAnswerable, match=r"^user_id: 99 has no segment") as unknown:
        insights.user_segment(99)
    assert unknown.value.status == 404

    segments(warehouse, version=3)  # profiles of a newer model: no description for version 2
    assert insights.user_segment(2).description == ""


def test_endpoints_validate_their_input_and_appear_in_the_openapi_schema():
    from serving.service import Smap

    paths = Smap.openapi_spec.asdict()["paths"]
    assert {"/top_influencers", "/user_segment"} <= set(paths)

    influencers = Smap.apis["top_influencers"].input_spec
    assert influencers.model_validate({}).n == 10
    assert influencers.model_validate({"category": " Food "}).category == "food"
    for field, body in {
        "n": {"n": 0},
        "category": {"category": "food; drop table"},
    }.items():
        with pytest.raises(ValidationError) as bad:
            influencers.model_validate(body)
        assert bad.value.errors()[0]["loc"] == (field,)
    with pytest.raises(ValidationError) as too_many:
        influencers.model_validate({"n": 101})
    assert too_many.value.errors()[0]["loc"] == ("n",)

    segment = Smap.apis["user_segment"].input_spec
    for body in ({}, {"user_id": -1}, {"user_id": "abc"}):
        with pytest.raises(ValidationError) as bad:
            segment.model_validate(body)
        assert bad.value.errors()[0]["loc"] == ("user_id",)


def test_a_ranking_already_read_is_served_through_a_warehouse_outage(local_settings, tmp_path):
    from ingestion.warehouse import WarehouseError

    warehouse = ParquetWarehouse(tmp_path / "warehouse")
    warehouse.write(INSIGHT_TABLES["influencer_network"], network())
    clock = Clock()
    insights = Insights(local_settings, warehouse, clock)
    assert insights.top_influencers(None, 1).influencers[0].username == "ana"

    asked = []

    def down(*_args, **_kwargs):
        asked.append(clock.now)
        raise WarehouseError("PostgreSQL at 127.0.0.1:5432 is not reachable")

    for name in ("exists", "version", "read"):
        setattr(warehouse, name, down)
    clock.now += local_settings.serving.alias_poll_seconds
    for _ in range(3):  # asked once per interval, the last ranking served meanwhile
        assert insights.top_influencers(None, 1).influencers[0].username == "ana"
    assert len(asked) == 1
    fresh = Insights(local_settings, warehouse, clock)  # nothing read yet: 503 naming why
    with pytest.raises(NotBuilt, match="PostgreSQL at 127.0.0.1:5432"):
        fresh.top_influencers(None, 1)
