"""Optuna search over model families and their hyperparameters, with pruning.

The study lives in the profile's storage under a stable name, so a second `smap train`
continues it and several workers on one PostgreSQL storage share it. The study's history
informs the sampler; the model a run registers is always the best trial of that run.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal, cast

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState

from configs.settings import STUDY_STORAGES, Settings, TrainingSettings
from ingestion.warehouse import ensure_server_database, retry_on_race
from training.dataset import TrainingSet
from training.errors import TaskError
from training.families import FAMILIES, Data, FeatureEncoder, fit, suggest
from training.families.base import Fitted, Report, input_frame
from training.families.combine import Member, Offset, Scaling

if TYPE_CHECKING:
    from training.trainers import Tabular


def study_name(prefix: str, task_name: str, feature_service: str) -> str:
    return f"{prefix}-{task_name}-{feature_service}"


def score(ts: TrainingSet, part_frame, pred: np.ndarray, threshold: float | None = None) -> dict:
    """All metrics of the task on one part of the data; the headline is `ts.task.metric`."""
    return ts.task.trainer.score(ts, part_frame, pred, threshold)


@dataclass(frozen=True)
class Fold:
    """One validation of a candidate: fit on `data`'s train rows, score on its validation
    rows, which are `frame`'s rows in the same order."""

    data: dict[bool, Data]  # by `scaled`
    frame: pd.DataFrame


@dataclass
class Prepared:
    """Encoders and matrices computed once per process and shared by all trials.

    `data` is the train -> validation split the chosen model is refitted and calibrated on;
    `folds` are what every candidate is scored on: that split alone on a large set, or
    expanding time-ordered windows over train + validation on a small one."""

    encoders: dict[bool, FeatureEncoder]
    data: dict[bool, Data]
    folds: list[Fold] = field(default_factory=list)
    offset: tuple[int, int | None] | None = None  # columns of the task's offset, unscaled
    population: float = 0.0  # the train part's mean target: where an offset shrinks to

    @property
    def cross_validated(self) -> bool:
        return len(self.folds) > 1


def history_columns(names: list[str]) -> tuple[int, ...]:
    """Encoded positions of the `lag_k` columns, oldest (largest k) first."""
    lags = [
        (int(n.split("_")[1]), i)
        for i, n in enumerate(names)
        if n.startswith("lag_") and n.split("_")[1].isdigit()
    ]
    return tuple(i for _, i in sorted(lags, reverse=True))


def prepare(
    ts: TrainingSet, seed: int, trainer=None, selection: TrainingSettings | None = None
) -> Prepared:
    """Encoders (raw and scaled) fitted on the train part, every family's matrices, and the
    folds candidates are scored on (`selection.cv_max_rows` decides one split or several)."""
    trainer = trainer or ts.task.trainer
    selection = selection or TrainingSettings()
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
    small = len(train) + len(val) <= selection.cv_max_rows
    folds = time_folds(ts, data, selection.cv_folds) if small else []
    names = encoders[False].names
    task = ts.task
    offset = None
    if (
        trainer.fit_kind == "regression"
        and task.offset_rate in names
        and trainer.name != "forecast"
    ):
        count = names.index(task.offset_count) if task.offset_count in names else None
        offset = (names.index(task.offset_rate), count)
    return Prepared(
        encoders,
        data,
        folds or [Fold(data, val)],
        offset,
        float(np.mean(data[False].y_train)) if len(train) else 0.0,
    )


MIN_FOLD_ROWS = 30  # a fold whose train or validation part is smaller says nothing


