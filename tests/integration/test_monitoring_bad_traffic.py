"""Monitoring under bad traffic, on the real warehouse and prediction log: a corrupt log part is
moved aside and the check goes on; `--watch` and `--all` outlive a failing check; thousands of
identical drafts count once; a window is claimed by one process; old parts are compacted into
one file per hour before a check reads; a refused request is one log line, not a traceback.

The champion's drift reference is synthetic (as in test_retrain_lock.py: no training); the
warehouse, the prediction log, Evidently, MLflow's monitoring run and the lock are real.
"""

from __future__ import annotations

import logging
import multiprocessing
import shutil
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from ingestion.warehouse import open_warehouse
from monitoring import checks as checks_module
from monitoring.checks import CheckBusy, checks
from serving.prediction_log import (
    PREDICTION_LOGS,
    QUARANTINE,
    TABLE,
    PredictionLog,
    prediction_rows,
)
from training.reference import PREDICTION, Reference, column_kinds, sketch

pytestmark = pytest.mark.integration

FEATURES = ["followers", "caption_length"]
VERSION = 3
FORK = multiprocessing.get_context("fork")


def _rows(rng: np.random.Generator, n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "followers": rng.lognormal(6.0, 1.0, n),
            "caption_length": rng.normal(120, 30, n),
            PREDICTION: rng.normal(0.05, 0.01, n),
        }
    )


@pytest.fixture
def champion(monkeypatch):
    """Every task's champion is v3 with a reference of the training distribution."""
    before = _rows(np.random.default_rng(1), 3000)
    columns = list(before.columns)

    def reference(client, task, version, run_id):
        return Reference(task.name, "run", sketch(before, columns), column_kinds(before, columns),
                         len(before), "r2", 0.4, {})  # fmt: skip

    monkeypatch.setattr(
        "monitoring.checks.champion_of", lambda settings, task: (None, VERSION, "run")
    )
    monkeypatch.setattr("monitoring.checks.reference_of", reference)


def log_answers(settings, frame: pd.DataFrame, task: str = "engagement", features=None) -> None:
    """Answers as the service logs them: one request, one row per draft, flushed."""
    log = PredictionLog(PREDICTION_LOGS[settings.warehouse.type].writer(settings))
    keys = [{"user_id": int(i)} for i in range(len(frame))]
    columns = features if features is not None else [frame[c].tolist() for c in FEATURES]
    lineage = {"model": task, "version": VERSION, "run_id": "run", "feature_service": "fs"}
    log.add(prediction_rows("req", task, keys, FEATURES, columns, frame[PREDICTION], lineage))
    assert log.flush() == len(frame)


def use_profile(settings, monkeypatch) -> None:
    """The CLI (`main`) on the test's settings."""
    monkeypatch.setenv("SMAP_PROFILE", settings.profile)
    monkeypatch.setenv("SMAP_DATA_DIR", str(settings.data_dir))
    if settings.profile == "services":
        monkeypatch.setenv("SMAP_DATABASE", settings.postgres.database)
        monkeypatch.setenv("SMAP_FEAST__PROJECT", settings.feast.project)


# -- a corrupt part ------------------------------------------------------------------------


def test_a_corrupt_part_is_moved_aside_counted_and_the_check_goes_on(local_settings, champion):
    from pipelines.monitoring import monitor

    settings = local_settings
    log_answers(settings, _rows(np.random.default_rng(2), 400))
    folder = settings.root / TABLE
    bad = folder / f"part-{datetime.now(UTC):%Y%m%dT%H%M%S%f}-1-deadbeef.parquet"
    bad.write_bytes(b"PAR1 not really parquet")

    result = monitor(settings, "engagement", retrain=False)
    assert result.rows == 400 and result.quarantined == [bad.name]
    assert not bad.exists() and (folder / QUARANTINE / bad.name).is_file()
    stored = checks(open_warehouse(settings), "engagement").iloc[-1]
    assert stored.check_id == result.check_id
    assert f"1 unreadable part(s) moved to quarantine/: {bad.name}" in stored.reason


def test_a_corrupt_part_in_a_window_too_small_is_named_in_the_wait(local_settings, champion):
    from monitoring.checks import NotEnoughRows
    from pipelines.monitoring import monitor

    settings = local_settings
    log_answers(settings, _rows(np.random.default_rng(2), 50))
    bad = settings.root / TABLE / "part-99999999T000000000000-1-bad.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(NotEnoughRows, match="moved to quarantine/: part-99999999T0"):
        monitor(settings, "engagement")


