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

from configs.settings import load_settings
from ingestion.warehouse import open_warehouse
from pipelines import flows
from training.registry import history
from training.search import study_name
from training.tasks import get_task
from training.tracking import use_tracking
from training.workers import GATED, ROUND

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
FEATURE_SERVICE = get_task("engagement").feature_service
STUDY = study_name("smap", "engagement", FEATURE_SERVICE)


# As in test_cluster_models.py: until the lake warehouse and Feast's Spark offline store land,
# the cluster profile's data steps run on the local engines; tracking (the MLflow server over
# HTTP) and the study storage are the session cluster's own.
LOCAL_ENGINES = {
    "SMAP_WAREHOUSE__TYPE": "parquet",
    "SMAP_FEAST__OFFLINE_STORE": "duckdb",
    "SMAP_FEAST__ONLINE_STORE": "redis",
}


@pytest.fixture
def services_workers_env(services_settings) -> dict[str, str]:
    return {
        "SMAP_PROFILE": "services",
        "SMAP_DATABASE": services_settings.postgres.database,
        "SMAP_FEAST__PROJECT": services_settings.feast.project,
        "SMAP_DATA_DIR": str(services_settings.root),
    }


@pytest.fixture
def cluster_workers_env(cluster_env, tmp_path) -> dict[str, str]:
    """The session's cluster with a data folder and a study of this test's own (the cluster's
    database and registry are shared with other tests)."""
    return {
        **cluster_env,
        **LOCAL_ENGINES,
        "SMAP_DATA_DIR": str(tmp_path / "smap"),
        "SMAP_OPTUNA__STUDY_PREFIX": f"w{uuid.uuid4().hex[:8]}",
    }


@pytest.fixture(params=["services", "cluster"])
def workers_env(request) -> dict[str, str]:
    return request.getfixturevalue(f"{request.param}_workers_env")


def _worker(env: dict[str, str], *extra: str) -> subprocess.Popen:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "SMAP_"))}
    cmd = [sys.executable, "-m", "pipelines", "train", "engagement", "--worker", *extra]
    return subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=base | env | {"COLUMNS": "200"},  # rich tables unwrapped: a reason reads whole
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(worker: subprocess.Popen) -> str:
    out, err = worker.communicate(timeout=900)
    assert worker.returncode == 0, err[-2000:]
    return out


def test_workers_split_one_budget_and_one_of_them_gates(workers_env):
    settings = load_settings(env=workers_env)  # services, or cluster: PostgreSQL studies both
    flows.prepare_data(settings)
    client = use_tracking(settings)
    before = {int(v.version) for v in client.search_model_versions("name='engagement'")}
    args = ("--trials", "6", "--families", "linear")

    outputs = [_finish(w) for w in [_worker(workers_env, *args) for _ in range(2)]]

    name = study_name(settings.optuna.study_prefix, "engagement", FEATURE_SERVICE)
    study = optuna.load_study(study_name=name, storage=settings.optuna_storage_url)
    numbers = [t.number for t in study.trials]
    assert sorted(numbers) == list(range(6))  # unique, and not one more than the budget
    assert all(t.state.is_finished() for t in study.trials)
    assert all(t.user_attrs["smap.worker"] for t in study.trials)  # each says who ran it
    assert study.user_attrs[ROUND] == {
        "budget": 6,
        "first_trial": 0,
        "fingerprint": study.trials[0].user_attrs["smap.data_fingerprint"],
    }
    new = {int(v.version) for v in client.search_model_versions("name='engagement'")} - before
    assert len(new) == 1  # exactly one worker registered
    (version,) = new
    assert study.user_attrs[GATED]["version"] == version
    decisions = history(open_warehouse(settings), "engagement")
    # gated once (on the shared cluster registry, the history also records the champion an
    # earlier test crowned, which the gate reconciles first)
    assert decisions.version.tolist().count(version) == 1
    gaters = [o for o in outputs if f"models:/engagement/{version}" in o]
    waiters = [o for o in outputs if "not this worker" in o]
    assert len(gaters) == 1 and len(waiters) == 1, outputs
    run = client.get_run(client.get_model_version("engagement", str(version)).run_id)
    assert run.data.tags["smap.round_budget"] == "6"

    late = _finish(_worker(workers_env, *args))

    assert "trials run here" in late and "none" in late
    assert f"gated the round (version {version})" in late, late
    assert len(optuna.load_study(study_name=name, storage=study._storage).trials) == 6
    assert {int(v.version) for v in client.search_model_versions("name='engagement'")} == (
        before | new
    )


def test_a_worker_asking_another_budget_is_one_line(services_settings, services_workers_env):
    flows.prepare_data(services_settings)
    _finish(_worker(services_workers_env, "--trials", "1", "--families", "linear", "--no-promote"))

    other = _worker(services_workers_env, "--trials", "3", "--families", "linear")
    out, err = other.communicate(timeout=900)

    assert other.returncode != 0
    assert f"--trials: study {STUDY} has a round of 1 trials" in err, err
