"""A PostgreSQL prediction log created before answers carried an arm: read back with the arm
null (champion rows), and given the column by the next writer, old rows kept."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg2
import pytest

from serving.prediction_log import PREDICTION_LOGS, PredictionLog, prediction_rows

pytestmark = pytest.mark.integration

LINEAGE = {"model": "engagement", "version": 3, "run_id": "r", "feature_service": "engagement_v2"}
OLD_TABLE = """CREATE TABLE {table} (
    request_id TEXT NOT NULL, logged_at TIMESTAMPTZ NOT NULL, task TEXT NOT NULL,
    entity TEXT NOT NULL, features TEXT NOT NULL, prediction DOUBLE PRECISION,
    model TEXT NOT NULL, model_version INTEGER NOT NULL, run_id TEXT NOT NULL,
    feature_service TEXT NOT NULL)"""


def test_a_log_table_without_arms_is_read_and_then_extended(services_settings):
    settings = services_settings
    schema = settings.postgres.db_schema
    table = f"{schema}.predictions"
    with psycopg2.connect(settings.postgres.dsn()) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        cur.execute(OLD_TABLE.format(table=table))
        cur.execute(
            f"INSERT INTO {table} VALUES ('old', now(), 'engagement', '{{}}', '{{}}', 0.2,"
            " 'engagement', 3, 'r', 'engagement_v2')"
        )
    store = PREDICTION_LOGS[settings.warehouse.type]
    before = store.rows(settings, "engagement", 3, None, 100).rows
    assert before.request_id.tolist() == ["old"] and before.arm.isna().all()

    log = PredictionLog(store.writer(settings))
    keys = [{"user_id": 1, "planned_at": datetime(2026, 5, 1, tzinfo=UTC)}]
    lineage = {**LINEAGE, "arm": "challenger"}
    log.add(prediction_rows("new", "engagement", keys, ["followers"], [[1.0]], [0.3], lineage))
    assert log.flush() == 1
    after = store.rows(settings, "engagement", 3, None, 100).rows.set_index("request_id")
    assert after.loc["new", "arm"] == "challenger" and after.loc["old", "arm"] is None
