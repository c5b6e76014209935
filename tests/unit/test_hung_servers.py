"""Servers that accept connections and never answer: every client gives up with one line.

A plain socket server stands in for a hung PostgreSQL or MLflow server; each command runs with
the profile's timeouts set low, and a test that hung would fail on its subprocess timeout.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from configs.settings import load_settings

REPO = Path(__file__).resolve().parents[2]


def test_hung_postgres_fails_a_command_in_one_line(silent_server, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMAP_", "PG"))}
    env |= {
        "SMAP_DATA_DIR": str(tmp_path / "smap"),
        "SMAP_PROFILE": "services",
        "SMAP_POSTGRES__PORT": str(silent_server.port),
        "SMAP_POSTGRES__CONNECT_TIMEOUT_SECONDS": "1",
        "SMAP_POSTGRES__PASSWORD": "pw-never-shown",
    }
    done = subprocess.run(
        [sys.executable, "-m", "pipelines", "simulate"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: PostgreSQL at 127.0.0.1:{silent_server.port} ")
    assert "pw-never-shown" not in done.stdout + done.stderr
    assert silent_server.accepted  # it connected: the connect timeout ended the wait


def test_hung_mlflow_server_fails_in_one_line(silent_server, tmp_path):
    from training.tracking import TrackingUnreachable, use_tracking

    settings = load_settings(
        "local",
        env={
            "SMAP_DATA_DIR": str(tmp_path / "smap"),
            "SMAP_MLFLOW__TRACKING_URI": f"http://127.0.0.1:{silent_server.port}",
            "SMAP_MLFLOW__REQUEST_TIMEOUT_SECONDS": "1",
            "SMAP_MLFLOW__REQUEST_MAX_RETRIES": "0",
        },
    )

    with pytest.raises(TrackingUnreachable) as err:
        use_tracking(settings)

    message = str(err.value)
    assert message.startswith(f"MLflow at http://127.0.0.1:{silent_server.port} is not reachable")
    assert "\n" not in message and err.value.__cause__ is None
    assert silent_server.accepted


def test_a_hung_redis_holds_an_answer_at_most_the_configured_dependency_timeout(
    silent_server, tmp_path
):
    """The service's online reads wait `serving.dependency_timeout_ms` and never retry: one
    connection, one timeout, then the error (a 503 to the caller)."""
    import redis

    from serving.online_reader import DirectOnlineReader, ViewRead

    settings = load_settings(
        "services",
        env={
            "SMAP_DATA_DIR": str(tmp_path / "smap"),
            "SMAP_REDIS__PORT": str(silent_server.port),
            "SMAP_SERVING__DEPENDENCY_TIMEOUT_MS": "80",
        },
    )
    reader = DirectOnlineReader(settings, "smap")
    client = reader._redis_client()
    options = client.connection_pool.connection_kwargs
    assert options["socket_timeout"] == options["socket_connect_timeout"] == 0.08
    view = ViewRead("author_stats", ("user_id",), frozenset(), ("followers",))
    failed: list[BaseException] = []

    def read() -> None:
        try:
            reader._read_redis([(view, [b"key"])])
        except BaseException as exc:  # noqa: BLE001 - kept for the assertion
            failed.append(exc)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(60)  # a read without the timeout would wait here for good
    assert not thread.is_alive(), "the read waited on the hung Redis"
    assert failed and isinstance(failed[0], redis.exceptions.TimeoutError), failed
    assert len(silent_server.accepted) == 1  # no retry on a new connection
