"""The pieces that keep the service answering through outages, without servers: the prediction
log through a store outage and a hung store at shutdown, the online store taken as down after a
failed read, and the materialization marks' rule. The real outages are
tests/integration/test_service_outages.py."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from configs.settings import load_settings
from feature_repo.online_state import holds, loaded_until
from serving import online as online_module
from serving.online import OnlineFeatures, OnlineStoreDown
from serving.prediction_log import PredictionLog


def _rows(n: int) -> list[tuple]:
    now = datetime.now(UTC)
    return [("r", now, "t", {"k": i}, {"f": 1.0}, 0.5, "t", 1, "run", "svc") for i in range(n)]


class FlakyStore:
    """Fails `failures` times, then writes."""

    def __init__(self, failures: int):
        self.failures, self.written = failures, []

    def __call__(self, rows):
        if self.failures:
            self.failures -= 1
            raise ConnectionError('connection to server at "127.0.0.1" failed\nsecond line')
        self.written += rows


def test_a_log_store_outage_is_one_warning_and_the_rows_are_written_later(caplog):
    caplog.set_level(logging.INFO, logger="serving.prediction_log")
    store = FlakyStore(failures=5)
    log = PredictionLog(store, max_rows=100, batch_rows=10)
    for _ in range(6):
        log.add(_rows(3))
        log.flush()
    assert len(store.written) == 18 and log.pending() == 0 and log.dropped == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert warnings[0].startswith('prediction log: not written (connection to server at "127')
    assert any("written again" in r.getMessage() for r in caplog.records)


def test_rows_not_written_at_shutdown_are_counted_as_lost(caplog):
    log = PredictionLog(FlakyStore(failures=10**6), max_rows=100, batch_rows=10)
    log.add(_rows(4))
    log.close(wait=0.1)
    assert log.dropped == 4 and log.pending() == 0
    assert "4 rows lost at shutdown" in caplog.text


def test_a_hung_log_store_does_not_hold_the_shutdown():
    release = threading.Event()

    def hangs(_rows):
        release.wait(30)

    log = PredictionLog(hangs, max_rows=100, batch_rows=10, flush_seconds=0.01).start()
    log.add(_rows(2))
    time.sleep(0.2)  # the flushing thread is inside the write, which never returns
    log.add(_rows(3))
    t0 = time.monotonic()
    log.close(wait=0.5)
    assert time.monotonic() - t0 < 5
    assert log.dropped == 3  # the rows waiting behind the hung write
    release.set()


@pytest.fixture
def online(tmp_path):
    settings = load_settings("local", env={"SMAP_DATA_DIR": str(tmp_path / "smap")})
    settings = settings.model_copy(
        update={"serving": settings.serving.model_copy(update={"online_reads": "feast"})}
    )
    return OnlineFeatures(settings, store=SimpleNamespace())


def test_after_a_failed_read_the_store_is_down_at_once_then_tried_again(online, monkeypatch):
    import redis

    clock = [1000.0]
    monkeypatch.setattr(online_module.time, "monotonic", lambda: clock[0])
    tries = []

    def read(error: Exception | None = None):
        with online._reachable():
            tries.append(clock[0])
            if error is not None:
                raise error

    with pytest.raises(OnlineStoreDown, match="is not reachable: Error 111"):
        read(redis.exceptions.ConnectionError("Error 111 connecting. Connection refused."))
    for _ in range(3):  # within the second: no try, the same reason
        with pytest.raises(OnlineStoreDown, match="Error 111"):
            read()
    assert len(tries) == 1 and online.down()
    clock[0] += online_module.RETRY_AFTER_SECONDS
    read()  # one try a second: the store answered
    assert len(tries) == 2 and online.down() == ""
    read()
    assert len(tries) == 3


def test_a_mark_covers_the_registry_window_or_the_store_lost_data():
    window = SimpleNamespace(
        materialization_intervals=[
            (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 6, tzinfo=UTC)),
            (datetime(2026, 3, 6, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)),
        ]
    )
    until = loaded_until(window)
    assert until == datetime(2026, 4, 1, tzinfo=UTC).timestamp()
    assert loaded_until(SimpleNamespace(materialization_intervals=[])) is None
    assert holds(until, until) and holds(until + 60, until)
    assert not holds(None, until)  # emptied
    assert not holds(datetime(2026, 3, 6, tzinfo=UTC).timestamp(), until)  # an older copy
