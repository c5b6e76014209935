"""What the MLflow UI says about a task's experiment, registered model and versions, so a data
scientist can tell from the registry what a model predicts, on what, and why it holds its alias."""

from __future__ import annotations

from collections.abc import Mapping

from training.task import Task

GATE_PREFIX = "Gate: "


def experiment_note(task: Task) -> str:
    """The experiment's description: the task in two lines."""
    return (
        f"{task.name} ({task.trainer.name}): predicts {task.target or task.name} "
        f"per {task.entity}. "
        f"Feature service `{task.feature_service}`; headline metric `{task.metric}` "
        f"({task.direction}) on a time-held-out test part; naive baseline: {task.baseline}.\n\n"
        f"Each `train-{task.name}` run is one `smap train {task.name}`; its nested runs are the "
        "Optuna trials. The registered model of the same name holds the versions and the "
        "`champion` alias serving follows."
    )


def model_description(task: Task) -> str:
    """The registered model's description."""
    return (
        f"{task.name}: predicts {task.target or task.name} per {task.entity}, from feature "
        f"service `{task.feature_service}`; judged by `{task.metric}` ({task.direction}) against "
        f"{task.baseline}. Serving loads `models:/{task.name}@champion`; a version gets the "
        "alias only when the champion gate crowns it (`smap models history "
        f"{task.name}`)."
    )


def _day(stamp: str) -> str:
    return stamp[:10]


def version_description(task: Task, window: Mapping[str, str], fingerprint: str) -> str:
    """A version's description before the gate: what it was trained on."""
    span = ""
    if window:
        span = (
            f"trained on {_day(window['train_start'])}..{_day(window['train_end'])}, "
            f"tested on {_day(window['test_start'])}..{_day(window['test_end'])} "
        )
    return (
        f"{task.name} ({task.target or task.name}) from `{task.feature_service}`; "
        f"{span}(data {fingerprint})."
    )


def with_gate(description: str | None, reason: str) -> str:
    """`description` with its gate sentence replaced by this decision's."""
    kept = [line for line in (description or "").splitlines() if not line.startswith(GATE_PREFIX)]
    # first: the UI's description column shows the start of it
    return "\n".join([f"{GATE_PREFIX}{reason}.", *(line for line in kept if line)])
