"""Optuna search over model families and their hyperparameters, with pruning.

The study lives in the profile's storage under a stable name, so a second `smap train`
continues it and several workers on one PostgreSQL storage share it. The study's history
informs the sampler; the model a run registers is always the best trial of that run.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, cast

import numpy as np
import optuna
from optuna.trial import TrialState

from configs.settings import STUDY_STORAGES, Settings
from ingestion.warehouse import ensure_server_database, retry_on_race
from training.dataset import TrainingSet
from training.errors import TaskError
from training.families import FAMILIES, Data, FeatureEncoder, fit, suggest
from training.families.base import input_frame

if TYPE_CHECKING:
    from training.trainers import Tabular


def study_name(prefix: str, task_name: str, feature_service: str) -> str:
    return f"{prefix}-{task_name}-{feature_service}"


def score(ts: TrainingSet, part_frame, pred: np.ndarray, threshold: float | None = None) -> dict:
    """All metrics of the task on one part of the data; the headline is `ts.task.metric`."""
    return ts.task.trainer.score(ts, part_frame, pred, threshold)


@dataclass
class Prepared:
    """Encoders and matrices computed once per process and shared by all trials."""

    encoders: dict[bool, FeatureEncoder]
    data: dict[bool, Data]


def history_columns(names: list[str]) -> tuple[int, ...]:
    """Encoded positions of the `lag_k` columns, oldest (largest k) first."""
    lags = [
        (int(n.split("_")[1]), i)
        for i, n in enumerate(names)
        if n.startswith("lag_") and n.split("_")[1].isdigit()
    ]
    return tuple(i for _, i in sorted(lags, reverse=True))


def prepare(ts: TrainingSet, seed: int, trainer=None) -> Prepared:
    """Encoders (raw and scaled) fitted on the train part, and every family's matrices."""
    trainer = trainer or ts.task.trainer
    train, val = ts.part("train"), ts.part("validation")
    encoders, data = {}, {}
    for scaled in (False, True):
        enc = FeatureEncoder.fit(
            input_frame(train, ts.features, ts.categorical),
            ts.features,
            ts.categorical,
            scale=scaled,
        )
        encoders[scaled] = enc
        data[scaled] = Data(
            enc.transform(input_frame(train, ts.features, ts.categorical)),
            trainer.training_target(train),
            enc.transform(input_frame(val, ts.features, ts.categorical)),
            trainer.training_target(val),
            trainer.fit_kind,
            seed,
            history_columns(enc.names),
        )
    return Prepared(encoders, data)


FAMILY = "family"  # user attr: the family a trial fitted, whatever its family parameter
RUN_ID = "smap.run_id"  # user attr: the MLflow parent run (one `smap train`) that ran it
FINGERPRINT = "smap.data_fingerprint"  # user attr: the training data it was fitted on
FAIL_REASON = "fail_reason"  # user attr: why a trial failed, for the study and its MLflow run


def family_parameter(task_families: tuple[str, ...], chosen: tuple[str, ...]) -> tuple[str, list]:
    """The Optuna parameter that picks a family: its name and choices for this family set.

    A categorical distribution cannot change its choices within one study, and users change
    `--families` between runs of a study. Naming the parameter after the set (in the task
    table's order, so the same set in another order is the same parameter) keeps every
    distribution fixed, while the per-family hyperparameters (`lightgbm.rounds`, ...) stay
    shared, so earlier runs still inform the sampler about each family. A study per family set
    would lose that history; suggesting from the task's full set would waste trials on
    families that were not asked for.
    """
    choices = [f for f in task_families if f in chosen]
    return f"{FAMILY}:{'/'.join(choices)}", choices


class Objective:
    """Given its data once; each call fits one candidate and returns its validation metric.

    Every trial is labelled with its family, its run and its data, so a run picks its best
    among its own trials, and the pruner compares a trial only with trials on the same data.
    """

    def __init__(
        self,
        ts: TrainingSet,
        prepared: Prepared,
        families: tuple[str, ...],
        direction: str,
        run_id: str = "",
        trainer: Tabular | None = None,
    ):
        self.ts, self.prepared, self.run_id = ts, prepared, run_id
        self.trainer = trainer or cast("Tabular", ts.task.trainer)
        self.family_name, self.families = family_parameter(
            self.trainer.candidates(ts.task), families
        )
        self.sign = -1.0 if direction == "maximize" else 1.0

    def __call__(self, trial: optuna.Trial) -> float:
        trial.set_user_attr(RUN_ID, self.run_id)
        trial.set_user_attr(FINGERPRINT, self.ts.fingerprint)
        try:
            family = trial.suggest_categorical(self.family_name, self.families)
            trial.set_user_attr(FAMILY, family)
            return self.evaluate(trial, family)
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            trial.set_user_attr(FAIL_REASON, failure_line(exc))
            raise

    def evaluate(self, trial: optuna.Trial, family: str) -> float:
        params = suggest(trial, family)
        data = self.prepared.data[FAMILIES[family].scaled]

        def report(step: int, loss: float) -> None:
            trial.report(self.sign * loss, step)
            if trial.should_prune():
                raise optuna.TrialPruned()

        fitted = fit(family, params, data, report)
        validation = self.ts.part("validation")
        pred = self.trainer.from_training_scale(fitted.predict(data.x_val), validation)
        metrics = self.trainer.score(self.ts, validation, pred)
        for name, value in metrics.items():
            trial.set_user_attr(f"val_{name}", value)
        value = metrics[self.ts.task.metric]
        if not np.isfinite(value):
            raise FloatingPointError(f"validation {self.ts.task.metric} is not finite")
        return value


