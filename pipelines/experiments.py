"""`smap experiment start | status | stop`: model experiments of a task, on a typed Settings.

Importing this module loads MLflow (through training/), so the CLI imports it inside the
commands that use it.
"""

from __future__ import annotations

import math
from dataclasses import asdict

import mlflow

from configs.settings import Settings
from ingestion.warehouse import open_warehouse
from monitoring.experiments import (
    Analysis,
    analyse,
    forget_figures,
    record_figures,
    running_analyses,
)
from training.experiments import (
    Experiment,
    ExperimentError,
    end_experiment,
    experiment_decision,
    running_experiment,
    start_experiment,
)
from training.registry import Decision
from training.tasks import get_task
from training.tracking import experiment_for, log_json, use_tracking


def start(
    settings: Settings,
    task: str,
    challenger: int,
    mode: str,
    split_percent: float | None,
    min_samples: int,
) -> Experiment:
    return start_experiment(
        use_tracking(settings), get_task(task), challenger, mode, split_percent, min_samples
    )


def status(settings: Settings, task: str | None) -> list[Analysis]:
    """The analysis of every running experiment (of `task`, or of every served task)."""
    client = use_tracking(settings)
    warehouse = open_warehouse(settings)
    names = [task] if task else list(settings.monitoring.tasks)
    analyses = []
    for name in names:
        experiment = running_experiment(client, get_task(name).name)
        if experiment is not None:
            analyses.append(analyse(settings, warehouse, get_task(name), experiment))
    if task and not analyses:
        raise ExperimentError(f"{task}: no experiment is running")
    if not task:  # every task's experiments: the dashboard's table is complete
        record_figures(warehouse, analyses)
    return analyses


def running(settings: Settings, task: str | None) -> list[Analysis]:
    """The analyses of the running experiments (of `task`, or of every monitored task); none
    running is an empty list, not an error (`smap monitor --summary`)."""
    tasks = [task] if task else list(settings.monitoring.tasks)
    warehouse = open_warehouse(settings)
    analyses = running_analyses(settings, warehouse, tasks)
    if not task:
        record_figures(warehouse, analyses)
    return analyses


def _metric_values(analysis: Analysis) -> tuple[float, float]:
    champion, challenger = analysis.arms
    return challenger.metric.value, champion.metric.value


def stop(settings: Settings, task: str, promote: bool) -> tuple[Analysis, Decision, str]:
    """Analyse, decide through the gate (promote only a winner, only with `promote`), log the
    figures to an MLflow run, then end the experiment. Returns the run id too."""
    client = use_tracking(settings)
    warehouse = open_warehouse(settings)
    t = get_task(task)
    experiment = running_experiment(client, t.name)
    if experiment is None:
        raise ExperimentError(f"{task}: no experiment is running")
    analysis = analyse(settings, warehouse, t, experiment)
    decision = experiment_decision(
        client,
        warehouse,
        t,
        experiment,
        analysis.won,
        _metric_values(analysis),
        analysis.verdict,
        promote,
    )
    experiment_for(settings, t.name)
    with mlflow.start_run(run_name=f"experiment-{experiment.id}") as run:
        mlflow.set_tags(
            {
                "task": t.name,
                "experiment": experiment.id,
                "decision": decision.decision,
                "mode": experiment.mode,
            }
        )
        mlflow.log_params(
            {
                "champion_version": experiment.champion,
                "challenger_version": experiment.challenger,
                "mode": experiment.mode,
                "split": experiment.split,
                "min_samples": experiment.min_samples,
                "started_at": experiment.started_at,
            }
        )
        mlflow.log_metrics({k: v for k, v in analysis.figures().items() if math.isfinite(v)})
        log_json({"analysis": analysis.as_dict(), "decision": asdict(decision)}, "experiment.json")
    end_experiment(
        client,
        experiment,
        {"analysis": analysis.as_dict(), "decision": asdict(decision), "run_id": run.info.run_id},
    )
    forget_figures(warehouse, t.name)
    return analysis, decision, run.info.run_id
