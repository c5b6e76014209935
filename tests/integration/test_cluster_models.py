"""Models on the cluster profile go through the MLflow tracking server: a trainer logs its
model over HTTP (the server keeps the files), and a process elsewhere, with no artifact
folder in its settings, loads the champion and predicts; `smap serve --workers 2` answers
from the champion it reads from the server and features from Redis, and logs every answer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from configs.settings import load_settings
from pipelines import flows
from pipelines.serving import free_port, wait_ready
from pipelines.training import train
from serving.prediction_log import read_parquet_log
from training.tasks import get_task

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
# Until the lake warehouse and Feast's Spark offline store land (other parts of issue 18), the
# cluster profile's data steps run on the local engines here; tracking, the registry and
# serving are the cluster's own (the MLflow server over HTTP, Redis online). As variables, not
# `settings.model_copy(update=...)`: the smap processes these tests start must see them too.
LOCAL_ENGINES = {
    "SMAP_WAREHOUSE__TYPE": "parquet",
    "SMAP_FEAST__OFFLINE_STORE": "duckdb",
    "SMAP_FEAST__ONLINE_STORE": "redis",
}
DRAFT = {
    "user_id": 1,
    "post_type": "video",
    "category": "food",
    "hashtags": ["#x"],
    "planned_at": "2026-06-01T12:00:00Z",
}
# a process with nothing of the trainer's disk: it loads the champion over HTTP and predicts
ELSEWHERE = """
import json, sys
import pandas as pd
from configs.settings import load_settings
from serving.models import champion_version, load_champion
from training.tracking import use_tracking

settings = load_settings()
client = use_tracking(settings)
version = champion_version(client, "engagement")
champion = load_champion(client, "engagement", version)
frame = pd.read_parquet(sys.argv[1])
print(json.dumps({"version": champion.version, "artifact_root": settings.mlflow_artifact_root,
                  "predictions": champion.predict(frame).tolist()}))
"""


@pytest.fixture(scope="module")
def trained(cluster_env, tmp_path_factory):
    """The engagement champion trained on the cluster profile, its data in a folder of the
    trainer's own (not the cluster's)."""
    env = {
        **cluster_env,
        **LOCAL_ENGINES,
        "SMAP_DATA_DIR": str(tmp_path_factory.mktemp("trainer") / "smap"),
    }
    settings = load_settings("cluster", env=env)
    flows.prepare_data(settings)
    result = train(settings, "engagement", trials=1, families=("linear",))
    return env, settings, result


def test_a_model_trained_on_the_cluster_profile_is_kept_by_the_server(trained, cluster_settings):
    from mlflow.tracking import MlflowClient

    _, settings, result = trained
    assert settings.mlflow_tracking_uri.startswith("http://127.0.0.1:")
    assert settings.mlflow_artifact_root is None  # the server's own store
    client = MlflowClient(settings.mlflow_tracking_uri)
    version = client.get_model_version("engagement", str(result.version))
    assert version.source.startswith(("models:/", "mlflow-artifacts:")), version.source
    assert client.get_run(result.run_id).info.artifact_uri.startswith("mlflow-artifacts:")
    assert client.get_model_version_by_alias("engagement", "champion").version == version.version
    # the files are on the server's disk, under the cluster's folder, not the trainer's
    served = cluster_settings.root / "mlartifacts"
    assert list(served.rglob("MLmodel")), f"no model under {served}"
    assert not (settings.root / "mlartifacts").exists()
    assert not list(settings.root.rglob("MLmodel"))


def test_a_process_elsewhere_loads_the_champion_and_predicts(trained, cluster_env, tmp_path):
    env, settings, result = trained
    task = get_task("engagement")
    stored = task.trainer.build(settings, task)
    rows = stored.training_set.part("test").head(20)
    rows.to_parquet(tmp_path / "rows.parquet")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # another data folder and working directory: only the server's address is shared
    other = {**cluster_env, **LOCAL_ENGINES, "SMAP_DATA_DIR": str(elsewhere / "smap")}
    ran = subprocess.run(
        [sys.executable, "-c", ELSEWHERE, str(tmp_path / "rows.parquet")],
        env={**{k: v for k, v in os.environ.items() if not k.startswith("SMAP_")}, **other},
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    answer = json.loads(ran.stdout.strip().splitlines()[-1])
    assert answer["version"] == result.version
    assert answer["artifact_root"] is None
    predictions = np.asarray(answer["predictions"])
    assert predictions.shape == (len(rows),) and np.isfinite(predictions).all()
    assert not list(elsewhere.rglob("MLmodel"))  # downloaded to a temporary folder, not kept


def test_two_service_workers_answer_from_the_servers_champion(trained):
    env, settings, result = trained
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    service = subprocess.Popen(
        [sys.executable, "-m", "pipelines", "serve", "--workers", "2", "--port", str(port)],
        env={**{k: v for k, v in os.environ.items() if not k.startswith("SMAP_")}, **env},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_ready(url, service, timeout=180)
        answers = [
            httpx.post(f"{url}/predict_engagement", json={"drafts": [DRAFT]}, timeout=60)
            for _ in range(20)
        ]
    finally:
        service.send_signal(signal.SIGTERM)  # `smap serve` stops its service, then exits
        service.wait(timeout=60)
    assert [a.status_code for a in answers] == [200] * len(answers)
    lineage = answers[0].json()["lineage"]
    assert lineage["version"] == result.version, lineage
    assert lineage["run_id"] == result.run_id
    # the warehouse's log (Parquet here, see LOCAL_ENGINES): both workers flush on SIGTERM
    logged = read_parquet_log(settings.root / "predictions")
    sent = {a.json()["lineage"]["request_id"] for a in answers}
    assert sent <= set(logged.request_id)
