"""One drift check of a task's champion: its reference, the window it answered since the last
check, Evidently's drift, quality on matured labels, and a typed verdict, recorded three ways
(the `drift_checks` table, an MLflow monitoring run, an HTML + JSON report for review)."""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from configs.errors import SmapError
from configs.settings import DriftThresholds, Settings
from ingestion.schema import MONITORING_TABLES
from ingestion.warehouse import open_warehouse
from monitoring.drift import DriftResult, run_drift
from monitoring.window import Window, compact_log, current_window
from training.reference import Reference, load_reference
from training.tasks import Task, get_task

EXPERIMENT = "smap-monitoring"
DRIFT, OK = "drift", "ok"


class MonitorError(SmapError):
    """A check that cannot judge: no champion, no reference, too few logged rows."""


class NotEnoughRows(MonitorError):
    """Fewer rows than the task's `min_rows` since the last check: wait for more traffic."""


class CheckBusy(MonitorError):
    """Another process is checking the task's window right now: it is theirs to record."""


@dataclass(frozen=True)
class CheckResult:
    check_id: str
    task: str
    version: int
    run_id: str  # the champion's training run (its reference)
    checked_at: datetime
    window_start: datetime | None
    window_end: datetime | None
    rows: int
    labelled: int
    drifted_share: float
    drifted_columns: list[dict]  # column, method, score, threshold
    prediction_score: float
    label_score: float  # NaN: too few matured labels
    metric: str
    quality_value: float  # the metric on matured labels (NaN: too few)
    test_value: float  # the champion's test score
    verdict: str  # drift | ok
    reasons: list[str]
    report: str = ""
    report_json: str = ""
    monitoring_run: str = ""
    retrain: dict = field(default_factory=dict)
    duplicates: int = 0  # logged rows judged once: they repeat a feature vector of the window
    quarantined: list[str] = field(default_factory=list)  # unreadable log parts moved aside
    notes: list[str] = field(default_factory=list)  # what else the record must say

    @property
    def distinct(self) -> int:
        """The rows the check judged: each repeated feature vector once."""
        return self.rows - self.duplicates

    def as_json(self) -> dict:
        def clean(value):
            if isinstance(value, float) and not np.isfinite(value):
                return None
            if isinstance(value, datetime | pd.Timestamp):
                return value.isoformat()
            if isinstance(value, dict):
                return {k: clean(v) for k, v in value.items()}
            if isinstance(value, list):
                return [clean(v) for v in value]
            return value

        return clean(asdict(self))


def champion_of(settings: Settings, task: Task):
    """(version, run id) of the task's champion, or one line saying there is none."""
    from training.registry import champion_entry

    entry = champion_entry(settings, task.name)
    if entry is None:
        raise MonitorError(f"{task.name}: no champion to monitor (run `smap train {task.name}`)")
    return entry.client, entry.version, entry.run_id


def reference_of(client, task: Task, version: int, run_id: str) -> Reference:
    reference = load_reference(client, run_id)
    if reference is None:
        raise MonitorError(
            f"{task.name}: champion v{version} has no drift reference (run {run_id} was "
            f"trained before monitoring existed; retrain with `smap train {task.name}`)"
        )
    return reference


def checks(warehouse, task: str | None = None) -> pd.DataFrame:
    """Recorded checks, oldest first (all tasks, or one)."""
    table = MONITORING_TABLES["drift_checks"]
    if not warehouse.exists(table.name):
        return table.conform(pd.DataFrame({c: [] for c in table.columns}))
    frame = warehouse.read(table.name).sort_values("checked_at", kind="stable")
    return (frame if task is None else frame[frame.task == task]).reset_index(drop=True)


def last_window_end(warehouse, task: str, version: int):
    past = checks(warehouse, task)
    past = past[past.version == version]
    return None if past.empty else past.window_end.max()


def quality(task: Task, window: Window) -> float:
    """The task's metric on the window's matured labels."""
    rows = window.frame[window.frame.label.notna()]
    y, pred = rows.label.to_numpy(dtype=float), rows.prediction.to_numpy(dtype=float)
    return float(task.trainer.quality(y, pred).get(task.metric, float("nan")))


def quality_drop(task: Task, quality_value: float, test_value: float) -> float:
    """How much worse the metric on matured labels is than at test (NaN: not known)."""
    if not (np.isfinite(quality_value) and np.isfinite(test_value)):
        return float("nan")
    return (
        test_value - quality_value if task.direction == "maximize" else quality_value - test_value
    )


