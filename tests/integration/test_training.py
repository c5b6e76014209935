"""Training against a real Feast store and a real MLflow registry on a tiny simulated platform."""

from __future__ import annotations

import os
import subprocess
import sys

import mlflow
import numpy as np
import optuna
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from configs.settings import load_settings
from ingestion.warehouse import open_warehouse
from pipelines import flows
from pipelines.cli import main
from pipelines.training import train
from training.families import FeatureEncoder, Fitted
from training.gate import gate_version
from training.packaging import SmapModel
from training.registry import champion_at, history
from training.tasks import get_task
from training.tracking import use_tracking

pytestmark = pytest.mark.integration
FAST = ("linear", "lightgbm")


def promote_version(settings, task_name: str, version: int):
    """The gate on its own (`smap gate TASK --version N`)."""
    return gate_version(settings, open_warehouse(settings), get_task(task_name), version)


def _load_offline(settings) -> None:
    """What training reads: simulated tables, the ETL and the Feast definitions (training and
    evaluation never read the online store, so it is not loaded)."""
    flows.simulate(settings)
    flows.ingest(settings)
    flows.apply_features(settings)


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    """One simulated platform with features applied (local profile)."""
    root = tmp_path_factory.mktemp("training")
    settings = load_settings("local", env={"SMAP_DATA_DIR": str(root / "smap")})
    _load_offline(settings)
    return settings


@pytest.fixture(scope="module")
def services_platform(module_services_settings):
    """One simulated platform on PostgreSQL with features applied, for the services tests."""
    _load_offline(module_services_settings)
    return module_services_settings


@pytest.fixture(scope="module")
def trained(platform):
    return train(platform, "engagement", trials=3, families=FAST)


class _Constant:
    """A deliberately useless estimator: predicts the same engagement rate for every post."""

    def predict(self, x):
        return np.full(len(x), 0.05)


def _register_constant(settings, task="engagement") -> int:
    use_tracking(settings)
    mlflow.set_experiment(f"smap-{task}")
    features = ["engagement_rate_28d"]
    encoder = FeatureEncoder.fit(pd.DataFrame({"engagement_rate_28d": [0.1]}), features, [], False)
    model = SmapModel(
        encoder, Fitted(_Constant(), "regression", "constant"), "regression", features
    )
    with mlflow.start_run() as run:
        mlflow.pyfunc.log_model(name="model", python_model=model, pip_requirements=["mlflow"])
    return int(mlflow.register_model(f"runs:/{run.info.run_id}/model", task).version)


def test_parent_run_holds_the_lineage(platform, trained):
    run = MlflowClient().get_run(trained.run_id)
    tags, params = run.data.tags, run.data.params
    assert tags["features"] == get_task("engagement").feature_service
    assert len(tags["data"]) == 16
    assert tags["study"] == trained.study
    assert "commit" in tags and "best_trial_id" in tags
    assert params["window_train_start"] < params["window_test_start"]
    assert {"test_r2", "test_mae", "validation_r2"} <= set(run.data.metrics)
    artifacts = {a.path for a in MlflowClient().list_artifacts(trained.run_id, "plots")}
    assert "plots/optuna_history.png" in artifacts


def test_the_registry_describes_the_task_and_the_gate(platform, trained):
    client = MlflowClient()
    experiment = client.get_experiment_by_name("smap-engagement")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert "engagement_v3" in experiment.tags["mlflow.note.content"]
    active = {e.name for e in client.search_experiments()}
    assert "Default" not in active
    model = client.get_registered_model("engagement")
    assert "engagement_v3" in model.description and "r2" in model.description
    version = client.get_model_version("engagement", str(trained.version))
    assert version.description.splitlines()[0] == f"Gate: {trained.decision.reason}."
    assert "trained on " in version.description
    assert version.tags["gate"] == trained.decision.decision