def failure_line(exc: BaseException) -> str:
    """`Type: first line of the message`, short enough for a tag."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:500]


def run_trials(study: optuna.Study, run_id: str) -> list[optuna.trial.FrozenTrial]:
    """The trials one run (one `smap train` worker) ran, in the study's order."""
    return [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get(RUN_ID) == run_id]


def best_of_run(study: optuna.Study, run_id: str, task_name: str) -> optuna.trial.FrozenTrial:
    """The best completed trial of this run: never one fitted on other data or families."""
    mine = run_trials(study, run_id)
    done = [t for t in mine if t.state == TrialState.COMPLETE]
    if not done:
        failed = [t for t in mine if t.state == TrialState.FAIL]
        pruned = sum(t.state == TrialState.PRUNED for t in mine)
        why = (
            f"; first failure: {failed[0].user_attrs[FAIL_REASON]}"
            if failed and (FAIL_REASON in failed[0].user_attrs)
            else ""
        )
        raise TaskError(
            f"{task_name}: no trial of this run completed ({len(failed)} failed, {pruned} "
            f"pruned of {len(mine)}){why}; nothing registered"
        )
    pick = max if study.direction == optuna.study.StudyDirection.MAXIMIZE else min
    return pick(done, key=lambda t: cast(float, t.value))  # complete trials have a value


class SameDataMedianPruner(optuna.pruners.BasePruner):
    """Median pruning among completed trials fitted on the same data.

    A resumed study holds trials fitted on earlier data, whose losses say nothing about this
    data. A trial is also never pruned before its run has a completed trial of its own: the
    run registers its own best, so it needs at least one.
    """

    def __init__(self, n_startup_trials: int = 4, n_warmup_steps: int = 1):
        self.n_startup_trials, self.n_warmup_steps = n_startup_trials, n_warmup_steps

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or step < self.n_warmup_steps:
            return False
        value = trial.intermediate_values[step]
        if not np.isfinite(value):
            return True
        data, run = trial.user_attrs.get(FINGERPRINT), trial.user_attrs.get(RUN_ID)
        peers = [
            t
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.user_attrs.get(FINGERPRINT) == data
        ]
        if len(peers) < self.n_startup_trials or not any(
            t.user_attrs.get(RUN_ID) == run for t in peers
        ):
            return False
        at_step = [t.intermediate_values[step] for t in peers if step in t.intermediate_values]
        if not at_step:
            return False
        median = float(np.nanmedian(at_step))
        if study.direction == optuna.study.StudyDirection.MAXIMIZE:
            return value < median
        return value > median


def trial_seed(seed: int, number: int) -> int:
    """A sampler seed for one trial, mixed from the configured seed and the trial number."""
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


class TrialSeededSampler(optuna.samplers.BaseSampler):
    """TPE whose random state is set at each trial from (seed, trial number).

    Trial numbers are unique within a study, so workers sharing a study draw different
    configurations, while one worker on the same study history draws the same ones every time.
    TPE keeps no state between trials besides its random generator, so a fresh one per trial
    loses nothing. Not for `n_jobs > 1` in one process (one shared instance).
    """

    def __init__(self, seed: int, **tpe_options):
        self.seed, self.options = seed, tpe_options
        self.tpe = optuna.samplers.TPESampler(seed=seed, **tpe_options)

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.tpe = optuna.samplers.TPESampler(
            seed=trial_seed(self.seed, trial.number), **self.options
        )
        self.tpe.before_trial(study, trial)

    def infer_relative_search_space(self, study, trial):
        return self.tpe.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self.tpe.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self.tpe.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values) -> None:
        self.tpe.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.tpe.reseed_rng()


def study_storage(settings: Settings) -> str:
    """The profile's Optuna storage URL, its PostgreSQL database created on first use."""
    ensure_server_database(STUDY_STORAGES[settings.optuna.storage].server_database(settings))
    return settings.optuna_storage_url


# A worker's heartbeat thread touches its running trial this often; a trial whose heartbeat is
# older than the grace period belongs to a dead worker: the next worker fails it and reruns it.
HEARTBEAT_SECONDS = 20
GRACE_SECONDS = 120
MAX_RETRIES = 2


def open_study(
    storage_url: str,
    name: str,
    direction: Literal["maximize", "minimize"],
    seed: int,
    on_stale: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None,
    heartbeat_seconds: int = HEARTBEAT_SECONDS,
    grace_seconds: int = GRACE_SECONDS,
) -> optuna.Study:
    """Create or load the study, with heartbeats so a killed worker's trial is failed and
    retried; `on_stale(study, trial)` runs for each such trial (e.g. to close its MLflow run)."""
    # Optuna prints to stderr by default; through propagation its records follow the
    # application's logging (the CLI's log file, or the terminal with -v)
    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES)

    def stale(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        retry(study, trial)
        if on_stale is not None:
            on_stale(study, trial)

    def storage() -> optuna.storages.RDBStorage:
        with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                storage_url,
                heartbeat_interval=heartbeat_seconds,
                grace_period=grace_seconds,
                heartbeat_stale_trial_callback=stale,
            )

    rdb = retry_on_race(storage)
    study = retry_on_race(
        lambda: optuna.create_study(
            study_name=name, storage=rdb, direction=direction, load_if_exists=True
        )
    )
    study.sampler = TrialSeededSampler(seed, n_startup_trials=5)
    study.pruner = SameDataMedianPruner(n_startup_trials=4, n_warmup_steps=1)
    return study


def tune(
    study: optuna.Study, objective: Objective, trials: int, timeout: float | None, callbacks=()
) -> optuna.Study:
    """Add `trials` trials; numerical failures fail one trial (with its reason), bugs stop all."""
    study.optimize(
        objective,
        n_trials=trials,
        timeout=timeout,
        callbacks=list(callbacks),
        catch=(ValueError, ArithmeticError),
    )
    return study
