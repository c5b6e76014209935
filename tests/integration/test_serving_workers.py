"""`smap serve --workers 2` on the local profile: a burst of concurrent requests spread over
both worker processes is in the Parquet prediction log row for row, each worker writing part
files of its own (append-only, nothing rewritten), flushed when the service stops."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from pipelines import flows
from pipelines.serving import local_service
from pipelines.training import train
from serving.prediction_log import read_parquet_log

pytestmark = pytest.mark.integration
DRAFT = {
    "user_id": 1,
    "post_type": "video",
    "category": "food",
    "hashtags": ["#x"],
    "planned_at": "2026-06-01T12:00:00Z",
}
REQUESTS, DRAFTS_PER_REQUEST = 60, 3


def test_two_workers_log_every_prediction_of_a_burst(local_settings):
    settings = local_settings
    flows.prepare_data(settings)
    train(settings, "engagement", trials=1, families=("linear",))
    folder = settings.root / "predictions"
    # leaving the block stops the service (SIGTERM): each worker flushes what it still holds
    with local_service(settings, workers=2, timeout=120) as (url, _):

        def post(_):
            body = {"drafts": [DRAFT] * DRAFTS_PER_REQUEST}
            return httpx.post(f"{url}/predict_engagement", json=body, timeout=60)

        # the second worker may still be loading its model when the first answers /readyz,
        # so bursts go on (logs flush every second) until both have written a part file
        answers: list[httpx.Response] = []
        deadline = time.monotonic() + 120
        while len(writers(folder)) < 2 and time.monotonic() < deadline:
            with ThreadPoolExecutor(12) as pool:
                answers += list(pool.map(post, range(REQUESTS)))
            time.sleep(1.5)
        assert [a.status_code for a in answers] == [200] * len(answers)
    assert len(writers(folder)) == 2, writers(folder)  # each worker writes parts of its own
    logged = read_parquet_log(folder)
    sent = {a.json()["lineage"]["request_id"] for a in answers}
    burst = logged[logged.request_id.isin(sent)]
    assert len(burst) == len(answers) * DRAFTS_PER_REQUEST
    assert burst.groupby("request_id").size().eq(DRAFTS_PER_REQUEST).all()


def writers(folder: Path) -> set[str]:
    """The process ids in the names of a log folder's part files."""
    return {p.name.split("-")[2] for p in folder.glob("part-*.parquet")}
