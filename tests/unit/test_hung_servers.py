"""Servers that accept connections and never answer: every client gives up with one line.

A plain socket server stands in for a hung PostgreSQL or MLflow server; each command runs with
the profile's timeouts set low, and a test that hung would fail on its subprocess timeout.
"""

from __future__ import annotations

import os
import subprocess
import sys
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
