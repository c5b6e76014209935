"""The champion gate fails closed, against a real MLflow registry (SQLite in a temp folder).

Failures are injected by making one MlflowClient method or the warehouse's append raise at
the moment it is called; the registry and the history table themselves are real.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    RESOURCE_DOES_NOT_EXIST,
    TEMPORARILY_UNAVAILABLE,
)
from mlflow.pyfunc import PythonModel
from mlflow.tracking import MlflowClient
from sklearn.cluster import KMeans
from sklearn.metrics import r2_score
from sklearn.preprocessing import StandardScaler

from configs.settings import load_settings
from ingestion.warehouse import ParquetWarehouse, WarehouseError, open_warehouse
from pipelines.cli import main
from training.dataset import Split, TrainingSet
from training.errors import RegistryError, TaskError
from training.evaluate import evaluate
from training.linear_baseline import fit_linear
from training.registry import (
    CHALLENGER,
    CHAMPION,
    LINEAR_TIE,
    alias_version,
    champion_at,
    current_champion,
    history,
    promote,
)
from training.segmentation import SegmentModel, silhouette_scorer
from training.tasks import get_task
from training.tracking import experiment_for, use_tracking

ENGAGEMENT = get_task("engagement")


class Linear(PythonModel):
    """A tiny engagement model: bias + weighted features."""

    def __init__(self, weights: dict[str, float], bias: float = 0.0):
        self.weights, self.bias = weights, bias

    def predict_frame(self, frame: pd.DataFrame) -> np.ndarray:
        out = np.full(len(frame), self.bias)
        for column, weight in self.weights.items():
            out = out + weight * frame[column].to_numpy(dtype=float)
        return out

    def predict(self, context, model_input, params=None):
        return self.predict_frame(model_input)


CONSTANT = Linear({}, 0.1)  # r2 about 0: worse than the baseline's about 0.57
OK = Linear({"engagement_rate_28d": 1.0, "other": 0.5})  # r2 about 0.9
GOOD = Linear({"engagement_rate_28d": 1.0, "other": 1.0})  # r2 about 1


@pytest.fixture(scope="module")
def empty_registry(tmp_path_factory) -> Path:
    """An MLflow database with its schema created once (creating it takes seconds)."""
    root = tmp_path_factory.mktemp("registry")
    use_tracking(load_settings("local", env={"SMAP_DATA_DIR": str(root)}))
    return root / "mlflow.db"


@pytest.fixture
def gate(tmp_path, empty_registry):
    """A real registry and warehouse of the local profile in a temp folder, and a holdout
    where the naive baseline (the author's 28-day rate) explains about half the target."""
    settings = load_settings("local", env={"SMAP_DATA_DIR": str(tmp_path / "smap")})
    settings.root.mkdir(parents=True)
    shutil.copy(empty_registry, settings.root / "mlflow.db")
    client = use_tracking(settings)
    experiment_for(settings, "gate-test")  # artifacts under the temp folder
    rng = np.random.default_rng(0)
    rate, other = rng.uniform(0, 0.2, 400), rng.normal(0, 0.05, 400)
    holdout = pd.DataFrame(
        {
            "engagement_rate_28d": rate,
            "other": other,
            "target": rate + other + rng.normal(0, 0.005, 400),
        }
    )

    class Gate:
        pass

    g = Gate()
    g.settings, g.client, g.warehouse, g.holdout = (
        settings,
        client,
        open_warehouse(settings),
        holdout,
    )
    g.register = lambda model, task="engagement": _register(model, task)
    g.promote = lambda version, task=ENGAGEMENT, holdout=holdout, scorer=r2: promote(
        client, g.warehouse, task, version, holdout, scorer, 0.0
    )
    return g


def r2(frame: pd.DataFrame, pred) -> dict[str, float]:
    return {"r2": float(r2_score(frame.target, pred))}


def _register(model: PythonModel, task: str) -> int:
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="model", python_model=model, pip_requirements=["mlflow"]
        )
    return int(mlflow.register_model(info.model_uri, task).version)


