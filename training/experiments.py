"""Model experiments: a challenger version answers a share of a task's traffic (split) or
scores every request off the request path beside the champion (shadow).

The running experiment lives on the task's registered model as a tag (`experiment`, JSON):
every profile has a registry, every service worker already polls it for the champion alias,
and the tag survives a restart of the service. One experiment per task at a time. When it
stops, the experiment's record (figures and decision) goes on the challenger version
(`experiment_record`), into the champion history (the gate's table) and into an MLflow run.

Which arm answers an entity is a pure function of the experiment id and the entity (author
or user id): one author always sees one arm, on every worker.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Literal

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from feature_repo.feature_services import DRAFT_SERVICES
from training import tags as tag
from training.errors import TaskError
from training.registry import CHALLENGER, CHAMPION, Decision, commit, current_champion, is_absent
from training.task import Task
from training.tracking import is_candidate

EXPERIMENT_TAG = "experiment"  # registered-model tag: the running experiment
RECORD_TAG = "experiment_record"  # version tag: the stopped experiment, figures and decision
MODES = ("split", "shadow")
ARMS = (CHAMPION, CHALLENGER)
EXPERIMENT_REQUESTS = ("drafts", "users")  # answers keyed by an author or a user


class ExperimentError(TaskError):
    """An experiment cannot be started, read or stopped as asked; the message says why."""


@dataclass(frozen=True)
class Experiment:
    id: str
    task: str
    champion: int  # the champion's version when the experiment started
    challenger: int
    mode: Literal["split", "shadow"]
    split: float  # share of entities (0..1) the challenger answers; 0 in shadow mode
    min_samples: int  # labelled answers per arm before a winner can be named
    started_at: str  # ISO time, UTC

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Experiment:
        try:
            return cls(**json.loads(text))
        except (TypeError, ValueError) as exc:
            raise ExperimentError(f"experiment tag: not an experiment smap wrote ({exc})") from None


def arm_of(experiment: Experiment, entity: object) -> str:
    """The arm that answers `entity` (an author or user id): a hash of the experiment id and
    the entity, so the same entity gets the same arm on every worker and every request."""
    if experiment.mode != "split":
        return CHAMPION
    digest = hashlib.blake2b(f"{experiment.id}:{entity}".encode(), digest_size=8).digest()
    return CHALLENGER if int.from_bytes(digest) / 2**64 < experiment.split else CHAMPION


def running_experiment(client: MlflowClient, task: str) -> Experiment | None:
    """The task's running experiment, None when there is none (or no registered model); any
    other registry failure raises."""
    try:
        model = client.get_registered_model(task)
    except MlflowException as exc:
        if is_absent(exc):
            return None
        raise
    text = (model.tags or {}).get(EXPERIMENT_TAG)
    return None if not text else Experiment.from_json(text)


def start_experiment(
    client: MlflowClient,
    task: Task,
    challenger: int,
    mode: str,
    split_percent: float | None = None,
    min_samples: int = 200,
) -> Experiment:
    """Check and store a new experiment of `task`: a champion exists, `challenger` is another
    finished version, no experiment runs yet."""
    if task.serving is None or task.serving.request not in EXPERIMENT_REQUESTS:
        raise ExperimentError(
            f"task: {task.name} is not answered per author or user; experiments run on "
            "engagement, virality and churn"
        )
    if mode not in MODES:
        raise ExperimentError(f"mode: {mode!r} is not one of {', '.join(MODES)}")
    if mode == "split":
        if split_percent is None or not 0 < split_percent < 100:
            raise ExperimentError("split: a share between 0 and 100 (percent of entities)")
    elif split_percent is not None:
        raise ExperimentError("split: a shadow experiment answers every request by the champion")
    if min_samples < 1:
        raise ExperimentError("min-samples: at least 1")
    running = running_experiment(client, task.name)
    if running is not None:
        raise ExperimentError(
            f"{task.name}: experiment {running.id} (version {running.challenger}, "
            f"{running.mode}) is running; stop it first (`smap experiment stop {task.name}`)"
        )
    champion = current_champion(client, task.name)
    if champion is None:
        raise ExperimentError(f"{task.name}: no champion to compare with (`smap train`)")
    if challenger == champion:
        raise ExperimentError(f"challenger: version {challenger} is the champion")
    try:
        version = client.get_model_version(task.name, str(challenger))
    except MlflowException:
        raise ExperimentError(f"challenger: {task.name} has no version {challenger}") from None
    if not is_candidate(version):
        raise ExperimentError(f"challenger: {task.name} version {challenger} did not finish")
    service = tag.read(version.tags, tag.FEATURES)
    if task.serving.request == "drafts" and service and service not in DRAFT_SERVICES:
        raise ExperimentError(
            f"challenger: {task.name} version {challenger} reads {service}, which needs a "
            "published post; a draft cannot be answered with it"
        )
    experiment = Experiment(
        id=uuid.uuid4().hex[:12],
        task=task.name,
        champion=champion,
        challenger=challenger,
        mode=mode,  # type: ignore[arg-type]  # checked against MODES above
        split=(split_percent or 0.0) / 100,
        min_samples=min_samples,
        started_at=datetime.now(UTC).isoformat(),
    )
    client.set_registered_model_tag(task.name, EXPERIMENT_TAG, experiment.to_json())
    return experiment


def end_experiment(client: MlflowClient, experiment: Experiment, record: dict) -> None:
    """Write the experiment's record on the challenger version and remove the running tag:
    the service stops routing and shadowing at its next poll."""
    text = json.dumps({"experiment": asdict(experiment), **record}, default=str)
    client.set_model_version_tag(experiment.task, str(experiment.challenger), RECORD_TAG, text)
    client.delete_registered_model_tag(experiment.task, EXPERIMENT_TAG)


def experiment_decision(
    client: MlflowClient,
    warehouse,
    task: Task,
    experiment: Experiment,
    won: bool,
    values: tuple[float, float],
    reason: str,
    promote: bool,
) -> Decision:
    """The gate for an experiment: `champion` moves to the challenger only when asked to, the
    challenger won, and the champion is still the version it was compared with (a drift
    retrain may have promoted another meanwhile: then nothing is promoted). The decision goes
    into the champion history like every gate decision."""
    now = current_champion(client, task.name)
    moved = now != experiment.champion
    challenger_value, champion_value = values
    if promote and won and not moved:
        decision, alias = "experiment_won", CHAMPION
        after: int | None = experiment.challenger
    else:
        decision, after, alias = "experiment_kept", now, CHALLENGER
        if moved:
            reason = (
                f"{reason}; the champion moved to version {now} during the experiment (it "
                f"compared version {experiment.champion}): nothing promoted"
            )
        elif promote:
            reason = f"{reason}; version {experiment.challenger} stays challenger"
        else:
            reason = f"{reason}; stopped without --promote"
    d = Decision(
        task.name,
        experiment.challenger,
        decision,
        now,
        after,
        task.metric,
        challenger_value,
        champion_value,
        f"experiment {experiment.id} ({experiment.mode}): {reason}",
    )
    return commit(client, warehouse, task, d, alias)
