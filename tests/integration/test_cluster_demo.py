"""The README's loop on the cluster profile, end to end on the session's standalone Spark
cluster: `smap demo --quick` with the lake, the ETL on Spark, Feast's Spark offline store and
compute engine, Redis, and an MLflow tracking server of its own (the session's server holds
other tests' `engagement` versions, and a demo starts from an empty registry). The loop
detects the shift, retrains, swaps champions without failing a request, and the Spark
master lists the steps smap ran as finished applications."""

from __future__ import annotations

import json

import httpx
import pytest
from cluster_fixtures import _private_database, _redis_project, smap

from configs.settings import TRACKING_SERVER, load_settings
from ingestion.warehouse import ensure_database, ensure_server_database
from pipelines import cluster
from pipelines.serving import free_port

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_the_loop_runs_on_the_standalone_cluster(cluster_env, tmp_path):
    with _private_database() as database, _redis_project() as project:
        env = {
            **cluster_env,
            "SMAP_DATA_DIR": str(tmp_path / "data"),
            "SMAP_DATABASE": database,
            "SMAP_FEAST__PROJECT": project,
            "SMAP_CLUSTER__MLFLOW_PORT": str(free_port()),
        }
        settings = load_settings("cluster", env=env)
        ensure_database(settings.postgres)
        ensure_server_database(TRACKING_SERVER.store.server_database(settings))
        logs = tmp_path / "logs"
        logs.mkdir()
        mlflow = cluster._start_mlflow(settings, logs)
        try:
            cluster._wait(
                lambda: TRACKING_SERVER.exists(settings, 2.0), [mlflow], 180, "MLflow server"
            )
            summary_path = tmp_path / "summary.json"
            done = smap("demo", "--quick", "--json", str(summary_path), env=env, timeout=1500)
            assert done.returncode == 0, done.stderr[-3000:]
        finally:
            cluster._stop([mlflow])
    summary = json.loads(summary_path.read_text())

    assert "drift" in [c["verdict"] for c in summary["checks"] if c["task"] == "engagement"]
    promoted = [c["retrain"] for c in summary["checks"] if c["retrain"]]
    promoted = [r for r in promoted if r.get("decision") == "promoted"]
    assert promoted, "persistent drift started no winning retrain"
    assert promoted[0]["challenger_value"] > promoted[0]["champion_value"]
    swap = summary["after_swap"]["engagement"]
    assert swap["new_version"] in swap["answered_by"]
    assert summary["failed_requests"] == 0 and swap["failed"] == 0
    # the data steps ran on the session's standalone master, one application per step
    ui = f"http://127.0.0.1:{cluster_env['SMAP_CLUSTER__SPARK_WEBUI_PORT']}/json/"
    finished = [a["name"] for a in httpx.get(ui, timeout=10).json()["completedapps"]]
    assert "smap-etl" in finished and finished.count("smap-features") >= 2, finished
