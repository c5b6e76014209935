"""The champion gate left alone on a tiny simulated platform (local profile, real Feast and
MLflow): `smap train` / `smap gate` fail closed on a registry error, segmentation is gated.

Registry failures are injected by making one MlflowClient method raise when it is called.
"""

from __future__ import annotations

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE
from mlflow.tracking import MlflowClient

from configs.settings import load_settings
from ingestion.warehouse import open_warehouse
from pipelines import flows
from pipelines.cli import main
from pipelines.training import train
from training.registry import current_champion, history
from training.segmentation import segment
from training.tasks import get_task
from training.tracking import use_tracking

pytestmark = pytest.mark.integration
LINEAR = ("linear",)


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    """One simulated platform with features applied and materialized, and a first champion."""
    root = tmp_path_factory.mktemp("gate") / "smap"
    settings = load_settings("local", env={"SMAP_DATA_DIR": str(root)})
    flows.prepare_data(settings)
    first = train(settings, "engagement", trials=1, families=LINEAR)
    assert first.decision.decision == "first_champion"
    return settings, first.version


def _failing(error: Exception):
    def call(*args, **kwargs):
        raise error

    return call


def _one_line(capsys) -> str:
    """The error line the CLI printed (in-process, MLflow's own log handler may print too)."""
    lines = capsys.readouterr().err.splitlines()
    assert "Traceback (most recent call last):" not in lines
    assert [line for line in lines if line.startswith("error:")] == lines[-1:]
    assert lines[-1].startswith("error: MLflow registry at sqlite:///")
    return lines[-1]


def _champion_everywhere(settings) -> int | None:
    """The alias's version, asserting the history's last row names the same one."""
    client = use_tracking(settings)
    alias = current_champion(client, "engagement")
    log = history(open_warehouse(settings), get_task("engagement"), client)
    assert int(log.champion_after.iloc[-1]) == alias
    return alias


def test_train_and_promote_with_a_failing_registry_exit_1_and_keep_the_champion(
    platform, monkeypatch, capsys
):
    settings, champion = platform
    monkeypatch.setenv("SMAP_DATA_DIR", str(settings.data_dir))  # the CLI opens the same data
    locked = MlflowException(
        "(sqlite3.OperationalError) database is locked", TEMPORARILY_UNAVAILABLE
    )
    capsys.readouterr()
    with monkeypatch.context() as patch:
        patch.setattr(MlflowClient, "set_registered_model_alias", _failing(locked))
        argv = ["train", "engagement", "--trials", "1", "--families", "linear"]
        assert main(argv) == 1
    err = _one_line(capsys)
    assert "moving engagement@" in err and "database is locked" in err
    assert _champion_everywhere(settings) == champion

    with monkeypatch.context() as patch:
        refused = MlflowException("API request to http://mlflow:5000 failed (Connection refused)")
        patch.setattr(MlflowClient, "get_model_version_by_alias", _failing(refused))
        assert main(["gate", "engagement"]) == 1
    assert "reading engagement@champion failed" in _one_line(capsys)
    assert _champion_everywhere(settings) == champion


def test_segmentation_goes_through_the_gate(platform):
    settings, _ = platform
    first = segment(settings)
    assert first.decision.decision == "first_champion" and first.segments_written > 0
    assert "naive baseline" in first.decision.reason

    again = segment(settings)  # same users, same seed: the same partition only ties
    assert again.decision.decision == "kept_champion" and again.segments_written == 0
    assert again.decision.champion_after == first.version
    written = open_warehouse(settings).read("user_segments")
    assert (written.model_version == first.version).all()
    client = use_tracking(settings)
    assert current_champion(client, "segmentation") == first.version
    log = history(open_warehouse(settings), get_task("segmentation"), client)
    assert log.decision.tolist() == ["first_champion", "kept_champion"]