def _raising(error: Exception, after=None):
    """A stand-in for a client method that fails (after doing `after`, if given)."""

    def call(*args, **kwargs):
        if after is not None:
            after(*args, **kwargs)
        raise error

    return call


def _agree(gate, task: str = "engagement") -> int | None:
    """Assert the history's last champion is the alias's version (after reconciling)."""
    history(gate.warehouse, get_task(task), gate.client)
    alias = current_champion(gate.client, task)
    assert champion_at(gate.warehouse, task, datetime.now(UTC)) == alias
    return alias


LOCKED = MlflowException("(sqlite3.OperationalError) database is locked", TEMPORARILY_UNAVAILABLE)
REFUSED = MlflowException(
    "API request to http://127.0.0.1:5000/api/2.0/mlflow/registered-models/alias failed with "
    "exception HTTPConnectionPool: Max retries exceeded (Connection refused)"
)


def test_only_a_missing_model_or_alias_means_no_champion(gate, monkeypatch):
    assert current_champion(gate.client, "engagement") is None  # no registered model at all
    version = gate.register(OK)
    assert current_champion(gate.client, "engagement") is None  # a model, no alias
    gate.client.set_registered_model_alias("engagement", CHAMPION, str(version))
    assert current_champion(gate.client, "engagement") == version

    dangling = MlflowException(
        "Model Version (name=engagement, version=9) not found", RESOURCE_DOES_NOT_EXIST
    )
    for error, says in [
        (REFUSED, "Connection refused"),
        (LOCKED, "database is locked"),
        (MlflowException("INTERNAL_ERROR: Response: 502 Bad Gateway"), "502 Bad Gateway"),
        (dangling, "version=9) not found"),
    ]:
        monkeypatch.setattr(MlflowClient, "get_model_version_by_alias", _raising(error))
        with pytest.raises(RegistryError, match="MLflow registry at sqlite:///") as caught:
            current_champion(gate.client, "engagement")
        assert says in str(caught.value) and "\n" not in str(caught.value)


def test_a_registry_error_while_promoting_keeps_the_champion(gate, monkeypatch):
    first = gate.register(OK)
    assert gate.promote(first).decision == "first_champion"
    better = gate.register(GOOD)
    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", _raising(LOCKED))
    with pytest.raises(RegistryError, match="moving engagement@champion to version .* locked"):
        gate.promote(better)
    monkeypatch.undo()
    assert current_champion(gate.client, "engagement") == first
    assert history(gate.warehouse, "engagement").decision.tolist() == ["first_champion"]
    assert _agree(gate) == first

    monkeypatch.setattr(MlflowClient, "get_model_version_by_alias", _raising(REFUSED))
    with pytest.raises(RegistryError, match="reading engagement@champion failed"):
        gate.promote(better)  # never "no champion yet", so never a first champion
    monkeypatch.undo()
    assert _agree(gate) == first


def test_a_first_model_worse_than_the_baseline_is_not_crowned(gate):
    weak = gate.register(CONSTANT)
    refused = gate.promote(weak)
    assert refused.decision == "below_baseline" and refused.champion_after is None
    assert "does not beat the naive baseline's" in refused.reason
    assert "stays challenger" in refused.reason
    assert current_champion(gate.client, "engagement") is None
    assert alias_version(gate.client, "engagement", CHALLENGER) == weak
    assert _agree(gate) is None
    with pytest.raises(TaskError) as said:  # evaluate names the refused version and why
        evaluate(gate.settings, ENGAGEMENT)
    assert f"the gate refused version {weak} (below_baseline): r2 " in str(said.value)
    assert "does not beat the naive baseline's 0.5" in str(said.value)
    description = gate.client.get_model_version("engagement", str(weak)).description
    assert description == f"Gate: {refused.reason}."

    strong = gate.register(OK)
    crowned = gate.promote(strong)
    assert crowned.decision == "first_champion" and "beats the naive baseline" in crowned.reason
    assert _agree(gate) == strong


