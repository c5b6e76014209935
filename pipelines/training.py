"""`smap train` and the drift retrain as one composition of the training stages:
build the training set -> tune -> register -> gate."""

from __future__ import annotations

from dataclasses import dataclass

from configs.settings import Settings
from ingestion.warehouse import open_warehouse
from monitoring.trigger import retrain_window
from training.dataset import ALL_DATA, DataWindow
from training.gate import gate, mark_ready, register
from training.readiness import require_inputs
from training.registry import Decision
from training.tasks import get_task
from training.tracking import use_tracking
from training.tune import check_budget, choose_families, training_run, tune


@dataclass(frozen=True)
class TrainResult:
    task: str
    run_id: str
    model_uri: str
    version: int
    study: str
    best_trial: int
    trials_in_study: int
    validation_value: float
    test_metrics: dict[str, float]
    decision: Decision | None


def train(
    settings: Settings,
    task_name: str,
    trials: int | None = None,
    timeout: float | None = None,
    run_promotion: bool = True,
    families: tuple[str, ...] | None = None,
    progress=None,
    rebuild: bool = False,
    window: DataWindow = ALL_DATA,
) -> TrainResult:
    """Tune, register and gate one task on the labelled rows of `window`;
    `progress(done, total)` follows the Feast join.

    The version registered is the best trial of this run among `families`, fitted on this
    run's training set; earlier trials of the study only guide the sampler. The gate scores
    champion and challenger on this set's test part.
    """
    check_budget(trials, timeout)
    task = get_task(task_name)
    chosen = choose_families(settings, task, families)
    require_inputs(settings, task.name)  # before any slow work: trend without hashtags
    use_tracking(settings)  # this profile's registry from here on, whatever fails next
    stored = task.trainer.build(settings, task, window=window, rebuild=rebuild, progress=progress)
    with training_run(settings, task) as run:
        tuned = tune(settings, task, stored, run, chosen, trials, timeout)
        version = register(task, tuned, stored.training_set.window)
        decision = None
        if run_promotion:
            client = run[0]
            decision = gate(settings, client, open_warehouse(settings), task, version, stored)
        mark_ready(run[0], task, version)
    return TrainResult(
        task.name,
        tuned.run_id,
        f"models:/{task.name}/{version}",
        version,
        tuned.study,
        tuned.best_trial,
        tuned.trials_in_study,
        tuned.validation_value,
        tuned.test_metrics,
        decision,
    )


def retrain(settings: Settings, warehouse, task_name: str, progress=None) -> dict:
    """The drift retrain: the same composition on the newest labelled days, with the
    retrain's trials and families; returns what happened, for the check's record."""
    window = retrain_window(settings, warehouse, task_name)
    m = settings.monitoring
    candidates = get_task(task_name).families
    families = tuple(f for f in m.retrain_families or () if f in candidates) or None
    result = train(
        settings,
        task_name,
        trials=m.retrain_trials,
        families=families,
        window=window,
        progress=progress,
    )
    decision = result.decision
    return {
        "since": str(window.since),
        "version": result.version,
        "run_id": result.run_id,
        "decision": decision.decision if decision else "not_gated",
        "champion_after": decision.champion_after if decision else None,
        "challenger_value": decision.challenger_value if decision else None,
        "champion_value": decision.champion_value if decision else None,
        "reason": decision.reason if decision else "",
    }
