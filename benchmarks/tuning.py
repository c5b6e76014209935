"""Hyperparameter search: TPE + median pruning vs random search, and MLflow's per-trial cost.

What is compared (one run, one training set, one table):

- `A) tpe+median`: the search `smap train` runs. The study is opened with `open_study`, so
  it gets the same sampler (TPE reseeded per trial, 5 start-up trials) and median pruner
  among trials on the same data (4 start-up trials, 1 warm-up step) as production.
- `B) random`: `RandomSampler(seed)` with `NopPruner()`: the baseline every trial of which
  runs to the end. It tells whether TPE and pruning earn their keep on this data.
- `C) mlflow logging`: `TrialLogger`, the callback `smap train` gives Optuna, called once per
  frozen trial of arm A inside an MLflow parent run on the profile's SQLite tracking store.

Both arms get the same trial budget, the same `Objective` over the same prepared matrices,
and a fresh study on the same temporary SQLite storage. Per arm: the best validation value
of the task's metric, trials completed / pruned / failed, wall seconds, and the seconds
(from the start of `optimize`, using each trial's `datetime_complete`) until the best so far
first came within 1% of the arm's final best. Row C gives the mean milliseconds one
TrialLogger call costs and its ratio to arm A's mean trial duration: the share of tuning
time spent on tracking.

The data set is built once: `flows.prepare_data` (simulate, ingest, apply, materialize) under a
temporary SMAP_DATA_DIR, then `build_training_set` and `prepare`. Model libraries (Keras,
XGBoost, LightGBM, scikit-learn) are imported before the clock starts, so no arm pays for a
first import. It is a benchmark, not a test: nothing here asserts on timings.

    uv run python benchmarks/tuning.py --task engagement --trials 30 --json .smap/bench/tuning.json
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import math
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import optuna
from rich.console import Console
from rich.table import Table as RichTable

from configs.settings import Settings, load_settings, telemetry_env

# Before MLflow (imported lazily below) or TensorFlow can read them.
os.environ.update({"DO_NOT_TRACK": "true", "MLFLOW_DISABLE_TELEMETRY": "true", **telemetry_env()})
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter

out = Console() if sys.stdout.isatty() else Console(width=150)  # files: no 80-column wrap
log = Console(stderr=True)
State = optuna.trial.TrialState

FAMILY_MODULES = {
    "linear": ("sklearn.linear_model",),
    "forest": ("sklearn.ensemble",),
    "xgboost": ("xgboost",),
    "lightgbm": ("lightgbm",),
    "mlp": ("keras",),
}


@dataclass
class ArmResult:
    arm: str
    best: float | None
    best_family: str | None
    completed: int
    pruned: int
    failed: int
    seconds: float
    seconds_to_99: float | None
    trial_at_99: int | None
    mean_trial_ms: float


@dataclass
class LoggingResult:
    trials_logged: int
    seconds: float
    mean_ms: float
    median_ms: float
    max_ms: float
    ratio_vs_trial: float  # mean logging ms / arm A's mean trial ms


# --- data ---------------------------------------------------------------------------------


def bench_settings(root: Path) -> Settings:
    return load_settings("local", env={"SMAP_DATA_DIR": str(root)})


def build_data(settings: Settings, task, preset: str, seed: int):
    """Simulate, ingest, apply and materialize, then the training set and its matrices."""
    from pipelines import flows
    from training.dataset import build_training_set
    from training.search import prepare

    log.print(f"demo data: preset={preset}")
    with contextlib.redirect_stdout(sys.stderr):  # Feast prints; stdout carries only the table
        flows.prepare_data(settings, preset=preset)
    ts = build_training_set(settings, task)
    log.print(
        f"training set: {len(ts.split.train):,} train / "
        f"{len(ts.split.validation):,} validation rows, {len(ts.features)} features"
    )
    return ts, prepare(ts, seed)


def warm_imports(families: tuple[str, ...]) -> None:
    """Import each family's library now, so the first trial of an arm is not an import."""
    for family in families:
        for module in FAMILY_MODULES.get(family, ()):
            importlib.import_module(module)


