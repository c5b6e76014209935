"""The gate refuses a challenger a plain linear model beats, and `smap evaluate --version N`
shows that version next to the champion, the plain linear model and the naive baseline,
against a real Feast training set and a real MLflow registry on a tiny simulated platform."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.pyfunc import PythonModel

from configs.settings import load_settings
from ingestion.warehouse import open_warehouse
from pipelines import flows
from pipelines.cli import main
from training.baseline import naive_prediction
from training.gate import gate_version
from training.linear_baseline import LinearBaseline, fit_linear
from training.registry import history
from training.tasks import get_task
from training.tracking import use_tracking

pytestmark = pytest.mark.integration
ENGAGEMENT = get_task("engagement")


class TowardsLinear(PythonModel):
    """The naive answer moved `step` of the way to the plain linear model's: a little better
    than naive at a small step, the linear model itself at step 1."""

    def __init__(self, linear: LinearBaseline, step: float):
        self.linear, self.step = linear, step
        self.features, self.threshold = linear.features, None

    def predict_frame(self, frame: pd.DataFrame) -> np.ndarray:
        naive = naive_prediction(ENGAGEMENT, frame)
        return naive + self.step * (self.linear.predict(frame) - naive)

    def predict(self, context, model_input, params=None):
        return self.predict_frame(model_input)


def _register(settings, model: PythonModel) -> int:
    use_tracking(settings)
    mlflow.set_experiment("smap-engagement")
    with mlflow.start_run() as run:
        mlflow.pyfunc.log_model(name="model", python_model=model, pip_requirements=["mlflow"])
    return int(mlflow.register_model(f"runs:/{run.info.run_id}/model", "engagement").version)


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    """A simulated platform with features applied, and the engagement training set built."""
    root = tmp_path_factory.mktemp("evaluate")
    settings = load_settings("local", env={"SMAP_DATA_DIR": str(root / "smap")})
    flows.simulate(settings)
    flows.ingest(settings)
    flows.apply_features(settings)
    return settings, ENGAGEMENT.trainer.build(settings, ENGAGEMENT)


def _json(text: str) -> dict:
    return json.loads(text[text.index("{") :])


def test_a_challenger_below_the_plain_linear_model_is_refused_and_evaluated_beside_it(
    platform, monkeypatch, capsys
):
    settings, stored = platform
    monkeypatch.setenv("SMAP_DATA_DIR", str(settings.root))
    linear = fit_linear(stored.training_set)
    assert linear is not None and linear.name == "ridge"
    weak = _register(settings, TowardsLinear(linear, 0.1))
    strong = _register(settings, TowardsLinear(linear, 1.0))  # the linear model itself

    capsys.readouterr()
    assert main(["evaluate", "engagement", "--version", str(weak), "--json"]) == 0
    alone = _json(capsys.readouterr().out)
    assert alone["model_version"] is None  # no champion yet: the version alone
    assert alone["linear_name"] == "ridge"
    assert alone["version"]["value"] < alone["linear_value"]
    assert alone["version"]["value"] > alone["baseline_value"]

    crowned = gate_version(settings, open_warehouse(settings), ENGAGEMENT, strong, stored=stored)
    assert crowned.decision == "first_champion", crowned.reason
    assert crowned.reason.endswith(f"(ridge {crowned.challenger_value:.4f})")
    refused = gate_version(settings, open_warehouse(settings), ENGAGEMENT, weak, stored=stored)
    assert refused.decision == "below_linear" and refused.champion_after == strong
    assert "below a plain ridge on the same features: " in refused.reason
    assert "(margin 0.005; naive " in refused.reason

    assert main(["evaluate", "engagement", "--version", str(weak)]) == 0
    table = capsys.readouterr().out
    assert f"version {weak}" in table and f"champion v{strong}" in table and "ridge" in table
    assert "below_linear" in table
    assert main(["evaluate", "engagement", "--version", str(weak), "--json"]) == 0
    beside = _json(capsys.readouterr().out)
    assert beside["model_version"] == strong
    assert beside["champion_value"] == pytest.approx(beside["linear_value"])
    assert beside["version"]["value"] == pytest.approx(alone["version"]["value"])
    assert beside["version"]["gate"]["decision"] == "below_linear"

    assert main(["evaluate", "engagement", "--version", "99"]) == 1
    said = capsys.readouterr().err.strip()
    assert said == f"error: --version: engagement has no version 99 (registered: {weak}, {strong})"

    decisions = history(open_warehouse(settings), "engagement").decision.tolist()
    assert decisions == ["first_champion", "below_linear"]