def test_each_trial_is_a_nested_run(platform, trained):
    runs = mlflow.search_runs(
        experiment_names=["smap-engagement"],
        filter_string=f"tags.mlflow.parentRunId = '{trained.run_id}'",
    )
    assert len(runs) == 3
    assert set(runs["tags.smap.trial_state"]) <= {"COMPLETE", "PRUNED", "FAIL"}


def test_registered_version_has_a_signature_and_serves(platform, trained):
    info = mlflow.models.get_model_info(trained.model_uri)
    assert info.signature is not None
    assert "engagement_rate_28d" in info.signature.inputs.input_names()
    assert trained.decision.decision == "first_champion"
    model = mlflow.pyfunc.load_model("models:/engagement@champion")
    text = {"content_type": "video", "content_category": "food", "content_platform": "x"}
    example = pd.DataFrame([{n: text.get(n, 0.0) for n in info.signature.inputs.input_names()}])
    assert np.isfinite(model.predict(example)).all()


def test_second_train_continues_the_study(platform, trained):
    again = train(platform, "engagement", trials=2, families=FAST, run_promotion=False)
    study = optuna.load_study(study_name=trained.study, storage=platform.optuna_storage_url)
    assert again.trials_in_study == len(study.trials) == 5


def test_gate_keeps_a_worse_challenger_out_and_rollback_restores(platform, trained):
    client = use_tracking(platform)
    champion = int(client.get_model_version_by_alias("engagement", "champion").version)
    worse = _register_constant(platform)
    kept = promote_version(platform, "engagement", worse)
    # a constant loses to the champion, and before that to the naive baseline the gate checks
    assert kept.decision in {"kept_champion", "below_baseline"}
    assert int(client.get_model_version_by_alias("engagement", "champion").version) == champion
    assert int(client.get_model_version_by_alias("engagement", "challenger").version) == worse

    # the challenger: one LightGBM trial at moderate settings, queued so that the search does
    # not draw a slow one (600 rounds of 120 leaves took 30 s); it clearly beats the champion
    study = optuna.load_study(study_name=trained.study, storage=platform.optuna_storage_url)
    study.enqueue_trial(
        {"lightgbm.rounds": 200, "lightgbm.learning_rate": 0.05, "lightgbm.num_leaves": 15}
    )
    better = train(platform, "engagement", trials=1, families=("lightgbm",), run_promotion=False)
    margin_free = promote_version(platform, "engagement", better.version)
    assert margin_free.decision == "promoted", margin_free.reason
    assert (
        int(client.get_model_version_by_alias("engagement", "champion").version) == better.version
    )

    from ingestion.warehouse import open_warehouse
    from training.registry import rollback

    back = rollback(client, open_warehouse(platform), get_task("engagement"))
    assert back.champion_after == champion
    assert int(client.get_model_version_by_alias("engagement", "champion").version) == champion