def _malformed(settings, task: str) -> None:
    """A row whose feature vector is not JSON: the window cannot be read (not a part)."""
    frame = _rows(np.random.default_rng(3), 1)
    log = PredictionLog(PREDICTION_LOGS[settings.warehouse.type].writer(settings))
    row = prediction_rows("req", task, [{"user_id": 1}], FEATURES, [[1.0], [2.0]], [0.1],
                          {"model": task, "version": VERSION, "run_id": "run",
                           "feature_service": "fs"})  # fmt: skip
    row = [(*r[:4], "{not json", *r[5:]) for r in row]
    log.add(row)
    assert log.flush() == len(frame)


def test_smap_monitor_watch_goes_on_past_a_corrupt_part_and_a_failing_task(
    local_settings, champion
):
    """`smap monitor --watch` runs the orchestrator's monitor job every round: a corrupt part
    is moved aside, a task whose window cannot be read fails its round, and the rounds go on,
    the other task checked."""
    from pipelines import orchestrate

    once = local_settings.orchestration.model_copy(update={"retries": 0})
    settings = local_settings.model_copy(update={"orchestration": once})
    _malformed(settings, "engagement")
    log_answers(settings, _rows(np.random.default_rng(12), 300), task="virality")
    bad = settings.root / TABLE / f"part-{datetime.now(UTC):%Y%m%dT%H%M%S%f}-1-bad.parquet"
    bad.write_bytes(b"PAR1 not really parquet")
    rounds: list = []
    orchestrate.watch(settings, ["engagement", "virality"], 0.01, rounds.append, rounds=2)
    assert len(rounds) == 2 and not any(r.success for r in rounds)
    said = [" | ".join(r.said) for r in rounds]
    assert all("engagement: prediction log:" in s for s in said), said
    assert not bad.exists() and (settings.root / TABLE / QUARANTINE / bad.name).is_file()
    assert checks(open_warehouse(settings)).task.tolist() == ["virality"]


def test_monitor_all_checks_every_task_and_fails_at_the_end(
    any_settings, champion, monkeypatch, capsys
):
    from pipelines.cli import main

    settings = any_settings
    use_profile(settings, monkeypatch)
    _malformed(settings, "engagement")  # the first task fails
    log_answers(settings, _rows(np.random.default_rng(5), 300), task="virality")
    assert main(["monitor", "--all", "--no-retrain", "--json"]) == 1
    captured = capsys.readouterr()
    assert '"task": "virality"' in captured.out  # checked after engagement failed
    assert "error: engagement: prediction log:" in captured.err
    assert "churn:" in captured.err  # too few rows: said, not a failure of its own
    assert checks(open_warehouse(settings)).task.tolist() == ["virality"]


# -- repeated drafts -----------------------------------------------------------------------


def test_thousands_of_identical_drafts_count_once(any_settings, champion):
    from pipelines.monitoring import monitor

    settings = any_settings
    rng = np.random.default_rng(6)
    log_answers(settings, _rows(rng, 300))
    # one plausible draft, sent 8000 times: alone, it is 97% of the window
    bot = pd.DataFrame({"followers": [5000.0] * 8000, "caption_length": [40.0] * 8000,
                        PREDICTION: [0.07] * 8000})  # fmt: skip
    log_answers(settings, bot)

    result = monitor(settings, "engagement")
    assert result.rows == 8300 and result.duplicates == 7999 and result.distinct == 301
    assert result.verdict == "ok", result.reasons
    assert result.drifted_share < 0.3 and not result.retrain
    stored = checks(open_warehouse(settings), "engagement").iloc[-1]
    assert "7999 of 8300 logged answers repeat a feature vector" in stored.reason