# --- arms ---------------------------------------------------------------------------------


def run_arm(study: optuna.Study, objective, trials: int) -> tuple[optuna.Study, datetime, float]:
    from training.search import tune

    start, t0 = datetime.now(), time.perf_counter()
    tune(study, objective, trials, timeout=None)
    return study, start, time.perf_counter() - t0


def tpe_study(settings: Settings, task, seed: int) -> optuna.Study:
    from training.search import open_study, study_name, study_storage

    name = study_name("bench-tpe", task.name, task.feature_service)
    return open_study(study_storage(settings), name, task.direction, seed)


def random_study(settings: Settings, task, seed: int) -> optuna.Study:
    from training.search import study_name

    return optuna.create_study(
        study_name=study_name("bench-random", task.name, task.feature_service),
        storage=settings.optuna_storage_url,
        direction=task.direction,
        sampler=optuna.samplers.RandomSampler(seed=seed),
        pruner=optuna.pruners.NopPruner(),
    )


def within(value: float, best: float, maximize: bool) -> bool:
    """Whether `value` is within 1% of `best` (on the right side for the direction)."""
    slack = 0.01 * abs(best)
    return value >= best - slack if maximize else value <= best + slack


def time_to_99(completed: list, start: datetime, best: float, maximize: bool):
    """(seconds from `start`, trial number) when the best so far first came within 1% of best."""
    running = None
    for trial in sorted(completed, key=lambda t: t.datetime_complete):
        value = trial.value
        if running is None or (value > running if maximize else value < running):
            running = value
        if within(running, best, maximize):
            return (trial.datetime_complete - start).total_seconds(), trial.number
    return None, None


def mean_trial_ms(study: optuna.Study) -> float:
    durations = [t.duration.total_seconds() for t in study.trials if t.duration is not None]
    return 1000 * statistics.fmean(durations) if durations else float("nan")


def summarize(arm: str, study: optuna.Study, start: datetime, seconds: float) -> ArmResult:
    completed = study.get_trials(deepcopy=False, states=(State.COMPLETE,))
    pruned = study.get_trials(deepcopy=False, states=(State.PRUNED,))
    failed = study.get_trials(deepcopy=False, states=(State.FAIL,))
    best = family = to99 = at = None
    if completed:
        maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
        best, family = study.best_value, study.best_trial.user_attrs.get("family")
        to99, at = time_to_99(completed, start, best, maximize)
    return ArmResult(
        arm,
        best,
        family,
        len(completed),
        len(pruned),
        len(failed),
        seconds,
        to99,
        at,
        mean_trial_ms(study),
    )


# --- mlflow logging overhead --------------------------------------------------------------


def time_trial_logger(settings: Settings, task, study: optuna.Study) -> list[float]:
    """Seconds of one TrialLogger call per frozen trial of `study`, inside a parent run."""
    import mlflow

    from training.tracking import TrialLogger, experiment_for, use_tracking

    client = use_tracking(settings)
    experiment_for(settings, task.name)  # creates the store and experiment outside the clock
    seconds = []
    with mlflow.start_run(run_name=f"bench-trial-logger-{task.name}") as run:
        logger = TrialLogger(client, run.info.run_id, run.info.experiment_id)
        for trial in study.get_trials(deepcopy=False):
            t0 = time.perf_counter()
            logger(study, trial)
            seconds.append(time.perf_counter() - t0)
    return seconds


def logging_result(seconds: list[float], arm_a: ArmResult) -> LoggingResult:
    ms = [1000 * s for s in seconds] or [float("nan")]
    mean = statistics.fmean(ms)
    ratio = mean / arm_a.mean_trial_ms if arm_a.mean_trial_ms > 0 else float("nan")
    return LoggingResult(len(seconds), sum(seconds), mean, statistics.median(ms), max(ms), ratio)


# --- run ----------------------------------------------------------------------------------


