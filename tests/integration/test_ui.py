"""`smap ui`: MLflow's UI, the drift review page and the dashboard start together on loopback
and stop together on Ctrl-C."""

import os
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest

pytestmark = pytest.mark.integration

URL = re.compile(r"http://127\.0\.0\.1:\d+/\S*")


def _pages(process: subprocess.Popen, deadline: float) -> list[str]:
    """The three addresses `smap ui` prints once all three answer."""
    seen: list[str] = []
    assert process.stdout is not None
    while len(seen) < 3 and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen += URL.findall(line)
    return seen


def test_smap_ui_starts_the_three_pages_and_ctrl_c_stops_them(tmp_path):
    env = {**os.environ, "SMAP_DATA_DIR": str(tmp_path / "smap"), "COLUMNS": "200"}
    process = subprocess.Popen(
        [sys.executable, "-m", "pipelines", "ui"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        pages = _pages(process, time.monotonic() + 120)
        assert len(pages) == 3, process.stderr.read() if process.poll() is not None else pages
        landing, review, dashboard = pages
        assert landing.endswith("#/experiments?workflowType=machine_learning")
        mlflow = landing.split("#")[0]
        assert httpx.get(f"{mlflow}health", timeout=10).status_code == 200
        experiments = httpx.get(f"{mlflow}ajax-api/2.0/mlflow/experiments/search?max_results=5")
        assert experiments.status_code == 200
        assert httpx.get(review, timeout=10).status_code == 200
        board = httpx.get(dashboard, timeout=10)
        assert board.status_code == 200 and "<html" in board.text.lower()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
        for page in pages:
            with pytest.raises(httpx.ConnectError):
                httpx.get(page, timeout=5)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
