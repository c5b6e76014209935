"""`smap train TASK --worker` on the services and cluster profiles: workers started at once
share one round of a study on PostgreSQL, split its budget without repeats, and exactly one
registers and gates; a worker that comes after the round was gated runs nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from ingestion.warehouse import open_warehouse
from pipelines import flows
from training.registry import history
from training.search import study_name
from training.tasks import get_task
from training.tracking import use_tracking
from training.workers import GATED, ROUND

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
STUDY = study_name("smap", "engagement", get_task("engagement").feature_service)


@pytest.fixture
def cluster_settings(tmp_path, pg_database, redis_online):
    """The cluster profile on a private database and Feast project (Spark in process)."""
    from configs.settings import load_settings

    project = f"t{uuid.uuid4().hex[:10]}"
    yield load_settings(
        "cluster",
        env={
            "SMAP_DATA_DIR": str(tmp_path / "smap"),
            "SMAP_DATABASE": pg_database,
            "SMAP_FEAST__PROJECT": project,
            "SMAP_SPARK__MASTER": "local[2]",
        },
    )
    for key in redis_online.scan_iter(match=b"*" + project.encode() + b"*", count=1000):
        redis_online.delete(key)


@pytest.fixture(params=["services", "cluster"])
def profile_settings(request):
    return request.getfixturevalue(f"{request.param}_settings")


def _worker(settings, *extra: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")} | {
        "SMAP_PROFILE": settings.profile,
        "SMAP_SPARK__MASTER": settings.spark.master,
        "SMAP_DATABASE": settings.postgres.database,
        "SMAP_FEAST__PROJECT": settings.feast.project,
        "SMAP_DATA_DIR": str(settings.root),
        "COLUMNS": "200",  # rich tables unwrapped, so a reason reads as one line
    }
    cmd = [sys.executable, "-m", "pipelines", "train", "engagement", "--worker", *extra]
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _finish(worker: subprocess.Popen) -> str:
    out, err = worker.communicate(timeout=900)
    assert worker.returncode == 0, err[-2000:]
    return out


def test_workers_split_one_budget_and_one_of_them_gates(profile_settings):
    settings = profile_settings  # services, or cluster: PostgreSQL study storage both
    flows.prepare_data(settings)
    args = ("--trials", "6", "--families", "linear")

    outputs = [_finish(w) for w in [_worker(settings, *args) for _ in range(2)]]

    study = optuna.load_study(study_name=STUDY, storage=settings.optuna_storage_url)
    numbers = [t.number for t in study.trials]
    assert sorted(numbers) == list(range(6))  # unique, and not one more than the budget
    assert all(t.state.is_finished() for t in study.trials)
    assert all(t.user_attrs["smap.worker"] for t in study.trials)  # each says who ran it
    assert study.user_attrs[ROUND] == {
        "budget": 6,
        "first_trial": 0,
        "fingerprint": study.trials[0].user_attrs["smap.data_fingerprint"],
    }
    client = use_tracking(settings)
    versions = client.search_model_versions("name='engagement'")
    assert [int(v.version) for v in versions] == [1]
    assert study.user_attrs[GATED]["version"] == 1
    decisions = history(open_warehouse(settings), "engagement")
    assert decisions.version.tolist() == [1]  # gated once
    gaters = [o for o in outputs if "models:/engagement/1" in o]
    waiters = [o for o in outputs if "not this worker" in o]
    assert len(gaters) == 1 and len(waiters) == 1, outputs
    run = MlflowClient().get_run(versions[0].run_id)
    assert run.data.tags["smap.round_budget"] == "6"

    late = _finish(_worker(settings, *args))

    assert "trials run here" in late and "none" in late
    assert "gated the round (version 1)" in late, late
    assert len(optuna.load_study(study_name=STUDY, storage=study._storage).trials) == 6
    assert len(client.search_model_versions("name='engagement'")) == 1


def test_a_worker_asking_another_budget_is_one_line(services_settings):
    flows.prepare_data(services_settings)
    _finish(_worker(services_settings, "--trials", "1", "--families", "linear", "--no-promote"))

    other = _worker(services_settings, "--trials", "3", "--families", "linear")
    out, err = other.communicate(timeout=900)

    assert other.returncode != 0
    assert f"--trials: study {STUDY} has a round of 1 trials" in err, err
