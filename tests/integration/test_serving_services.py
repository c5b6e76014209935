"""One real `smap serve --workers 2` on the services profile (PostgreSQL + a private Redis):
every endpoint answers, a burst of concurrent requests over both workers is logged row for row,
a Redis outage gives 503 with the reason and the service recovers by itself, and the
prediction log lands in PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg2
import pytest

from configs.settings import load_settings
from pipelines import flows
from pipelines.serving import free_port, wait_ready
from pipelines.training import train

pytestmark = pytest.mark.integration
DRAFT = {"user_id": 1, "post_type": "image", "category": "food", "hashtags": ["#x"]}


def _post_drafts(url: str, draft: dict, n: int) -> int:
    return httpx.post(
        f"{url}/predict_engagement", json={"drafts": [draft] * n}, timeout=60
    ).status_code


class PrivateRedis:
    """A redis-server of our own on a free port (never the shared one), stoppable with its data."""

    def __init__(self, folder):
        self.folder, self.port, self.process = folder, free_port(), None

    def start(self) -> None:
        cmd = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
               str(self.folder), "--save", "", "--appendonly", "no"]  # fmt: skip
        self.process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        for _ in range(50):
            if (
                subprocess.run(
                    ["redis-cli", "-p", str(self.port), "ping"], capture_output=True
                ).stdout.strip()
                == b"PONG"
            ):
                return
            time.sleep(0.1)
        raise RuntimeError("private redis-server did not start")

    def stop(self) -> None:
        subprocess.run(["redis-cli", "-p", str(self.port), "shutdown", "save"], capture_output=True)
        self.process.wait(10)


@pytest.fixture
def private_redis(tmp_path):
    if (
        not os.path.exists("/usr/bin/redis-server")
        and not subprocess.run(["which", "redis-server"], capture_output=True).stdout
    ):
        pytest.skip("redis-server is not installed")
    redis = PrivateRedis(tmp_path)
    redis.start()
    yield redis
    if redis.process.poll() is None:
        redis.process.terminate()
        redis.process.wait(10)


def test_smap_serve_on_services_survives_a_redis_outage(
    tmp_path, pg_database, private_redis, monkeypatch
):
    env = {
        "SMAP_PROFILE": "services",
        "SMAP_DATA_DIR": str(tmp_path / "smap"),
        "SMAP_DATABASE": pg_database,
        "SMAP_FEAST__PROJECT": f"t{uuid.uuid4().hex[:10]}",
        "SMAP_REDIS__PORT": str(private_redis.port),
        "SMAP_REDIS__CONNECT_TIMEOUT_SECONDS": "1",
        "SMAP_REDIS__READ_TIMEOUT_SECONDS": "2",
        "SMAP_SERVING__LOG_FLUSH_SECONDS": "0.2",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    flows.prepare_data(settings)
    trained = train(settings, "engagement", trials=2, families=("linear",))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    serve = subprocess.Popen(
        [sys.executable, "-m", "pipelines", "serve", "--port", str(port), "--workers", "2"],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # SIGINT stops it as Ctrl-C would, also under a test run started in the background
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    made = 0
    try:
        wait_ready(url, serve, timeout=120)
        draft = {**DRAFT, "planned_at": "2026-06-01T12:00:00Z"}
        ok = httpx.post(f"{url}/predict_engagement", json={"drafts": [draft, draft]}, timeout=30)
        assert ok.status_code == 200 and ok.json()["lineage"]["version"] == trained.version
        made += 2
        # a burst from 8 clients at once, spread over both workers: every prediction logged
        with ThreadPoolExecutor(8) as pool:
            burst = list(pool.map(lambda _: _post_drafts(url, draft, 3), range(48)))
        assert all(code == 200 for code in burst), burst
        made += 3 * len(burst)
        best = httpx.post(f"{url}/best_posting_time", json={"draft": DRAFT}, timeout=30)
        assert best.status_code == 200 and len(best.json()["best"]) == 3
        made += 168
        for endpoint, payload in (
            ("predict_virality", {"drafts": [draft]}),
            ("predict_churn", {"user_ids": [1]}),
        ):
            answer = httpx.post(f"{url}/{endpoint}", json=payload, timeout=30)
            assert answer.status_code == 503 and endpoint.split("_")[1] in answer.json()["error"]
        trend = {"hashtags": ["#x"], "horizon": 7}  # only engagement is trained here
        answer = httpx.post(f"{url}/forecast_trend", json=trend, timeout=30)
        assert answer.status_code == 503 and "trend: no champion" in answer.json()["error"]
        meta = httpx.get(f"{url}/metadata", timeout=30).json()
        assert meta["profile"] == "services" and meta["online_store_ok"]
        features = next(t for t in meta["tasks"] if t["task"] == "engagement")["features"]
        record = {name: None for name in features}  # nothing known: the model's NaN handling
        given = httpx.post(
            f"{url}/predict_features",
            json={"task": "engagement", "records": [record]},
            timeout=30,
        )
        assert given.status_code == 200 and len(given.json()["predictions"]) == 1, given.text
        made += 1

        private_redis.stop()
        down = httpx.post(f"{url}/predict_engagement", json={"drafts": [draft]}, timeout=30)
        assert down.status_code == 503
        assert f"Redis at 127.0.0.1:{private_redis.port}" in down.json()["error"]
        assert httpx.get(f"{url}/readyz", timeout=30).status_code == 503

        private_redis.start()
        deadline = time.monotonic() + 30
        while True:
            back = httpx.post(f"{url}/predict_engagement", json={"drafts": [draft]}, timeout=30)
            if back.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert back.status_code == 200 and back.json()["predictions"][0]["missing_features"] == [
            "hashtag:x"
        ]
        made += 1
    finally:
        os.killpg(serve.pid, signal.SIGINT)  # smap serve stops the service, which flushes its log
        serve.wait(60)
    with psycopg2.connect(settings.postgres.dsn()) as conn, conn.cursor() as cur:
        table = f"{settings.postgres.db_schema}.predictions"
        cur.execute(f"SELECT count(*), count(DISTINCT request_id) FROM {table}")
        rows, requests = cur.fetchone()
    conn.close()
    assert (rows, requests) == (made, 4 + 48)
