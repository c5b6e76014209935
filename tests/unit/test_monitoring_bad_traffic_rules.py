"""Monitoring under bad traffic, the pure parts: repeated feature vectors count once, a retrain
needs evidence from matured outcomes and waits out a cooldown, the log's reader takes each
hour's compacted file and skips what it covers, and a refused request is one log line."""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from configs.settings import MonitoringSettings
from ingestion.warehouse import open_warehouse
from monitoring.checks import DRIFT, OK, CheckResult, record
from monitoring.trigger import retrain_decision, should_retrain
from monitoring.window import distinct
from serving.prediction_log import _files

TASK = "engagement"


def test_identical_feature_vectors_count_once_the_newest_kept():
    bot = pd.DataFrame(
        {
            "followers": [5000.0] * 8000,
            "post_type": ["video"] * 8000,
            "hashtags": [["a", "b"]] * 8000,  # a list in a vector is compared as its text
            "prediction": [0.2] * 8000,
            "logged_at": pd.date_range("2026-05-01", periods=8000, freq="s", tz="UTC"),
        }
    )
    rng = np.random.default_rng(0)
    people = pd.DataFrame(
        {
            "followers": rng.lognormal(6, 1, 300),
            "post_type": rng.choice(["video", "text"], 300),
            "hashtags": [["a"]] * 300,
            "prediction": rng.normal(0.05, 0.01, 300),
            "logged_at": pd.date_range("2026-05-02", periods=300, freq="s", tz="UTC"),
        }
    )
    frame = pd.concat([bot, people], ignore_index=True)
    kept, repeats = distinct(frame, ["followers", "post_type", "hashtags", "prediction"])
    assert repeats == 7999 and len(kept) == 301
    assert kept.logged_at.iloc[0] == bot.logged_at.iloc[-1]  # the newest repeat is kept
    # missing values are equal to each other; a column the window lacks is left out
    gaps = pd.DataFrame({"followers": [np.nan, np.nan, 1.0], "prediction": [0.1, 0.1, 0.1]})
    assert distinct(gaps, ["followers", "absent", "prediction"])[1] == 1
    empty, none = distinct(frame.iloc[:0], ["followers"])
    assert empty.empty and none == 0


def a_check(
    verdict: str = DRIFT,
    ago: timedelta = timedelta(0),
    label_score: float = float("nan"),
    quality: float = float("nan"),
    labelled: int = 0,
    retrain: dict | None = None,
) -> CheckResult:
    now = datetime.now(UTC) - ago
    return CheckResult(
        check_id=uuid.uuid4().hex[:12], task=TASK, version=3, run_id="run", checked_at=now,
        window_start=now - timedelta(hours=1), window_end=now, rows=8000, labelled=labelled,
        drifted_share=0.88, drifted_columns=[{"column": "followers"}], prediction_score=0.4,
        label_score=label_score, metric="r2", quality_value=quality, test_value=0.4,
        verdict=verdict, reasons=["data drift"], retrain=retrain or {},
    )  # fmt: skip


@pytest.fixture
def streak(local_settings):
    """One drift check recorded: the next drift check makes `consecutive` (2) in a row."""
    warehouse = open_warehouse(local_settings)
    record(warehouse, a_check(ago=timedelta(minutes=5)))
    return local_settings, warehouse


def test_feature_drift_alone_starts_no_retrain(streak):
    settings, warehouse = streak
    due, why = retrain_decision(settings, warehouse, a_check())
    assert not due and "inputs only" in why and "label drift" in why
    # too few matured labels to judge quality: still no evidence
    assert not should_retrain(settings, warehouse, a_check(quality=0.0, labelled=50))
    # an ok check, or a streak too short, needs no word
    assert retrain_decision(settings, warehouse, a_check(verdict=OK)) == (False, "")


def test_label_drift_or_a_quality_drop_on_matured_labels_is_evidence(streak):
    settings, warehouse = streak
    assert retrain_decision(settings, warehouse, a_check(label_score=0.3, labelled=400)) == (
        True,
        "",
    )
    dropped = a_check(quality=0.2, labelled=400)  # r2 0.2 against 0.4 at test
    assert should_retrain(settings, warehouse, dropped)
    assert not should_retrain(settings, warehouse, a_check(quality=0.35, labelled=400))