def time_folds(ts: TrainingSet, data: dict[bool, Data], folds: int) -> list[Fold]:
    """Expanding windows over train + validation in time order: the rows are cut into
    `folds + 1` blocks; fold k validates on block k + 1 and trains on everything before it
    that is older than the label window (`task.label_days`), so no label reaches into the
    rows it is scored on. The newest fold is last. The test part is never touched."""
    frame = pd.concat([ts.part("train"), ts.part("validation")])
    stamps = pd.DatetimeIndex(pd.to_datetime(frame[ts.task.split_on], utc=True)).asi8
    order = np.argsort(stamps, kind="stable")
    stamps = stamps[order]
    gap = pd.Timedelta(days=ts.task.label_days).value
    stacked = {
        scaled: (
            np.concatenate([d.x_train, d.x_val])[order],
            np.concatenate([d.y_train, d.y_val])[order],
        )
        for scaled, d in data.items()
    }
    cuts = np.linspace(0, len(order), folds + 2).astype(int)
    out = []
    for start, end in zip(cuts[1:-1], cuts[2:], strict=True):
        train_end = int(np.searchsorted(stamps, stamps[start] - gap, side="left"))
        if train_end < MIN_FOLD_ROWS or end - start < MIN_FOLD_ROWS:
            continue
        fold_data = {
            scaled: replace(
                d,
                x_train=stacked[scaled][0][:train_end],
                y_train=stacked[scaled][1][:train_end],
                x_val=stacked[scaled][0][start:end],
                y_val=stacked[scaled][1][start:end],
            )
            for scaled, d in data.items()
        }
        out.append(Fold(fold_data, frame.iloc[order[start:end]]))
    return out if len(out) > 1 else []


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


def run_trial(
    trial: optuna.Trial,
    run_id: str,
    data: str,
    families: tuple[str, list],
    evaluate: Callable[[optuna.Trial, str], float],
) -> float:
    """One trial of any objective: tagged with its run and its data's fingerprint, its family
    picked by the parameter `families` names (`family_parameter`), then
    `evaluate(trial, family)`; a failure other than pruning is recorded on the trial as one
    line before it is raised."""
    trial.set_user_attr(RUN_ID, run_id)
    trial.set_user_attr(FINGERPRINT, data)
    try:
        family = trial.suggest_categorical(*families)
        trial.set_user_attr(FAMILY, family)
        return evaluate(trial, family)
    except optuna.TrialPruned:
        raise
    except Exception as exc:
        trial.set_user_attr(FAIL_REASON, failure_line(exc))
        raise


@dataclass(frozen=True)
class Spec:
    """A candidate before it is fitted: a family, its parameters, and whether it learns the
    residual over the task's offset (and how hard that offset shrinks to the population)."""

    family: str
    params: dict
    offset_strength: float | None = None

    @property
    def scaled(self) -> bool:
        """Whether its family fits imputed, standardised inputs."""
        return FAMILIES[self.family].scaled

    @classmethod
    def of_trial(cls, trial: optuna.trial.FrozenTrial) -> Spec:
        family = trial.user_attrs[FAMILY]
        prefix = family + "."
        params = {k[len(prefix) :]: v for k, v in trial.params.items() if k.startswith(prefix)}
        strength = trial.params.get(OFFSET_STRENGTH) if trial.params.get(OFFSET) == SHRUNK else None
        return cls(family, params, strength)


OFFSET = "offset"  # trial parameter: what a regression learns over (none | shrunk_rate)
OFFSET_STRENGTH = "offset.strength"
SHRUNK = "shrunk_rate"


@dataclass(frozen=True)
class Scored:
    """A spec's validation: the headline metric per fold, every metric averaged over folds,
    and its predictions per fold on the scale the model fits (a blend averages there, as the
    blended model does), kept for blends."""

    folds: tuple[float, ...]
    metrics: dict[str, float]
    predictions: tuple[np.ndarray, ...]

    @classmethod
    def of(cls, values: list[float], every: list[dict[str, float]], preds: list[np.ndarray]):
        """From per-fold headline values, per-fold metrics and per-fold predictions."""
        averaged = {k: float(np.nanmean([m[k] for m in every])) for k in every[0]}
        return cls(tuple(values), averaged, tuple(preds))

    @property
    def value(self) -> float:
        return float(np.mean(self.folds))

    @property
    def spread(self) -> float:
        return float(np.std(self.folds)) if len(self.folds) > 1 else 0.0


