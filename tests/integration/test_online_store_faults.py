"""The online store lost, restored from an old copy, or hung: materialize notices and says so.

Redis faults use a private redis-server on a free port (never the shared one on 6379), and a
plain socket server that accepts connections and never answers.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from feature_repo.store import apply, materialize, open_store
from ingestion.schema import ANALYTICS_TABLES
from ingestion.warehouse import open_warehouse
from tests.servers import SilentServer

pytestmark = pytest.mark.integration

T0 = pd.Timestamp("2026-03-01", tz="UTC")
BEFORE_SECOND_ROW = datetime(2026, 3, 6, tzinfo=UTC)
AFTER_ALL_ROWS = datetime(2026, 4, 1, tzinfo=UTC)
EXPECTED_KEYS = {"user_engagement": 2, "hashtag_momentum": 1}  # post_context: offline only


def _rows(table: str, rows: list[dict]) -> pd.DataFrame:
    columns = ANALYTICS_TABLES[table].columns
    if not rows:
        return ANALYTICS_TABLES[table].conform(pd.DataFrame({c: [] for c in columns}))
    base = {c: "" if kind == "str" else 0 for c, kind in columns.items()}
    frame = pd.DataFrame([base | row for row in rows])
    frame["date"] = frame.event_timestamp.dt.tz_localize(None).dt.normalize()
    return frame


def _loaded(keys: dict[str, int]) -> dict[str, int]:
    """Keys of the views this test checks (other views read the same few rows)."""
    return {view: keys.get(view) for view in EXPECTED_KEYS}


def _write_features(settings) -> None:
    """Two users (user 1 grows from 100 to 250 followers on day 10), one post, one hashtag."""
    warehouse = open_warehouse(settings)
    users = [(1, 0, 100), (1, 10, 250), (2, 4, 40)]
    tables = {
        "user_engagement_metrics": [
            {"user_id": u, "event_timestamp": T0 + pd.Timedelta(days=d), "followers": f}
            for u, d, f in users
        ],
        "post_features": [
            {
                "post_id": 7,
                "user_id": 1,
                "event_timestamp": T0 + pd.Timedelta(days=2),
                "post_type": "video",
                "category": "food",
                "caption": "hello",
                "hashtags": "#a",
            }
        ],
        "hashtag_daily": [{"hashtag_id": 3, "event_timestamp": T0 + pd.Timedelta(days=1)}],
    }
    for name, table in ANALYTICS_TABLES.items():
        warehouse.write(table, _rows(name, tables.get(name, [])))
    apply(settings)


def _followers(settings) -> list:
    online = open_store(settings).get_online_features(
        features=["user_engagement:followers"], entity_rows=[{"user_id": 1}, {"user_id": 2}]
    )
    return online.to_dict()["followers"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRedis:
    """A redis-server of our own, with no persistence, that a test may stop and restart."""

    def __init__(self, port: int):
        self.port, self.process = port, None

    def start(self) -> None:
        import redis

        if shutil.which("redis-server") is None:
            pytest.skip("redis-server is not installed")
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"private redis-server on port {self.port} did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def private_redis():
    server = PrivateRedis(_free_port())
    server.start()
    yield server
    server.stop()


def _with_redis_port(settings, port: int):
    return settings.model_copy(update={"redis": settings.redis.model_copy(update={"port": port})})


def test_deleted_sqlite_online_store_is_loaded_again_in_full(local_settings, capsys):
    _write_features(local_settings)
    assert _loaded(materialize(local_settings, end=AFTER_ALL_ROWS)) == EXPECTED_KEYS
    local_settings.online_store_db.unlink()
    capsys.readouterr()

    keys = materialize(local_settings, end=datetime(2026, 4, 2, tzinfo=UTC))

    assert _loaded(keys) == EXPECTED_KEYS
    assert _followers(local_settings) == [250, 40]
    assert "the online store lost user_engagement" in capsys.readouterr().err


def test_online_store_restored_from_an_older_copy_is_loaded_again(local_settings):
    _write_features(local_settings)
    db = local_settings.online_store_db
    materialize(local_settings, end=BEFORE_SECOND_ROW)
    old_copy = db.with_suffix(".old")
    shutil.copy(db, old_copy)
    materialize(local_settings, end=AFTER_ALL_ROWS)
    assert _followers(local_settings) == [250, 40]
    shutil.copy(old_copy, db)  # the store goes back in time; the registry does not
    assert _followers(local_settings) == [100, 40]

    keys = materialize(local_settings, end=datetime(2026, 4, 2, tzinfo=UTC))

    assert _loaded(keys) == EXPECTED_KEYS
    assert _followers(local_settings) == [250, 40]


def test_redis_restarted_empty_is_loaded_again_in_full(services_settings, private_redis):
    settings = _with_redis_port(services_settings, private_redis.port)
    _write_features(settings)
    assert _loaded(materialize(settings, end=AFTER_ALL_ROWS)) == EXPECTED_KEYS
    private_redis.stop()
    private_redis.start()  # no persistence: the restarted server is empty
    assert _followers(settings) == [None, None]

    keys = materialize(settings, end=datetime(2026, 4, 2, tzinfo=UTC))

    assert _loaded(keys) == EXPECTED_KEYS
    assert _followers(settings) == [250, 40]


def test_second_run_on_an_intact_store_stays_incremental(local_settings):
    _write_features(local_settings)
    materialize(local_settings, end=AFTER_ALL_ROWS)
    fs = open_store(local_settings)
    view = fs.get_feature_view("user_engagement")
    windows_before = len(view.materialization_intervals)

    materialize(local_settings, end=datetime(2026, 4, 2, tzinfo=UTC))

    starts = [
        s
        for s, _ in open_store(local_settings)
        .get_feature_view("user_engagement")
        .materialization_intervals[windows_before:]
    ]
    assert starts and min(starts) >= AFTER_ALL_ROWS  # continued where it ended: no full reload


def _smap(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """Run the CLI in its own process; a hang fails the test instead of blocking the suite."""
    return subprocess.run(
        [sys.executable, "-m", "pipelines", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_redis_that_never_answers_fails_materialize_in_one_line(services_settings, silent_server):
    env = {
        **os.environ,
        "SMAP_PROFILE": "services",
        "SMAP_DATABASE": services_settings.postgres.database,
        "SMAP_FEAST__PROJECT": services_settings.feast.project,
        "SMAP_REDIS__PORT": str(silent_server.port),
        "SMAP_REDIS__READ_TIMEOUT_SECONDS": "1",
    }
    done = _smap(["features", "materialize"], env, Path(__file__).resolve().parents[2])

    assert done.returncode == 1
    assert done.stderr.strip() == done.stderr.strip().splitlines()[0]
    assert done.stderr.startswith(f"error: Redis at 127.0.0.1:{silent_server.port}")
    assert silent_server.accepted  # it did connect: the read timeout ended the wait


class FreezingProxy(SilentServer):
    """Forwards the first connections to a real server, then accepts and never answers."""

    def __init__(self, target_port: int, live_connections: int):
        self.target_port, self.live = target_port, live_connections
        super().__init__()

    def took(self, conn: socket.socket) -> None:
        if len(self.accepted) <= self.live:
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass


def test_redis_that_stops_answering_mid_run_is_one_line_naming_it(services_settings, private_redis):
    """smap's own check reaches Redis; Feast's connection, opened later, hangs."""
    from feature_repo.store import OnlineStoreUnreachable

    settings = _with_redis_port(services_settings, private_redis.port)
    _write_features(settings)
    proxy = FreezingProxy(private_redis.port, live_connections=1)
    try:
        hung = settings.model_copy(
            update={
                "redis": settings.redis.model_copy(
                    update={"port": proxy.port, "read_timeout_seconds": 1.0}
                )
            }
        )
        with pytest.raises(OnlineStoreUnreachable) as err:
            materialize(hung, end=AFTER_ALL_ROWS)
    finally:
        proxy.close()
    assert str(err.value).startswith(f"Redis at 127.0.0.1:{proxy.port} stopped answering")
    assert err.value.__cause__ is None and err.value.__suppress_context__
    assert len(proxy.accepted) >= 2  # the failure came after a first connection worked


def test_redis_stopped_after_the_check_is_one_line_naming_it(services_settings, private_redis):
    """Materialize is past its start-up check when the server goes away."""
    from feature_repo.store import OnlineStoreUnreachable, check_online_store

    settings = _with_redis_port(services_settings, private_redis.port)
    _write_features(settings)
    check_online_store(settings)
    private_redis.stop()

    with pytest.raises(OnlineStoreUnreachable) as err:
        materialize(settings, end=AFTER_ALL_ROWS)

    message = str(err.value)
    assert message.startswith(f"Redis at 127.0.0.1:{private_redis.port} stopped answering")
    assert "\n" not in message and err.value.__cause__ is None