def test_a_task_retrained_within_the_cooldown_waits(streak):
    settings, warehouse = streak
    assert settings.monitoring.retrain_cooldown_minutes == 60
    evidence = {"label_score": 0.3, "labelled": 400}
    # a retrain of the task 20 minutes ago (another version's streak: the task counts)
    done = {"version": 3, "decision": "promoted", "since": "2026-01-01"}
    record(warehouse, replace(a_check(ago=timedelta(minutes=20), retrain=done), version=2))
    record(warehouse, a_check(ago=timedelta(minutes=2)))
    due, why = retrain_decision(settings, warehouse, a_check(**evidence))
    assert not due and "cooldown" in why
    later = replace(a_check(**evidence), checked_at=datetime.now(UTC) + timedelta(minutes=45))
    assert should_retrain(settings, warehouse, later)
    shorter = settings.model_copy(
        update={"monitoring": MonitoringSettings(retrain_cooldown_minutes=10)}
    )
    assert should_retrain(shorter, warehouse, a_check(**evidence))


def test_a_skipped_retrain_starts_no_cooldown(streak):
    settings, warehouse = streak
    record(warehouse, a_check(ago=timedelta(minutes=3), retrain={"skipped": "busy"}))
    record(warehouse, a_check(ago=timedelta(minutes=1)))
    assert should_retrain(settings, warehouse, a_check(label_score=0.3, labelled=400))


def _touch(folder: Path, *names: str) -> None:
    for name in names:
        (folder / name).write_bytes(b"")


def test_the_reader_takes_each_hours_newest_compacted_file_and_what_it_does_not_cover(
    tmp_path,
):
    _touch(
        tmp_path,
        "part-20260501T100000000000-11-aaaaaaaa.parquet",  # covered by the 10h file
        "part-20260501T104500000000-11-bbbbbbbb.parquet",  # covered
        "part-20260501T103000000000-hour.parquet",  # superseded by the newer 10h file
        "part-20260501T104500000000-hour.parquet",
        "part-20260501T105000000000-11-cccccccc.parquet",  # flushed after: read
        "part-20260501T110500000000-11-dddddddd.parquet",  # an hour not compacted: read
        ".part-20260501T115000000000-hour.parquet.tmp",  # staged: never read
    )
    compacted, parts, covered = _files(tmp_path)
    assert {h: p.name for h, p in compacted.items()} == {
        "20260501T10": "part-20260501T104500000000-hour.parquet"
    }
    assert [p.name for p in parts] == [
        "part-20260501T105000000000-11-cccccccc.parquet",
        "part-20260501T110500000000-11-dddddddd.parquet",
    ]
    assert sorted(p.name for p in covered) == [
        "part-20260501T100000000000-11-aaaaaaaa.parquet",
        "part-20260501T103000000000-hour.parquet",
        "part-20260501T104500000000-11-bbbbbbbb.parquet",
    ]


def _log_exception_during(exc: BaseException) -> None:
    """What BentoML's request handler does when an endpoint fails (its own code)."""
    from bentoml._internal.server.http_app import log_exception
    from starlette.requests import Request

    request = Request({"type": "http", "method": "POST", "path": "/predict_engagement",
                       "headers": [], "query_string": b""})  # fmt: skip
    try:
        raise exc
    except type(exc):
        log_exception(request)


def _validation_error():
    from pydantic import BaseModel, Field, ValidationError

    class Drafts(BaseModel):
        n: int = Field(ge=1)

    try:
        Drafts(n=0)
    except ValidationError as exc:
        return exc
    raise AssertionError("no validation error")


def test_a_refused_request_is_one_info_line_and_a_server_error_keeps_its_traceback(caplog):
    from bentoml.exceptions import BadInput, InternalServerError

    import serving.service  # noqa: F401 - installs the filter, as the service process does

    caplog.set_level(logging.DEBUG, logger="bentoml")
    for exc in (_validation_error(), BadInput("drafts: not a list")):
        caplog.clear()
        _log_exception_during(exc)
        (line,) = caplog.records
        assert line.levelno == logging.INFO and line.exc_info is None, line
        text = line.getMessage()
        assert text.startswith("422 POST /predict_engagement: ") and "\n" not in text
    for exc in (RuntimeError("model crashed"), InternalServerError("boom")):
        caplog.clear()
        _log_exception_during(exc)
        (line,) = caplog.records
        assert line.levelno == logging.ERROR and line.exc_info is not None
        assert "Traceback" in caplog.text


def test_a_validation_error_line_names_the_field():
    from serving.client_errors import ClientErrorsOneLine

    try:
        raise _validation_error()
    except Exception:
        import sys

        record = logging.LogRecord(
            "bentoml._internal.server.http_app", logging.ERROR, __file__, 1,
            "Exception on %s [%s]", ("/predict", "POST"), sys.exc_info(),
        )  # fmt: skip
    assert ClientErrorsOneLine().filter(record)
    assert record.getMessage() == "422 POST /predict: n: Input should be greater than or equal to 1"
    assert json.dumps(record.args)  # plain values: any handler formats them
