"""The task and model-family registries are the one place to extend: every family fits and
predicts through its record, and nothing outside the task registry asks a task its kind."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import numpy as np
import pytest

import training.families
import training.tasks
from training.families import FAMILIES, fit, requirements, suggest
from training.families.base import Data, validation_loss
from training.tasks import TASKS, get_task, register
from training.trainers import REGRESSION

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("configs", "ingestion", "feature_repo", "training", "analytics", "serving")
PACKAGES += ("monitoring", "pipelines")
TASK_REGISTRY = ("training/task.py", "training/tasks/")


def _data(kind: str, seed: int = 0, missing: bool = False) -> Data:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(600, 5))
    y = x @ np.array([0.5, -0.3, 0.2, 0.0, 0.1]) + rng.normal(scale=0.2, size=600)
    if kind == "classification":
        y = (y > 0).astype(float)
    if missing:
        x[rng.random(x.shape) < 0.1] = np.nan
    return Data(x[:450], y[:450], x[450:], y[450:], kind, seed)


def _modules(package) -> set[str]:
    return {m.name for m in pkgutil.iter_modules(package.__path__)}


def test_every_family_module_is_registered():
    helpers = {"base", "combine", "network"}
    declared = {
        importlib.import_module(f"training.families.{m}").FAMILY.name
        for m in _modules(training.families) - helpers
    }
    assert declared == set(FAMILIES)


def test_every_task_module_is_registered():
    declared = {
        importlib.import_module(f"training.tasks.{m}").TASK.name for m in _modules(training.tasks)
    }
    assert declared == set(TASKS)


class _Trial:
    """The low end of every range (fast), but every epoch a network may take (it learns)."""

    def suggest_int(self, name, low, high, step=1, log=False):
        return high if name.endswith("epochs") else low

    def suggest_float(self, name, low, high, log=False):
        return high if name.endswith("learning_rate") else low

    def suggest_categorical(self, name, choices):
        return choices[0]


@pytest.mark.parametrize("kind", ["regression", "classification"])
@pytest.mark.parametrize(
    "name", ["linear", "forest", "xgboost", "lightgbm", "mlp"] + ["hist_gradient_boosting"]
)
def test_each_family_fits_through_its_record_and_reports_the_common_loss(name, kind):
    family = FAMILIES[name]
    data = _data(kind, missing=not family.scaled)
    params = suggest(_Trial(), name)
    assert all(key.startswith(f"{name}.") is False for key in params)  # bare names to fit
    reported: list[tuple[int, float]] = []
    fitted = fit(name, params, data, lambda step, loss: reported.append((step, loss)))
    pred = fitted.predict(data.x_val)
    assert pred.shape == (len(data.x_val),) and np.isfinite(pred).all()
    assert reported, "a family reports at least once, for pruning"
    assert all(np.isfinite(loss) for _, loss in reported)
    baseline = validation_loss(kind, data.y_val, np.full(len(data.y_val), data.y_train.mean()))
    assert validation_loss(kind, data.y_val, pred) < baseline  # it learned something
    assert set(requirements(name)) >= {"mlflow", "numpy", "pandas", "scikit-learn"}


def test_hist_gradient_boosting_reports_what_it_predicts_and_takes_missing_values():
    data = _data("regression", missing=True)
    reported: dict[int, float] = {}
    params = {
        "iterations": 150,
        "learning_rate": 0.1,
        "max_leaf_nodes": 15,
        "min_samples_leaf": 10,
        "l2_regularization": 0.1,
    }
    fitted = fit("hist_gradient_boosting", params, data, reported.__setitem__)
    assert sorted(reported) == [0, 1, 2]  # one report per 50 iterations
    last = validation_loss("regression", data.y_val, fitted.predict(data.x_val))
    assert reported[2] == pytest.approx(last)
    assert fitted.estimator.n_iter_ == 150


def test_a_registered_family_is_a_candidate_of_every_plain_tabular_task():
    engagement, trend = get_task("engagement"), get_task("trend")
    assert "hist_gradient_boosting" in engagement.trainer.candidates(engagement)
    assert "lstm" not in engagement.trainer.candidates(engagement)  # needs a history
    assert "lstm" in trend.trainer.candidates(trend)


def test_register_refuses_a_taken_name():
    from training.errors import TaskError

    with pytest.raises(TaskError, match="already registered"):
        register(get_task("engagement"))
    assert REGRESSION.trainable


def _task_kind_reads(path: Path) -> list[str]:
    """`<...task>.kind` reads (task.kind, ts.task.kind, self.task.kind) in one file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr == "kind":
            owner = node.value
            name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
            if name == "task" or name.endswith("_task"):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_nothing_outside_the_task_registry_asks_a_task_its_kind():
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    outside = [p for p in files if not str(p.relative_to(ROOT)).startswith(TASK_REGISTRY)]
    reads = [hit for p in outside for hit in _task_kind_reads(p)]
    assert reads == [], "switch on the task's trainer instead: " + ", ".join(reads)
