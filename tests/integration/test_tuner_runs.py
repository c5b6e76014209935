"""A run registers its own best among the families it was asked for, or nothing at all."""

from __future__ import annotations

from dataclasses import replace

import mlflow
import numpy as np
import optuna
import pytest
from mlflow.tracking import MlflowClient

from configs.settings import load_settings
from pipelines import flows
from pipelines.cli import main
from pipelines.training import train
from training import families
from training.search import FAIL_REASON, RUN_ID

pytestmark = pytest.mark.integration
COMPLETE = optuna.trial.TrialState.COMPLETE


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    root = tmp_path_factory.mktemp("tuner")
    settings = load_settings("local", env={"SMAP_DATA_DIR": str(root / "smap")})
    flows.simulate(settings)  # what training reads; it never reads the online store
    flows.ingest(settings)
    flows.apply_features(settings)
    return settings


def _study(settings) -> optuna.Study:
    (summary,) = optuna.get_all_study_summaries(settings.optuna_storage_url)
    return optuna.load_study(study_name=summary.study_name, storage=settings.optuna_storage_url)


def test_other_families_after_a_lightgbm_run_register_their_own_best(platform):
    first = train(platform, "engagement", trials=1, families=("lightgbm",), run_promotion=False)
    second = train(platform, "engagement", trials=2, families=("linear",), run_promotion=False)

    mine = [t for t in _study(platform).trials if t.user_attrs.get(RUN_ID) == second.run_id]
    assert [t.state for t in mine] == [COMPLETE, COMPLETE]  # the changed family set trains
    assert second.best_trial in {t.number for t in mine}
    model = mlflow.pyfunc.load_model(second.model_uri).unwrap_python_model()
    assert model.fitted.family == "linear"
    assert MlflowClient().get_run(second.run_id).data.params["best_family"] == "linear"
    assert second.version == first.version + 1


def test_a_run_whose_trials_all_fail_exits_non_zero_and_registers_nothing(
    platform, monkeypatch, capsys
):
    def singular(params, data, report):
        raise np.linalg.LinAlgError("Singular matrix")

    monkeypatch.setitem(
        families.FAMILIES, "linear", replace(families.FAMILIES["linear"], fit=singular)
    )
    monkeypatch.setenv("SMAP_DATA_DIR", str(platform.root))
    uri = platform.mlflow_tracking_uri
    client = MlflowClient(uri, registry_uri=uri)
    before = len(client.search_model_versions("name='engagement'"))

    argv = ["train", "engagement", "--families", "linear", "--trials", "2", "--no-promote"]
    assert main(argv) == 1

    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "no trial of this run completed (2 failed" in err
    assert "LinAlgError: Singular matrix" in err
    assert len(client.search_model_versions("name='engagement'")) == before
    failed = [t for t in _study(platform).trials if t.state == optuna.trial.TrialState.FAIL]
    assert [t.user_attrs[FAIL_REASON] for t in failed[-2:]] == ["LinAlgError: Singular matrix"] * 2
    experiment = client.get_experiment_by_name("smap-engagement").experiment_id
    (parent,) = client.search_runs(
        [experiment],
        "tags.`smap.host` != ''",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    assert parent.info.status == "FAILED"
    nested = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert {r.info.status for r in nested} == {"FAILED"} and len(nested) == 2
    assert {r.data.tags["smap.fail_reason"] for r in nested} == {"LinAlgError: Singular matrix"}
