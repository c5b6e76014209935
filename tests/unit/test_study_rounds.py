"""A study's round on the local profile's SQLite storage: the budget recorded once, trials
claimed up to it and no further, one gate, and who gates said to the others."""

from __future__ import annotations

import optuna
import pytest

from training.errors import TaskError
from training.search import open_study
from training.workers import (
    GATED,
    best_of_round,
    finish_round,
    join_round,
    mark_gated,
    run_round,
    study_lock,
)

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


@pytest.fixture
def study(local_settings):
    local_settings.root.mkdir(parents=True)
    return open_study(local_settings.optuna_storage_url, "s", "maximize", seed=1)


def objective(trial: optuna.Trial) -> float:
    trial.set_user_attr("family", "linear")
    trial.set_user_attr("smap.run_id", "r")
    return trial.suggest_float("x", 0, 1)


def test_a_round_runs_its_budget_and_no_more(local_settings, study):
    round_ = join_round(local_settings, study, "data-1", trials=3)

    first = run_round(local_settings, study, round_, objective)
    again = run_round(local_settings, study, round_, objective)

    assert first == [0, 1, 2] and again == []
    assert [t.number for t in study.trials] == [0, 1, 2]


def test_a_worker_without_trials_follows_the_budget_and_another_budget_is_refused(
    local_settings, study
):
    join_round(local_settings, study, "data-1", trials=3)

    assert join_round(local_settings, study, "data-1", trials=None).budget == 3
    with pytest.raises(TaskError, match=r"^--trials: study s has a round of 3 trials .*got 5"):
        join_round(local_settings, study, "data-1", trials=5)
    with pytest.raises(TaskError, match="training set .* is not the round's"):
        join_round(local_settings, study, "data-2", trials=3)


def test_one_worker_gates_and_the_next_learns_who_did(local_settings, study):
    round_ = join_round(local_settings, study, "data-1", trials=2)
    run_round(local_settings, study, round_, objective)

    with finish_round(local_settings, study, round_) as turn:
        assert turn.gates
        assert best_of_round(study, round_, "t").value == max(t.value for t in study.trials)
        mark_gated(study, round_, "run-1", 7)
    with finish_round(local_settings, study, round_) as later:
        assert not later.gates and "gated the round (version 7)" in later.reason
    assert study.user_attrs[GATED]["run_id"] == "run-1"


def test_a_worker_finding_the_gate_lock_held_does_not_gate(local_settings, study):
    round_ = join_round(local_settings, study, "data-1", trials=1)
    run_round(local_settings, study, round_, objective)
    other = study_lock(local_settings, study.study_name, "gate")
    assert other.acquire(wait=False)
    try:
        with finish_round(local_settings, study, round_) as turn:
            assert not turn.gates and turn.reason.endswith("gates the round")
    finally:
        other.release()


def test_a_worker_that_stops_early_leaves_the_gate_to_the_rest(local_settings, study):
    round_ = join_round(local_settings, study, "data-1", trials=4)
    run_round(local_settings, study, round_, objective, timeout=1e-9)

    with finish_round(local_settings, study, round_) as turn:
        assert not turn.gates and "of 4 trials taken" in turn.reason


def test_the_next_round_opens_after_a_gate_on_new_data(local_settings, study):
    round_ = join_round(local_settings, study, "data-1", trials=1)
    run_round(local_settings, study, round_, objective)
    with finish_round(local_settings, study, round_):
        mark_gated(study, round_, "run-1", 1)

    same = join_round(local_settings, study, "data-1", trials=1)
    new = join_round(local_settings, study, "data-2", trials=2)

    assert same == round_
    assert (new.first_trial, new.budget) == (1, 2)
    assert run_round(local_settings, study, new, objective) == [1, 2]


def test_a_task_whose_models_are_not_refitted_has_no_workers(local_settings):
    from pipelines.training import train_worker

    with pytest.raises(TaskError, match=r"^--worker: content's models are kept as fitted"):
        train_worker(local_settings, "content")