def test_first_model_below_the_baseline_is_not_crowned_and_history_tells_when(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("SMAP_DATA_DIR", str(tmp_path / "smap"))
    settings = load_settings("local", env={"SMAP_DATA_DIR": str(tmp_path / "smap")})
    _load_offline(settings)
    weak = _register_constant(settings)
    refused = promote_version(settings, "engagement", weak)
    assert refused.decision == "below_baseline" and refused.champion_after is None
    assert "does not beat the naive baseline" in refused.reason
    client = use_tracking(settings)
    assert int(client.get_model_version_by_alias("engagement", "challenger").version) == weak
    strong = train(settings, "engagement", trials=2, families=FAST)
    assert strong.decision.decision == "first_champion"
    assert (
        int(client.get_model_version_by_alias("engagement", "champion").version) == strong.version
    )

    from ingestion.warehouse import open_warehouse

    warehouse = open_warehouse(settings)
    log = history(warehouse, "engagement")
    assert log.decision.tolist() == ["below_baseline", "first_champion"]
    assert champion_at(warehouse, "engagement", log.decided_at.iloc[0]) is None
    assert champion_at(warehouse, "engagement", log.decided_at.iloc[1]) == strong.version
    capsys.readouterr()
    assert main(["models", "rollback", "engagement"]) == 1  # there was never another champion
    assert "no previous champion" in capsys.readouterr().err


def test_bad_requests_are_one_line_and_register_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SMAP_DATA_DIR", str(tmp_path / "smap"))
    assert main(["train", "engagment"]) == 1
    assert "unknown task 'engagment'" in capsys.readouterr().err
    settings = load_settings("local", env={"SMAP_DATA_DIR": str(tmp_path / "smap")})
    flows.simulate(settings)
    flows.ingest(settings)
    assert main(["train", "engagement", "--trials", "1"]) == 1  # features never applied
    service = get_task("engagement").feature_service
    assert f"feature service '{service}' is not registered" in capsys.readouterr().err
    assert MlflowClient().search_registered_models() == []


def test_empty_training_window_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SMAP_DATA_DIR", str(tmp_path / "smap"))
    settings = load_settings("local", env={"SMAP_DATA_DIR": str(tmp_path / "smap")})
    _load_offline(settings)
    from ingestion.schema import ANALYTICS_TABLES
    from ingestion.warehouse import open_warehouse

    warehouse = open_warehouse(settings)
    perf = warehouse.read("content_performance_metrics")
    warehouse.write(ANALYTICS_TABLES["content_performance_metrics"], perf.head(0))
    assert main(["train", "engagement", "--trials", "1"]) == 1
    assert "training window is empty" in capsys.readouterr().err
    assert MlflowClient().search_registered_models() == []


def test_every_task_trains_and_evaluates_on_services(services_platform):
    from training.evaluate import evaluate

    families = {"trend": ("lightgbm",)}
    crowned = []
    for task in ("engagement", "virality", "churn", "trend"):
        result = train(services_platform, task, trials=1, families=families.get(task, FAST))
        # one trial on tiny data may lose to the naive baseline or a plain linear model: then
        # the gate refuses it
        decision = result.decision
        refusals = {"below_baseline": "naive baseline", "below_linear": "a plain"}
        assert decision.decision in {"first_champion", *refusals}, (task, decision)
        if decision.decision in refusals:
            assert decision.champion_after is None
            assert refusals[decision.decision] in decision.reason
            continue
        crowned.append(task)
        report = evaluate(services_platform, get_task(task))
        assert report["model_version"] == result.version
        assert np.isfinite(report["champion_value"]) and np.isfinite(report["oracle_value"])
    assert len(crowned) >= 2, crowned


def test_two_workers_share_one_study_on_postgres(services_platform):
    env = dict(
        os.environ,
        SMAP_PROFILE="services",
        SMAP_DATABASE=services_platform.postgres.database,
        SMAP_FEAST__PROJECT=services_platform.feast.project,
        SMAP_DATA_DIR=str(services_platform.root),
        # a study of their own: the platform's churn study is also trained by another test
        SMAP_OPTUNA__STUDY_PREFIX="workers",
    )
    cmd = [
        sys.executable,
        "-m",
        "pipelines",
        "train",
        "churn",
        "--trials",
        "3",
        "--families",
        "linear,lightgbm",
        "--no-promote",
    ]
    workers = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outputs = [w.communicate(timeout=600) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], [o[1].decode()[-1500:] for o in outputs]
    study = optuna.load_study(
        study_name=f"workers-churn-{get_task('churn').feature_service}",
        storage=services_platform.optuna_storage_url,
    )
    numbers = [t.number for t in study.trials]
    assert sorted(numbers) == list(range(6))
    assert all(t.state.is_finished() for t in study.trials)


def test_chunked_retrieval_gives_the_same_training_set(platform):
    from training.dataset import build_training_set
    from training.snapshot import training_set

    task = get_task("engagement")
    whole = training_set(platform, task).training_set  # stored by training: one unchunked build
    chunked_settings = platform.model_copy(
        update={"training": platform.training.model_copy(update={"retrieval_chunk_rows": 1000})}
    )
    chunked = build_training_set(chunked_settings, task)
    assert len(whole.frame) > 3000
    assert chunked.fingerprint == whole.fingerprint