def test_a_bot_alone_drifts_but_starts_no_retrain(any_settings, champion, monkeypatch):
    """Drift in the inputs with no matured label: however long the streak, no retrain."""
    from pipelines.monitoring import monitor

    def no_training(*args, **kwargs):
        raise AssertionError("retrained on feature drift alone")

    monkeypatch.setattr("pipelines.training.retrain", no_training)
    settings = any_settings
    rng = np.random.default_rng(7)
    for _ in range(settings.monitoring.consecutive + 1):
        shifted = _rows(rng, 400).assign(followers=lambda f: f.followers * 50, prediction=0.3)
        log_answers(settings, shifted)
        result = monitor(settings, "engagement")
        assert result.verdict == "drift" and not result.retrain
        time.sleep(0.01)
    assert any("retrain held back" in note for note in result.notes)


# -- one check per window ------------------------------------------------------------------


def _hold(settings, name: str, answer) -> None:
    with open_warehouse(settings).exclusive(name) as held:
        answer.put(held)
        time.sleep(600)


def test_a_window_being_checked_elsewhere_is_not_checked_again(any_settings, champion):
    from pipelines import orchestrate
    from pipelines.monitoring import monitor

    settings = any_settings
    log_answers(settings, _rows(np.random.default_rng(8), 300))
    answer = FORK.Queue()
    holder = FORK.Process(target=_hold, args=(settings, "check.engagement", answer), daemon=True)
    holder.start()
    try:
        assert answer.get(timeout=60) is True
        with pytest.raises(CheckBusy, match="another process is checking"):
            monitor(settings, "engagement")
        rounds: list = []
        orchestrate.watch(settings, ["engagement"], 0.01, rounds.append, rounds=1)
        said = " | ".join(rounds[0].said)
        assert len(rounds) == 1 and "waiting" in said and "another process is checking" in said
        assert checks(open_warehouse(settings)).empty
    finally:
        holder.kill()
        holder.join(timeout=30)
    first = monitor(settings, "engagement")  # the lock is free again: checked once
    assert first.rows == 300
    assert checks(open_warehouse(settings)).check_id.tolist() == [first.check_id]


def _check(settings, start, answer) -> None:
    from pipelines.monitoring import monitor

    start.wait(60)
    try:
        answer.put(monitor(settings, "engagement", retrain=False).check_id)
    except (CheckBusy, checks_module.NotEnoughRows) as exc:
        answer.put(type(exc).__name__)


def test_two_watchers_at_once_record_one_check_of_the_window(any_settings, champion):
    """Two processes check the same window at the same moment: one records it, the other is
    told it is being checked (or, once it is recorded, that nothing new came)."""
    settings = any_settings
    log_answers(settings, _rows(np.random.default_rng(11), 300))
    start, answer = FORK.Event(), FORK.Queue()
    watchers = [
        FORK.Process(target=_check, args=(settings, start, answer), daemon=True) for _ in range(2)
    ]
    for watcher in watchers:
        watcher.start()
    start.set()
    outcomes = [answer.get(timeout=300) for _ in watchers]
    for watcher in watchers:
        watcher.join(timeout=60)
    recorded = checks(open_warehouse(settings), "engagement").check_id.tolist()
    assert len(recorded) == 1, (recorded, outcomes)
    assert recorded[0] in outcomes, outcomes
    outcomes.remove(recorded[0])
    assert outcomes[0] in ("CheckBusy", "NotEnoughRows"), outcomes


# -- compaction ----------------------------------------------------------------------------


def _age_parts(folder, start: datetime, step: timedelta) -> list[str]:
    """Rename the parts as if flushed from `start` on, one every `step` (a day of traffic)."""
    names = []
    for k, part in enumerate(sorted(folder.glob("part-*.parquet"))):
        stamp = (start + k * step).strftime("%Y%m%dT%H%M%S%f")
        target = folder / f"part-{stamp}-{k}-{k:08x}.parquet"
        part.rename(target)
        names.append(target.name)
    return names


