"""The analysis of a model experiment on the prediction log and the labels matured since.

Each arm's rows are what its version answered (split) or scored (shadow) since the experiment
started, with the arm the service logged; the label of each is its matured outcome
(`monitoring/window.py`). Per arm: the task's metric with a bootstrap interval and the
absolute error per prediction with its t interval; between arms: the metric's difference
with a bootstrap interval, and the sequential test (mSPRT, `analytics/model_experiments_stats.py`)
on the absolute error per prediction, paired by request and entity in shadow mode. Its
p-value is always valid: `status` may be read every hour without inflating false positives.

The challenger wins when each arm holds `min_samples` labelled answers, the sequential
p-value is below ALPHA and the challenger's absolute error is the lower.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from analytics import model_experiments_stats as st
from configs.settings import Settings
from ingestion.schema import MONITORING_TABLES
from ingestion.warehouse import Warehouse
from monitoring.window import matured_labels, parse, read_log
from training.experiments import CHALLENGER, CHAMPION, Experiment, running_experiment
from training.task import Task
from training.tasks import get_task
from training.tracking import use_tracking


@dataclass(frozen=True)
class Arm:
    arm: str
    version: int
    answered: int  # rows logged since the experiment started
    labelled: int
    metric: st.Estimate
    abs_error: st.Estimate


@dataclass(frozen=True)
class Analysis:
    experiment: Experiment
    metric: str
    arms: tuple[Arm, Arm]  # champion, challenger
    metric_difference: st.Estimate  # challenger - champion
    error_difference: st.Sequential  # challenger - champion, absolute error per prediction
    paired: bool
    enough: bool  # each arm holds min_samples labelled answers
    won: bool
    verdict: str
    analysed_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def figures(self) -> dict:
        """Flat numbers for MLflow and the experiment record."""
        out: dict[str, float] = {}
        for a in self.arms:
            out[f"{a.arm}_answered"] = a.answered
            out[f"{a.arm}_labelled"] = a.labelled
            out[f"{a.arm}_{self.metric}"] = a.metric.value
            out[f"{a.arm}_{self.metric}_low"] = a.metric.low
            out[f"{a.arm}_{self.metric}_high"] = a.metric.high
            out[f"{a.arm}_abs_error"] = a.abs_error.value
        d, e = self.metric_difference, self.error_difference
        out |= {
            f"difference_{self.metric}": d.value,
            f"difference_{self.metric}_low": d.low,
            f"difference_{self.metric}_high": d.high,
            "difference_abs_error": e.difference,
            "difference_abs_error_low": e.low,
            "difference_abs_error_high": e.high,
            "sequential_p_value": e.p_value,
        }
        return out

    def as_dict(self) -> dict:
        return {
            "experiment": asdict(self.experiment),
            "metric": self.metric,
            "paired": self.paired,
            "enough": self.enough,
            "won": self.won,
            "verdict": self.verdict,
            "analysed_at": self.analysed_at,
            "arms": [asdict(a) for a in self.arms],
            "metric_difference": asdict(self.metric_difference),
            "error_difference": asdict(self.error_difference),
        }


EMPTY = ("request_id", "entity", "arm", "prediction", "label", "logged_at")


def arm_rows(settings: Settings, warehouse, task: Task, experiment: Experiment) -> pd.DataFrame:
    """Every labelled-or-not answer of the experiment: request id, entity, arm, prediction,
    label, logged_at; candidate hours (what-ifs) left out."""
    started = pd.Timestamp(experiment.started_at)
    frames = []
    for arm, version in ((CHAMPION, experiment.champion), (CHALLENGER, experiment.challenger)):
        rows = read_log(settings, task.name, version, after=started).rows
        if rows.empty:
            continue
        if "arm" in rows:  # the champion's rows before arms were logged have none
            rows = rows[rows["arm"].fillna(CHAMPION) == arm]
        rows = rows[~rows["entity"].astype(str).str.contains('"candidate"')]
        rows = rows.reset_index(drop=True)
        parsed = parse(rows)
        parsed["request_id"] = rows["request_id"].to_numpy()
        parsed["entity"] = rows["entity"].astype(str).to_numpy()
        parsed["arm"] = arm
        frames.append(parsed)
    if not frames:
        return pd.DataFrame(columns=list(EMPTY))
    frame = pd.concat(frames, ignore_index=True)
    frame["label"] = matured_labels(warehouse, task, frame).to_numpy()
    return frame.sort_values("logged_at", kind="stable").reset_index(drop=True)


def analyse_rows(experiment: Experiment, metric: str, frame: pd.DataFrame) -> Analysis:
    """The analysis of an experiment's rows (`arm_rows`): pure, for tests and the A/A study."""
    frame = frame.reindex(columns=list(dict.fromkeys([*EMPTY, *frame.columns])))
    labelled = frame[frame["label"].notna() & frame["prediction"].notna()].copy()
    labelled["abs_error"] = (labelled["prediction"] - labelled["label"]).abs()
    sides = {arm: labelled[labelled["arm"] == arm] for arm in (CHAMPION, CHALLENGER)}
    versions = {CHAMPION: experiment.champion, CHALLENGER: experiment.challenger}
    arms = tuple(
        Arm(
            arm,
            versions[arm],
            int((frame["arm"] == arm).sum()) if len(frame) else 0,
            len(rows),
            st.metric_interval(metric, rows.label.to_numpy(float), rows.prediction.to_numpy(float)),
            st.mean_interval(rows.abs_error.to_numpy(float)),
        )
        for arm, rows in sides.items()
    )
    paired = experiment.mode == "shadow"
    if paired:  # both arms scored the same request and entity: compare row by row
        both = sides[CHAMPION].merge(
            sides[CHALLENGER], on=["request_id", "entity"], suffixes=("_0", "_1")
        )
        both = both.sort_values("logged_at_0", kind="stable")
        sequential = st.paired((both.abs_error_1 - both.abs_error_0).to_numpy(float))
        y = both.label_0.to_numpy(float)
        difference = st.metric_difference(
            metric,
            (y, both.prediction_0.to_numpy(float)),
            (y, both.prediction_1.to_numpy(float)),
            paired_rows=True,
        )
    else:
        sequential = st.two_sample(
            labelled.abs_error.to_numpy(float), (labelled.arm == CHALLENGER).to_numpy()
        )
        c0, c1 = sides[CHAMPION], sides[CHALLENGER]
        difference = st.metric_difference(
            metric,
            (c0.label.to_numpy(float), c0.prediction.to_numpy(float)),
            (c1.label.to_numpy(float), c1.prediction.to_numpy(float)),
            paired_rows=False,
        )
    enough = min(a.labelled for a in arms) >= experiment.min_samples
    significant = sequential.p_value < st.ALPHA
    better = sequential.difference < 0
    won = enough and significant and better
    if not enough:
        verdict = (
            f"waiting: {arms[0].labelled} and {arms[1].labelled} labelled answers, "
            f"{experiment.min_samples} per arm needed"
        )
    elif not significant:
        verdict = f"no difference yet (always-valid p = {sequential.p_value:.3f})"
    elif better:
        verdict = f"challenger wins (always-valid p = {sequential.p_value:.3g}, lower error)"
    else:
        verdict = f"champion wins (always-valid p = {sequential.p_value:.3g}, lower error)"
    return Analysis(experiment, metric, arms, difference, sequential, paired, enough, won, verdict)  # type: ignore[arg-type]


