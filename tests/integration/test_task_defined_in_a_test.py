"""A task and a family through the registries alone: `comments` (how many comments a draft
will get) is defined only in this file, trained with the `hist_gradient_boosting` family,
served by the running service's generic `POST /predict`, and judged by a monitoring check
on its logged answers. Nothing outside this file names it."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

from configs.settings import load_settings
from feature_repo.drafts import parse_hashtags
from ingestion.warehouse import Warehouse, open_warehouse
from monitoring.checks import run_check
from pipelines import flows
from pipelines.training import train
from training import baseline, labels, matured
from training.task import Serving, Task
from training.tasks import TASKS, register
from training.trainers import REGRESSION

pytestmark = pytest.mark.integration


def comment_labels(warehouse: Warehouse) -> pd.DataFrame:
    """Matured posts as the drafts they were; target log1p(comments the post got)."""
    rows = labels.engagement_labels(warehouse)
    comments = warehouse.read("content_posts", columns=["post_id", "comments"]).set_index("post_id")
    rows["target"] = np.log1p(rows.post_id.map(comments.comments).astype(float))
    rows["oracle"] = np.nan
    return rows


def author_level(frame: pd.DataFrame) -> np.ndarray:
    """The naive answer: every draft gets the mean of the training rows' targets' scale,
    taken from the author's recent rate (a person's guess: busy authors, more comments)."""
    return np.log1p(100 * baseline.author_rate(frame))


COMMENTS = Task(
    name="comments",
    entity="post",
    trainer=REGRESSION,
    feature_service="engagement_v2",  # a draft's features: what serving can look up
    metric="r2",
    direction="maximize",
    families=("linear",),
    label_query=comment_labels,
    label_days=7,
    baseline="log1p of 100 x the author's engagement rate over the last 28 days",
    naive=author_level,
    target="log1p of the comments a post gets",
    matured_labels=matured.post_outcomes,
    serving=Serving("drafts"),
)


@pytest.fixture()
def comments_task():
    register(COMMENTS)
    yield COMMENTS
    TASKS.pop(COMMENTS.name, None)


def _drafts(rows: pd.DataFrame) -> list[dict]:
    return [
        {
            "user_id": int(r.user_id),
            "post_type": r.post_type,
            "category": r.category,
            "hashtags": parse_hashtags(r.hashtags),
            "caption": r.caption,
            "planned_at": datetime.fromtimestamp(int(r.posted_at), UTC).isoformat(),
            "is_paid": bool(r.is_paid),
        }
        for r in rows.itertuples()
    ]


def test_a_task_defined_here_trains_serves_and_is_monitored(
    tmp_path, monkeypatch, service_app, comments_task
):
    root = tmp_path / "smap"
    monkeypatch.setenv("SMAP_DATA_DIR", str(root))
    settings = load_settings("local", env={"SMAP_DATA_DIR": str(root)})
    flows.simulate(settings)
    flows.ingest(settings)
    flows.apply_features(settings)

    trained = train(settings, "comments", trials=2, families=("hist_gradient_boosting",))
    assert trained.decision is not None and trained.decision.champion_after == trained.version
    assert trained.test_metrics["r2"] > 0.1  # comments follow reach: the features say a lot

    flows.materialize_features(settings)
    rows = comment_labels(open_warehouse(settings)).tail(300)
    with TestClient(service_app()) as client:
        answers = []
        for start in (0, 150):
            body = {"task": "comments", "drafts": _drafts(rows.iloc[start : start + 150])}
            response = client.post("/predict", json=body)
            assert response.status_code == 200, response.text
            answers += response.json()["predictions"]
        assert response.json()["lineage"]["model"] == "comments"
        assert response.json()["lineage"]["version"] == trained.version
        unknown = client.post("/predict", json={"task": "no_such_task", "drafts": body["drafts"]})
        assert unknown.status_code == 422 and "no_such_task" in unknown.json()["error"]
    assert len(answers) == 300 and all(np.isfinite(a["value"]) for a in answers)
    truth = rows.target.to_numpy()
    served = np.array([a["value"] for a in answers])
    assert np.corrcoef(truth, served)[0, 1] > 0.3  # the served model predicts comments

    result, _snapshot = run_check(settings, "comments")
    assert result.task == "comments" and result.version == trained.version
    assert result.labelled == 300  # every draft's post has matured: its label is known