def test_old_parts_are_compacted_per_hour_before_a_check_reads(local_settings, champion):
    from monitoring.window import logged_rows
    from pipelines.monitoring import monitor

    settings = local_settings
    rng = np.random.default_rng(9)
    for _ in range(150):  # 150 flushes of 4 answers
        log_answers(settings, _rows(rng, 4))
    folder = settings.root / TABLE
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    _age_parts(folder, start, timedelta(minutes=1))  # 150 minutes of 3 past hours
    log_answers(settings, _rows(rng, 30))  # flushed now: too young to compact
    every = logged_rows(settings, "engagement", VERSION)
    assert len(every) == 630
    bad = folder / f"part-{start + timedelta(minutes=7):%Y%m%dT%H%M%S%f}-9-bad.parquet"
    bad.write_bytes(b"x")  # an old part nobody can read: found by the compaction

    result = monitor(settings, "engagement", retrain=False)
    assert result.rows == 630 and result.quarantined == [bad.name]
    files = sorted(p.name for p in folder.glob("part-*.parquet"))
    hours = [f for f in files if f.endswith("-hour.parquet")]
    assert len(hours) == 3 and len(files) == 4  # one file per past hour + the fresh part
    after = logged_rows(settings, "engagement", VERSION)
    key = ["logged_at", "features", "prediction"]
    assert after.sort_values(key, ignore_index=True)[key].equals(
        every.sort_values(key, ignore_index=True)[key]
    )

    # a compaction stopped between writing an hour file and deleting its parts: the reader
    # skips what the hour file covers, the next compaction deletes it
    first_hour = folder / hours[0]
    leftover = folder / f"part-{hours[0][5:26]}-1-0000aaaa.parquet"
    shutil.copy(first_hour, leftover)
    assert len(logged_rows(settings, "engagement", VERSION)) == 630
    log_answers(settings, _rows(rng, 200))
    second = monitor(settings, "engagement", retrain=False)
    assert second.rows == 200 and not leftover.exists()


def test_a_check_reads_a_day_of_flushes_as_a_few_files(local_settings, champion, monkeypatch):
    """The cost of a check follows its window: 1,440 flushes of yesterday and today are 24+
    hour files after the first check, and the next check opens only its window's files."""
    from monitoring.window import read_log
    from pipelines.monitoring import monitor

    settings = local_settings
    rng = np.random.default_rng(10)
    frame = _rows(rng, 2)
    for _ in range(1440):
        log_answers(settings, frame)
    folder = settings.root / TABLE
    start = datetime.now(UTC) - timedelta(days=1, minutes=30)
    _age_parts(folder, start, timedelta(minutes=1))
    log_answers(settings, _rows(rng, 300))
    monitor(settings, "engagement", retrain=False)
    assert len(list(folder.glob("part-*.parquet"))) <= 27
    import pyarrow.parquet as pq

    opened, read_table = [], pq.read_table

    def counting(path, *args, **kwargs):
        opened.append(path)
        return read_table(path, *args, **kwargs)

    monkeypatch.setattr(pq, "read_table", counting)
    read = read_log(settings, "engagement", VERSION, datetime.now(UTC) - timedelta(minutes=5))
    assert len(read.rows) == 300 and len(opened) == 1


# -- refused requests in the service's log -------------------------------------------------


def test_a_refused_request_logs_one_line_and_a_server_error_its_traceback(
    local_settings, monkeypatch, service_app, caplog
):
    from starlette.testclient import TestClient

    from ingestion.schema import INSIGHT_TABLES
    from serving.insights import Insights

    monkeypatch.setenv("SMAP_DATA_DIR", str(local_settings.root))
    network = pd.DataFrame(
        {"user_id": [1], "username": ["ana"], "account_type": ["creator"],
         "category": ["food"], "followers": [9], "following": [3],
         "engagement_received": [9], "pagerank": [0.5], "rank": [1], "category_rank": [1],
         "computed_at": pd.Timestamp("2026-07-01", tz="UTC")}
    )  # fmt: skip
    open_warehouse(local_settings).write(INSIGHT_TABLES["influencer_network"], network)
    caplog.set_level(logging.INFO)
    with TestClient(service_app()) as client:
        caplog.clear()
        for _ in range(50):
            assert client.post("/top_influencers", json={"n": 0}).status_code == 422
        refused = [r for r in caplog.records if r.name.startswith("bentoml")]
        assert len(refused) == 50
        assert all(r.levelno == logging.INFO and r.exc_info is None for r in refused)
        assert refused[0].getMessage().startswith("422 POST /top_influencers: ")
        assert "Traceback" not in caplog.text and len(caplog.text) < 50 * 300

        def crash(self, *args):
            raise RuntimeError("the ranking broke")

        monkeypatch.setattr(Insights, "top_influencers", crash)
        caplog.clear()
        assert client.post("/top_influencers", json={"n": 1}).status_code == 500
        failed = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert failed and failed[0].exc_info is not None
        assert "RuntimeError: the ranking broke" in caplog.text