def analyse(settings: Settings, warehouse, task: Task, experiment: Experiment) -> Analysis:
    """The experiment's figures now, from the log and the labels matured so far."""
    frame = arm_rows(settings, warehouse, task, experiment)
    return analyse_rows(experiment, task.metric, frame)


def finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def running_analyses(settings: Settings, warehouse, tasks) -> list[Analysis]:
    """The analysis of every running experiment of `tasks` (the monitoring page, `--summary`)."""
    client = use_tracking(settings)
    found = []
    for name in tasks:
        experiment = running_experiment(client, name)
        if experiment is not None:
            found.append(analyse(settings, warehouse, get_task(name), experiment))
    return found


def figures_frame(analyses: list[Analysis]) -> pd.DataFrame:
    """One row per running experiment: the figures the dashboard's Experiments section shows."""
    rows = []
    for a in analyses:
        champion, challenger = a.arms
        rows.append(
            {
                "task": a.experiment.task,
                "experiment_id": a.experiment.id,
                "mode": a.experiment.mode,
                "champion_version": champion.version,
                "challenger_version": challenger.version,
                "metric": a.metric,
                "champion_labelled": champion.labelled,
                "challenger_labelled": challenger.labelled,
                "champion_metric": finite(champion.metric.value),
                "challenger_metric": finite(challenger.metric.value),
                "difference": finite(a.metric_difference.value),
                "difference_low": finite(a.metric_difference.low),
                "difference_high": finite(a.metric_difference.high),
                "sequential_p_value": finite(a.error_difference.p_value),
                "verdict": a.verdict,
                "analysed_at": pd.Timestamp(a.analysed_at),
            }
        )
    return pd.DataFrame(rows, columns=list(MONITORING_TABLES["model_experiments"].columns))


def record_figures(warehouse: Warehouse, analyses: list[Analysis]) -> None:
    """Replace the `model_experiments` table with these analyses (a stopped experiment leaves
    it), so the dashboard shows the running experiments as last analysed."""
    warehouse.write(MONITORING_TABLES["model_experiments"], figures_frame(analyses))


def forget_figures(warehouse: Warehouse, task: str) -> None:
    """Drop a stopped experiment's row from the `model_experiments` table."""
    table = MONITORING_TABLES["model_experiments"]
    if warehouse.exists(table.name):
        kept = warehouse.read(table.name)
        warehouse.write(table, kept[kept.task != task])