def outcome_evidence(task: Task, result: CheckResult, limits: DriftThresholds) -> list[str]:
    """What the matured outcomes say beyond the inputs: label drift, a quality drop. Feature
    (and prediction) drift alone may be odd traffic, a load test or a bot; these are not."""
    found = []
    if np.isfinite(result.label_score) and result.label_score >= limits.label:
        found.append(f"label drift {result.label_score:.3f}")
    worse = quality_drop(task, result.quality_value, result.test_value)
    if (
        result.labelled >= limits.min_labelled
        and np.isfinite(worse)
        and worse > limits.quality_drop
    ):
        found.append(f"{result.metric} down {worse:.3f}")
    return found


def verdict(
    task: Task,
    drift: DriftResult,
    quality_value: float,
    test_value: float,
    labelled: int,
    limits: DriftThresholds,
) -> tuple[str, list[str]]:
    """drift when features, predictions or quality moved past the task's thresholds."""
    reasons = []
    if drift.drifted_share >= limits.drift_share:
        names = ", ".join(c.column for c in drift.drifted_columns[:5])
        reasons.append(
            f"data drift: {drift.drifted_share:.0%} of features drifted (limit "
            f"{limits.drift_share:.0%}): {names}"
        )
    if drift.label is not None and drift.label.drifted:
        reasons.append(
            f"label drift: matured outcomes moved by {drift.label.score:.3f} (limit {limits.label})"
        )
    if drift.prediction.drifted:
        reasons.append(
            f"prediction drift: distance {drift.prediction.score:.3f} (limit {limits.prediction})"
        )
    if labelled >= limits.min_labelled and np.isfinite(quality_value) and np.isfinite(test_value):
        worse = quality_drop(task, quality_value, test_value)
        if worse > limits.quality_drop:
            reasons.append(
                f"quality drift: {task.metric} {quality_value:.3f} on {labelled} matured labels "
                f"against {test_value:.3f} at test (limit {limits.quality_drop})"
            )
    return (DRIFT, reasons) if reasons else (OK, ["no drift past the thresholds"])


def write_report(settings: Settings, result: CheckResult, snapshot) -> tuple[Path, Path]:
    """The Evidently HTML and the decision JSON, side by side in the reports folder."""
    folder = settings.reports_dir / "monitoring" / result.task
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{result.checked_at:%Y%m%dT%H%M%S}-{result.check_id}"
    html, data = folder / f"{stem}.html", folder / f"{stem}.json"
    snapshot.save_html(str(html))
    payload = {"decision": result.as_json(), "evidently": snapshot.dict()}
    data.write_text(json.dumps(payload, indent=1, default=str))
    return html, data


def log_monitoring_run(settings: Settings, result: CheckResult, paths: tuple[Path, Path]) -> str:
    """A run in the monitoring experiment holding the report and the decision."""
    import mlflow

    from training.tracking import artifact_location, label_experiment, use_tracking

    use_tracking(settings)
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        mlflow.create_experiment(
            EXPERIMENT, artifact_location=artifact_location(settings, EXPERIMENT)
        )
    found = mlflow.get_experiment_by_name(EXPERIMENT)
    assert found is not None  # created above
    experiment = found.experiment_id
    label_experiment(
        mlflow.MlflowClient(),
        experiment,
        "Drift checks of the served models: one run per `smap monitor TASK`, with the "
        "Evidently report, the verdict and the retrain it triggered, if any.",
    )
    with mlflow.start_run(experiment_id=experiment, run_name=f"monitor-{result.task}") as run:
        mlflow.set_tags(
            {
                "smap.task": result.task,
                "smap.champion_version": str(result.version),
                "smap.champion_run": result.run_id,
                "smap.verdict": result.verdict,
                "smap.check_id": result.check_id,
            }
        )
        metrics = {
            "rows": result.rows,
            "duplicates": result.duplicates,
            "quarantined_parts": len(result.quarantined),
            "labelled": result.labelled,
            "drifted_share": result.drifted_share,
            "prediction_drift": result.prediction_score,
            "label_drift": result.label_score,
            f"quality_{result.metric}": result.quality_value,
            f"test_{result.metric}": result.test_value,
        }
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if np.isfinite(float(v))})
        for path in paths:
            mlflow.log_artifact(str(path), "report")
        return run.info.run_id


