"""Churn answers logged at a snapshot's time get the very target `churn_labels` gives that
snapshot, on a simulated warehouse; the warehouse reads only the days asked for."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ingestion.schema import ALL_TABLES
from ingestion.warehouse import open_warehouse
from monitoring.window import matured_labels
from pipelines import flows
from training.labels import churn_labels
from training.tasks import get_task

pytestmark = pytest.mark.integration


def test_a_logged_churn_answer_gets_the_label_query_target(local_settings):
    flows.simulate(local_settings, preset="quick", seed=5)
    flows.ingest(local_settings)
    warehouse = open_warehouse(local_settings)
    truth = churn_labels(warehouse)
    # churned and staying users, early and late snapshots (the latest are 28 days from the end)
    rows = pd.concat(
        [
            truth[truth.target == 1].sample(40, random_state=0),
            truth[truth.target == 0].sample(40, random_state=0),
            truth[truth.event_timestamp == truth.event_timestamp.max()].head(20),
        ]
    ).reset_index(drop=True)
    logged_at = pd.to_datetime(rows.event_timestamp, utc=True)
    logged_at[::2] += pd.Timedelta(hours=13)  # later the same day: the same snapshot day
    frame = pd.DataFrame({"key_user_id": rows.user_id, "logged_at": logged_at, "prediction": 0.5})
    labels = matured_labels(warehouse, get_task("churn"), frame)
    assert labels.notna().all()
    assert labels.astype(int).tolist() == rows.target.tolist()

    # the data's last day is the 28th after snapshot day end - 28: matured; a day later: not
    end = warehouse.read("user_activity", ["date"]).date.max().tz_localize("UTC")
    last = frame.assign(logged_at=end - pd.Timedelta(days=26, hours=12))  # snapshot end - 28
    assert matured_labels(warehouse, get_task("churn"), last).notna().all()
    later = frame.assign(logged_at=end - pd.Timedelta(days=25, hours=12))
    assert matured_labels(warehouse, get_task("churn"), later).isna().all()


def test_a_read_between_two_days_keeps_only_those_days(any_settings):
    days = pd.date_range("2026-03-01", periods=10, freq="D")
    frame = pd.DataFrame(
        {"user_id": np.arange(10), "date": days, "posts": 1, "likes_given": 0, "comments_given": 0}
    )
    warehouse = open_warehouse(any_settings)
    warehouse.write(ALL_TABLES["user_activity"], frame)
    both = warehouse.read("user_activity", ["user_id", "date"], ("date", days[2], days[5]))
    assert sorted(both.user_id.tolist()) == [2, 3, 4, 5]
    assert list(both.columns) == ["user_id", "date"]
    since = warehouse.read("user_activity", ["user_id"], ("date", days[7], None))
    assert sorted(since.user_id.tolist()) == [7, 8, 9]
    assert len(warehouse.read("user_activity", between=("date", None, None))) == 10
