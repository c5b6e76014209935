"""The tuner compares like with like: one loss for every family, one distribution per family
set, trials judged against the same data, different configurations for concurrent workers."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from pipelines.cli import main
from training.families import fit
from training.families.base import Data, common_loss, validation_loss
from training.search import (
    FINGERPRINT,
    RUN_ID,
    SameDataMedianPruner,
    TrialSeededSampler,
    family_parameter,
    open_study,
    trial_seed,
)

TASK_FAMILIES = ("linear", "forest", "xgboost", "lightgbm", "mlp")


def _regression_data(seed: int = 0) -> Data:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(400, 4))
    y = x @ np.array([0.3, -0.2, 0.1, 0.0]) + rng.normal(scale=0.1, size=400)
    return Data(x[:300], y[:300], x[300:], y[300:], "regression", seed)


@pytest.mark.parametrize("family", ["xgboost", "lightgbm"])
def test_boosters_report_the_common_loss(family):
    data = _regression_data()
    params = {
        "xgboost": {
            "rounds": 20,
            "eta": 0.1,
            "max_depth": 3,
            "subsample": 1.0,
            "colsample": 1.0,
            "min_child_weight": 1.0,
            "lambda": 1.0,
        },
        "lightgbm": {
            "rounds": 20,
            "learning_rate": 0.1,
            "num_leaves": 7,
            "min_child_samples": 5,
            "subsample": 1.0,
            "colsample": 1.0,
            "reg_lambda": 1.0,
        },
    }[family]
    reported: dict[int, float] = {}
    fitted = fit(family, params, data, lambda step, loss: reported.__setitem__(step, loss))
    mse = validation_loss("regression", data.y_val, fitted.predict(data.x_val))
    assert reported[19] == pytest.approx(mse, rel=1e-4)  # MSE, not XGBoost's RMSE


def test_rmse_and_mse_of_one_model_are_one_loss():
    assert common_loss("rmse", 0.2) == pytest.approx(common_loss("l2", 0.04))
    assert common_loss("logloss", 0.3) == common_loss("binary_logloss", 0.3)


def _study(direction="maximize") -> optuna.Study:
    return optuna.create_study(direction=direction, pruner=SameDataMedianPruner(1, 0))


def _trial(study, run, data, steps: dict[int, float], value=None):
    trial = study.ask()
    trial.set_user_attr(RUN_ID, run)
    trial.set_user_attr(FINGERPRINT, data)
    for step, loss in steps.items():
        trial.report(-loss, step)  # the objective reports -loss on a maximised metric
    if value is not None:
        study.tell(trial, value)
    return trial


def test_xgboost_at_the_loss_of_a_linear_peer_is_not_pruned():
    study = _study()
    mse = 0.0625  # RMSE 0.25: both exact in binary, so equal means equal
    _trial(study, "run", "data", {9: mse}, value=0.5)  # a completed LightGBM/linear peer
    xgb_rmse = np.sqrt(mse)
    trial = _trial(study, "run", "data", {9: common_loss("rmse", xgb_rmse)})
    assert not trial.should_prune()
    worse = _trial(study, "run", "data", {9: 2 * mse})
    assert worse.should_prune()
    raw_rmse = _trial(study, "run", "data", {9: xgb_rmse})  # what XGBoost used to report
    assert raw_rmse.should_prune()


def test_trials_on_other_data_do_not_prune_and_a_run_keeps_its_first_trial():
    study = _study()
    _trial(study, "old run", "old data", {9: 0.001}, value=0.9)
    first = _trial(study, "new run", "new data", {9: 0.5})
    assert not first.should_prune()  # its run has nothing completed yet, peers are other data
    study.tell(first, 0.1)
    _trial(study, "other run", "new data", {9: 0.001}, value=0.8)
    _trial(study, "other run", "new data", {9: 0.001}, value=0.8)
    late = _trial(study, "new run", "new data", {9: 0.5})
    assert late.should_prune()


def test_family_parameter_is_one_distribution_per_set_in_task_order():
    name, choices = family_parameter(TASK_FAMILIES, ("lightgbm", "linear"))
    assert (name, choices) == family_parameter(TASK_FAMILIES, ("linear", "lightgbm"))
    assert choices == ["linear", "lightgbm"]
    assert name != family_parameter(TASK_FAMILIES, ("linear", "xgboost", "lightgbm"))[0]


def test_changing_the_families_between_runs_of_one_study_keeps_trials_completing(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    for families in (("linear", "xgboost", "lightgbm"), ("lightgbm", "linear"), ("linear",)):
        study = open_study(url, "s", "maximize", seed=1)
        name, choices = family_parameter(TASK_FAMILIES, families)

        def objective(trial, name=name, choices=choices):
            family = trial.suggest_categorical(name, choices)
            return trial.suggest_float(f"{family}.x", 0, 1)

        study.optimize(objective, n_trials=2)
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.COMPLETE] * 6


def _objective(trial):
    return trial.suggest_float("x", 0, 1) + trial.suggest_float("y", 0, 1)


def test_concurrent_workers_draw_different_configurations(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    # two workers open the study at the same moment: same seed, same history
    first, second = (open_study(url, "shared", "maximize", seed=7) for _ in range(2))
    for _ in range(3):
        first.optimize(_objective, n_trials=1)
        second.optimize(_objective, n_trials=1)
    params = [tuple(t.params.values()) for t in first.trials]
    assert len(set(params)) == len(params) == 6
    assert trial_seed(7, 0) != trial_seed(7, 1)


def test_one_worker_is_reproducible(tmp_path):
    runs = []
    for name in ("a", "b"):
        study = open_study(f"sqlite:///{tmp_path / name}.db", "s", "maximize", seed=7)
        study.optimize(_objective, n_trials=7)  # past the random start-up trials
        runs.append([t.params for t in study.trials])
    assert runs[0] == runs[1]


def test_sampler_seed_follows_the_trial_number():
    sampler = TrialSeededSampler(3, n_startup_trials=1)
    study = optuna.create_study(sampler=sampler)
    study.optimize(_objective, n_trials=2)
    assert sampler.tpe._rng.rng.get_state()[1][0] != 0  # reseeded: a fresh TPE per trial


@pytest.mark.parametrize("trials", ["0", "-5"])
def test_trials_below_one_are_refused_in_one_line(trials, capsys):
    assert main(["train", "engagement", "--trials", trials]) == 1
    err = capsys.readouterr().err
    assert err == f"error: --trials: must be at least 1 (got {trials})\n"
