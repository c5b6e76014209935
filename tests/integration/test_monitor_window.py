"""The prediction log read back as a check's window, on both profiles: the rows one champion
version answered after the last check, parsed, newest kept; checks recorded and read back."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pandas as pd
import pytest

from monitoring.checks import checks, last_window_end
from monitoring.window import logged_rows, parse
from serving.prediction_log import PREDICTION_LOGS, PredictionLog, prediction_rows

pytestmark = pytest.mark.integration

LINEAGE = {"model": "engagement", "version": 3, "run_id": "r", "feature_service": "engagement_v2"}


def write_log(settings, n: int, version: int = 3, task: str = "engagement") -> None:
    log = PredictionLog(PREDICTION_LOGS[settings.warehouse.type].writer(settings), batch_rows=50)
    keys = [{"user_id": i, "planned_at": datetime(2026, 5, 1, tzinfo=UTC)} for i in range(n)]
    columns = [[float(i) for i in range(n)], ["video"] * n]
    log.add(
        prediction_rows(
            "req",
            task,
            keys,
            ["followers", "post_type"],
            columns,
            [0.1] * n,
            {**LINEAGE, "version": version},
        )  # fmt: skip
    )
    assert log.flush() == n


def test_a_window_is_what_one_version_answered_after_the_last_check(any_settings):
    settings = any_settings
    write_log(settings, 120)
    write_log(settings, 30, version=4)  # another champion's answers
    write_log(settings, 10, task="churn")
    first = logged_rows(settings, "engagement", 3)
    assert len(first) == 120 and set(first.model_version) == {3}
    window = parse(first)
    assert window.followers.tolist()[:3] == [0.0, 1.0, 2.0]
    assert set(window.post_type) == {"video"} and "key_user_id" in window

    mark = first.logged_at.max()
    time.sleep(0.05)
    write_log(settings, 40)
    later = logged_rows(settings, "engagement", 3, after=mark)
    assert len(later) == 40 and (later.logged_at > mark).all()


def test_checks_are_recorded_and_the_next_window_starts_after_them(any_settings):
    from ingestion.warehouse import open_warehouse
    from monitoring.checks import CheckResult, record

    warehouse = open_warehouse(any_settings)
    assert checks(warehouse).empty
    end = pd.Timestamp("2026-11-28 10:00", tz="UTC")
    result = CheckResult(
        check_id="c1", task="engagement", version=3, run_id="r", checked_at=datetime.now(UTC),
        window_start=end - pd.Timedelta(hours=1), window_end=end, rows=500, labelled=400,
        drifted_share=0.4, drifted_columns=[{"column": "followers"}], prediction_score=0.2,
        label_score=float("nan"), metric="r2", quality_value=0.3, test_value=0.5,
        verdict="drift", reasons=["data drift"], retrain={"decision": "promoted"},
    )  # fmt: skip
    record(warehouse, result)
    stored = checks(warehouse, "engagement")
    assert stored.check_id.tolist() == ["c1"] and stored.verdict.tolist() == ["drift"]
    assert last_window_end(warehouse, "engagement", 3) == end
    assert last_window_end(warehouse, "engagement", 4) is None