def test_a_challenger_a_plain_ridge_beats_never_replaces_a_champion_and_a_tie_does(gate):
    n = len(gate.holdout)
    split = Split(np.arange(n // 2), np.arange(n // 2, n), np.arange(n // 2, n))
    features = ["engagement_rate_28d", "other"]
    ts = TrainingSet(ENGAGEMENT, gate.holdout, features, [], split, "fp", {})
    ridge = fit_linear(ts)  # r2 about 1 on this holdout, like GOOD

    def promote_against_ridge(version: int):
        return promote(
            gate.client, gate.warehouse, ENGAGEMENT, version, gate.holdout, r2, 0.0, ridge
        )

    first = promote_against_ridge(gate.register(OK))  # beats naive, loses to the ridge by ~0.1
    assert first.decision == "first_champion"  # crowned so the task answers, and says why
    plain = ridge_value(ridge, gate.holdout)
    assert f"but is below a plain ridge on the same features ({plain:.4f}" in first.reason
    tied = promote_against_ridge(gate.register(GOOD))  # within LINEAR_TIE of the ridge
    assert tied.decision == "promoted"
    assert tied.reason.endswith(f"ridge {ridge_value(ridge, gate.holdout):.4f})")

    ok = gate.register(OK)
    refused = promote_against_ridge(ok)
    assert refused.decision == "below_linear" and refused.champion_after == tied.version
    said = f"r2 below a plain ridge on the same features: {refused.challenger_value:.4f} vs "
    assert refused.reason.startswith(f"{said}{ridge_value(ridge, gate.holdout):.4f}")
    assert ridge_value(ridge, gate.holdout) - refused.challenger_value > 0.05
    assert f"(margin {LINEAR_TIE}; naive 0.5" in refused.reason
    assert current_champion(gate.client, "engagement") == tied.version


def ridge_value(ridge, holdout: pd.DataFrame) -> float:
    return r2(holdout, ridge.predict(holdout))["r2"]


def test_history_append_failing_moves_the_alias_back(gate, monkeypatch):
    first = gate.register(OK)
    gate.promote(first)
    better = gate.register(GOOD)
    monkeypatch.setattr(
        ParquetWarehouse, "append", _raising(WarehouseError("disk full writing champion_history"))
    )
    with pytest.raises(RegistryError, match="could not record version .* engagement@champion") as e:
        gate.promote(better)
    assert f"stays on version {first}" in str(e.value)
    monkeypatch.undo()
    assert current_champion(gate.client, "engagement") == first
    assert _agree(gate) == first
    assert history(gate.warehouse, "engagement").decision.tolist() == ["first_champion"]

    assert gate.promote(better).decision == "promoted"  # nothing left half-done
    assert _agree(gate) == better


def test_a_move_the_history_never_heard_of_is_recorded_by_the_next_reader(gate, monkeypatch):
    """The alias moved, then the history write and the move back both failed (as if the
    process had been killed between the two writes): reconcile records the gate's decision."""
    first = gate.register(OK)
    gate.promote(first)
    better = gate.register(GOOD)
    real_set = MlflowClient.set_registered_model_alias
    calls = []

    def set_alias_once(self, *args):
        calls.append(args)
        if len(calls) > 1:
            raise LOCKED
        return real_set(self, *args)

    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", set_alias_once)
    monkeypatch.setattr(ParquetWarehouse, "append", _raising(WarehouseError("disk full")))
    with pytest.raises(RegistryError, match="moving it back failed too"):
        gate.promote(better)
    monkeypatch.undo()
    assert current_champion(gate.client, "engagement") == better  # the two stores disagree
    assert champion_at(gate.warehouse, "engagement", datetime.now(UTC)) == first

    log = history(gate.warehouse, ENGAGEMENT, gate.client)  # the reader repairs it
    assert log.decision.tolist() == ["first_champion", "promoted"]
    assert log.version.iloc[-1] == better and log.champion_before.iloc[-1] == first
    assert np.isfinite(log.challenger_value.iloc[-1]) and "beats" in log.reason.iloc[-1]
    assert _agree(gate) == better
    assert len(history(gate.warehouse, ENGAGEMENT, gate.client)) == 2  # repaired once


def test_an_alias_call_that_failed_after_it_took_effect_is_repaired_by_the_next_gate(
    gate, monkeypatch
):
    first = gate.register(OK)
    gate.promote(first)
    better = gate.register(GOOD)
    real_set = MlflowClient.set_registered_model_alias
    monkeypatch.setattr(  # e.g. a read timeout after the server applied the request
        MlflowClient, "set_registered_model_alias", _raising(REFUSED, after=real_set)
    )
    with pytest.raises(RegistryError, match="Connection refused"):
        gate.promote(better)
    monkeypatch.undo()
    assert current_champion(gate.client, "engagement") == better

    third = gate.register(OK)
    kept = gate.promote(third)  # reconciles first, then gates against the real champion
    assert kept.decision == "kept_champion" and kept.champion_before == better
    log = history(gate.warehouse, "engagement")
    assert log.decision.tolist() == ["first_champion", "promoted", "kept_champion"]
    assert _agree(gate) == better


def test_an_alias_moved_by_hand_is_recorded_as_found(gate):
    version = gate.register(OK)
    gate.client.set_registered_model_alias("engagement", CHAMPION, str(version))
    log = history(gate.warehouse, ENGAGEMENT, gate.client)
    assert log.decision.tolist() == ["reconciled"] and log.champion_after.iloc[0] == version
    gate.client.delete_registered_model_alias("engagement", CHAMPION)
    assert _agree(gate) is None
    assert history(gate.warehouse, "engagement").decision.tolist() == ["reconciled"] * 2


def test_cli_rollback_with_a_failing_registry_is_one_line_and_keeps_the_champion(
    gate, monkeypatch, capsys
):
    first = gate.register(OK)
    gate.promote(first)
    better = gate.register(GOOD)
    gate.promote(better)
    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", _raising(LOCKED))
    capsys.readouterr()
    assert main(["models", "rollback", "engagement"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: MLflow registry at sqlite:///") and err.count("\n") == 1
    assert f"moving engagement@champion to version {first} failed" in err
    monkeypatch.undo()
    assert current_champion(gate.client, "engagement") == better
    assert _agree(gate) == better


def test_segmentation_is_gated_by_silhouette_against_activity_tiers(gate):
    """Three behaviour groups; activity separates only the first from the other two."""
    rng = np.random.default_rng(1)
    groups = np.repeat([0, 1, 2], 60)
    centres = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])[groups]
    frame = pd.DataFrame(centres + rng.normal(0, 0.5, centres.shape), columns=["posts", "follows"])
    frame["active_days_28d"] = np.where(
        groups == 0, rng.uniform(0, 9, 180), rng.uniform(10, 28, 180)
    )
    frame["noise"] = rng.normal(0, 1, 180)

    def model(k: int, columns: list[str]) -> SegmentModel:
        scaler = StandardScaler().fit(frame[columns].to_numpy(dtype=float))
        x = scaler.transform(frame[columns].to_numpy(dtype=float))
        kmeans = KMeans(n_clusters=k, n_init=4, random_state=0).fit(x)
        return SegmentModel(columns, {}, [], scaler, kmeans, np.arange(k))

    task = get_task("segmentation")
    space = model(3, ["posts", "follows", "active_days_28d"])
    scorer = silhouette_scorer(space)
    useless = gate.register(model(3, ["noise"]), "segmentation")
    refused = gate.promote(useless, task, frame, scorer)
    assert refused.decision == "below_baseline" and "active days" in refused.reason
    assert current_champion(gate.client, task.name) is None

    crowned = gate.promote(gate.register(space, "segmentation"), task, frame, scorer)
    assert crowned.decision == "first_champion" and crowned.challenger_value > 0.5
    same = gate.promote(gate.register(space, "segmentation"), task, frame, scorer)
    assert same.decision == "kept_champion"  # a tie keeps the champion
    assert _agree(gate, "segmentation") == crowned.version