class Objective:
    """Given its data once; each call fits one candidate and returns its validation metric
    (the mean over the prepared folds, with their spread as `val_<metric>_spread`).

    Every trial is labelled with its family, its run and its data, so a run picks its best
    among its own trials, and the pruner compares a trial only with trials on the same data.
    Each trial's fold predictions are kept, so the run can blend its best (`selection.py`).
    """

    def __init__(
        self,
        ts: TrainingSet,
        prepared: Prepared,
        families: tuple[str, ...],
        direction: str,
        run_id: str = "",
        trainer: Tabular | None = None,
        selection: TrainingSettings | None = None,
    ):
        self.ts, self.prepared, self.run_id = ts, prepared, run_id
        self.selection = selection or TrainingSettings()
        self.trainer = trainer or cast("Tabular", ts.task.trainer)
        self.family_name, self.families = family_parameter(
            self.trainer.candidates(ts.task), families
        )
        self.direction = direction
        self.sign = -1.0 if direction == "maximize" else 1.0
        self.scored: dict[int, Scored] = {}  # by trial number, this process's trials

    def __call__(self, trial: optuna.Trial) -> float:
        families = (self.family_name, self.families)
        return run_trial(trial, self.run_id, self.ts.fingerprint, families, self.evaluate)

    def evaluate(self, trial: optuna.Trial, family: str) -> float:
        params = suggest(trial, family)
        strength = None
        if self.prepared.offset is not None:
            if trial.suggest_categorical(OFFSET, ["none", SHRUNK]) == SHRUNK:
                strength = trial.suggest_float(OFFSET_STRENGTH, 0.5, 50.0, log=True)

        def report(step: int, loss: float) -> None:
            trial.report(self.sign * loss, step)
            if trial.should_prune():
                raise optuna.TrialPruned()

        scored = self.score(Spec(family, params, strength), report)
        for name, value in scored.metrics.items():
            trial.set_user_attr(f"val_{name}", value)
        metric = self.ts.task.metric
        trial.set_user_attr(f"val_{metric}_spread", scored.spread)
        trial.set_user_attr("folds", len(scored.folds))
        self.scored[trial.number] = scored
        return scored.value

    def offset_for(self, spec: Spec) -> Offset | None:
        if spec.offset_strength is None or self.prepared.offset is None:
            return None
        rate, count = self.prepared.offset
        return Offset(rate, count, self.prepared.population, spec.offset_strength)

    def fit(self, spec: Spec, data: dict[bool, Data], report: Report) -> Fitted:
        """`spec` fitted on `data`'s train rows; it predicts on the unscaled matrix when it
        learned a residual (a `Member`), else on its own family's matrix."""
        scaled = spec.scaled
        offset = self.offset_for(spec)
        if offset is None:
            return fit(spec.family, spec.params, data[scaled], report)
        raw = data[False]
        base_train, base_val = offset.base(raw.x_train), offset.base(raw.x_val)
        residual = replace(
            data[scaled], y_train=data[scaled].y_train - base_train, y_val=raw.y_val - base_val
        )
        fitted = fit(spec.family, spec.params, residual, report)
        scaling = Scaling.of(self.prepared.encoders[True]) if scaled else None
        return Member(fitted, scaling, offset)

    def score(self, spec: Spec, report: Report | None = None) -> Scored:
        """`spec` fitted and scored on every fold; the newest fold first, the only one whose
        losses reach the pruner (steps must mean the same data across trials)."""
        folds = self.prepared.folds
        values: list[float] = [0.0] * len(folds)
        preds: list[np.ndarray] = [np.empty(0)] * len(folds)
        every: list[dict[str, float]] = []
        metric = self.ts.task.metric
        for i in reversed(range(len(folds))):
            fold = folds[i]
            fitted = self.fit(spec, fold.data, report or _ignore)
            report = None
            x_val = fold.data[False if isinstance(fitted, Member) else spec.scaled].x_val
            raw = np.asarray(fitted.predict(x_val), dtype=float)
            pred = self.trainer.from_training_scale(raw, fold.frame)
            metrics = self.trainer.score(self.ts, fold.frame, pred)
            if not np.isfinite(metrics[metric]):
                raise FloatingPointError(f"validation {metric} is not finite (fold {i + 1})")
            values[i], preds[i] = float(metrics[metric]), raw
            every.append(metrics)
        return Scored.of(values, every, preds)


def _ignore(step: int, loss: float) -> None:
    """Losses of folds other than the newest: never reported to the pruner."""


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