def record(warehouse, result: CheckResult) -> None:
    row = {
        "check_id": result.check_id,
        "task": result.task,
        "version": result.version,
        "checked_at": result.checked_at,
        "window_start": result.window_start,
        "window_end": result.window_end,
        "rows": result.rows,
        "labelled": result.labelled,
        "drifted_share": result.drifted_share,
        "drifted_columns": ",".join(c["column"] for c in result.drifted_columns),
        "prediction_score": result.prediction_score,
        "label_score": result.label_score,
        "metric": result.metric,
        "quality_value": result.quality_value,
        "test_value": result.test_value,
        "verdict": result.verdict,
        "reason": "; ".join([*result.reasons, *result.notes]),
        "report": result.report,
        "monitoring_run": result.monitoring_run,
        "retrain": json.dumps(result.retrain) if result.retrain else "",
    }
    warehouse.append(MONITORING_TABLES["drift_checks"], pd.DataFrame([row]))


def run_check(settings: Settings, task_name: str, warehouse=None) -> tuple[CheckResult, object]:
    """Judge the rows the champion answered since its last check. Returns the result (not yet
    recorded: the trigger may add a retrain to it) and the Evidently snapshot."""
    task = get_task(task_name)
    warehouse = warehouse or open_warehouse(settings)
    client, version, run_id = champion_of(settings, task)
    reference = reference_of(client, task, version, run_id)
    limits = settings.monitoring.for_task(task.name)
    compaction = compact_log(settings, warehouse)
    after = last_window_end(warehouse, task.name, version)
    window = current_window(settings, warehouse, task, version, after, list(reference.features))
    quarantined = [*compaction.quarantined, *window.quarantined]
    notes = log_notes(window, quarantined)
    if len(window.frame) < limits.min_rows:
        repeats = f" ({window.logged} with repeats)" if window.duplicates else ""
        raise NotEnoughRows(
            f"{task.name}: {len(window.frame)} distinct logged answers of champion v{version}"
            f"{repeats} since the last check, fewer than the {limits.min_rows} a check needs"
            + "".join(f"; {note}" for note in notes if "quarantine" in note)
        )
    drift, snapshot = run_drift(reference, window.frame, limits, window.labelled)
    value = quality(task, window) if window.labelled >= limits.min_labelled else float("nan")
    said, reasons = verdict(task, drift, value, reference.test_value, window.labelled, limits)
    result = CheckResult(
        check_id=uuid.uuid4().hex[:12],
        task=task.name,
        version=version,
        run_id=run_id,
        checked_at=datetime.now(UTC),
        window_start=window.start,
        window_end=window.end,
        rows=window.logged,
        labelled=window.labelled,
        drifted_share=drift.drifted_share,
        drifted_columns=[asdict(c) for c in drift.drifted_columns],
        prediction_score=drift.prediction.score,
        label_score=drift.label.score if drift.label else float("nan"),
        metric=task.metric,
        quality_value=value,
        test_value=reference.test_value,
        verdict=said,
        reasons=reasons,
        duplicates=window.duplicates,
        quarantined=quarantined,
        notes=notes,
    )
    return result, snapshot


def log_notes(window: Window, quarantined: list[str]) -> list[str]:
    """What the record says about the log itself: repeats judged once, parts moved aside."""
    notes = []
    if window.duplicates:
        notes.append(
            f"{window.duplicates} of {window.logged} logged answers repeat a feature vector: "
            f"judged on {len(window.frame)} distinct ones"
        )
    if quarantined:
        shown = ", ".join(quarantined[:3]) + (", ..." if len(quarantined) > 3 else "")
        notes.append(
            f"prediction log: {len(quarantined)} unreadable part(s) moved to quarantine/: {shown}"
        )
    return notes


def publish(settings: Settings, warehouse, result: CheckResult, snapshot) -> CheckResult:
    """Write the report, log the monitoring run, append the check: in that order, so a
    recorded check always points at a report that exists."""
    from dataclasses import replace

    html, data = write_report(settings, result, snapshot)
    result = replace(result, report=str(html), report_json=str(data))
    result = replace(result, monitoring_run=log_monitoring_run(settings, result, (html, data)))
    data.write_text(
        json.dumps({**json.loads(data.read_text()), "decision": result.as_json()}, default=str)
    )
    record(warehouse, result)
    return result