def run(args: argparse.Namespace, root: Path) -> tuple[list[ArmResult], LoggingResult, dict]:
    from training.search import Objective
    from training.tasks import get_task

    task = get_task(args.task)
    settings = bench_settings(root)
    ts, prepared = build_data(settings, task, args.preset, args.seed)
    warm_imports(args.families)
    objective = Objective(ts, prepared, args.families, task.direction)
    arms = []
    for label, make in (("A) tpe+median", tpe_study), ("B) random", random_study)):
        log.print(f"{label}: {args.trials} trials over {', '.join(args.families)}")
        study, start, seconds = run_arm(make(settings, task, args.seed), objective, args.trials)
        arms.append((study, summarize(label, study, start, seconds)))
    log.print("C) mlflow TrialLogger on arm A's trials")
    overhead = logging_result(time_trial_logger(settings, task, arms[0][0]), arms[0][1])
    data = {
        "metric": task.metric,
        "direction": task.direction,
        "fingerprint": ts.fingerprint,
        "rows_train": len(ts.split.train),
        "rows_validation": len(ts.split.validation),
        "features": len(ts.features),
    }
    return [result for _, result in arms], overhead, data


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def render(
    arms: list[ArmResult], overhead: LoggingResult, data: dict, args: argparse.Namespace
) -> None:
    table = RichTable(
        title=f"smap tuning benchmark (task={args.task}, trials={args.trials}, "
        f"preset={args.preset}, seed={args.seed})"
    )
    table.add_column("arm")
    table.add_column(f"best {data['metric']}", justify="right")
    table.add_column("best family")
    for name in (
        "completed",
        "pruned",
        "failed",
        "seconds",
        "s to 99% best",
        "at trial",
        "ms/trial",
        "vs A trial",
    ):
        table.add_column(name, justify="right")
    for a in arms:
        table.add_row(
            a.arm,
            fmt(a.best, ".4f"),
            a.best_family or "-",
            str(a.completed),
            str(a.pruned),
            str(a.failed),
            f"{a.seconds:.1f}",
            fmt(a.seconds_to_99, ".1f"),
            fmt(a.trial_at_99, "d"),
            f"{a.mean_trial_ms:,.0f}",
            "",
        )
    table.add_section()
    o = overhead
    table.add_row(
        "C) mlflow logging",
        "-",
        "-",
        str(o.trials_logged),
        "-",
        "-",
        f"{o.seconds:.2f}",
        "-",
        "-",
        f"{o.mean_ms:,.1f}",
        f"{o.ratio_vs_trial:.2%}",
    )
    out.print(table)
    out.print(
        f"ms/trial: mean trial duration for A and B; for C, one TrialLogger call "
        f"(median {o.median_ms:.1f} ms, max {o.max_ms:.1f} ms). vs A trial = C / A."
    )


def finite(value):
    """JSON has no NaN: non-finite floats become null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def metadata(args: argparse.Namespace, data: dict) -> dict:
    return {
        "task": args.task,
        "trials": args.trials,
        "preset": args.preset,
        "seed": args.seed,
        "families": list(args.families),
        **data,
        "optuna": optuna.__version__,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from training.tasks import TASKS

    tasks = [name for name, t in TASKS.items() if t.trainer.trainable]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="engagement", choices=tasks)
    parser.add_argument("--trials", type=int, default=30, help="trial budget of each arm")
    parser.add_argument("--preset", default="quick", choices=("quick", "small", "default"))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--families", help="comma separated (default: all of the task's)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    allowed = TASKS[args.task].families
    chosen = [f.strip() for f in (args.families or ",".join(allowed)).split(",") if f.strip()]
    unknown = sorted(set(chosen) - set(allowed))
    if unknown or not chosen:
        parser.error(f"--families: choose from {', '.join(allowed)} (got {chosen})")
    if args.trials < 1:
        parser.error("--trials: at least 1")
    args.families = tuple(chosen)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=FutureWarning, module="lightgbm")  # eval_set
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="smap-bench-tuning-") as tmp:
        arms, overhead, data = run(args, Path(tmp))
    render(arms, overhead, data, args)
    if args.json:
        report = {
            "metadata": metadata(args, data),
            "arms": [{k: finite(v) for k, v in asdict(a).items()} for a in arms],
            "mlflow_logging": {k: finite(v) for k, v in asdict(overhead).items()},
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        log.print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
