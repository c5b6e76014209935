"""Time-ordered cross-validation against one validation split, by training-set size.

Draws sets of each size at random from a stored engagement training set (rows kept in time
order, so the time split and the folds stay honest), runs the same TPE search over linear and
LightGBM on each with the folds on and off (`training.cv_max_rows` forced), and prints what
the run chose: its validation value (mean ± spread over folds) next to its test R², and the
seconds each took. It tells where one split stops being trustworthy (`cv_max_rows`).

    uv run smap simulate --preset small && uv run smap ingest && uv run smap features apply
    uv run smap train engagement --trials 1        # builds and stores the training set
    uv run python benchmarks/model_selection.py --sizes 1500,6000,25000 \
        --json .smap/bench/model_selection.json

A benchmark, not a test: nothing here asserts on timings.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from rich.console import Console
from rich.table import Table
from sklearn.metrics import r2_score

from configs.settings import TrainingSettings, load_settings
from training.dataset import TrainingSet, time_split
from training.search import best_of_run
from training.tasks import get_task
from training.trainers import REGRESSION

NOT_FEATURES = {"post_id", "user_id", "event_timestamp", "target", "oracle", "posted_at"}


def stored_set(data_dir: Path) -> pd.DataFrame:
    found = sorted((data_dir / "training_sets" / "engagement").glob("*.parquet"))
    if not found:
        sys.exit(f"error: no stored engagement set under {data_dir} (run `smap train engagement`)")
    return pd.read_parquet(found[-1]).sort_values("event_timestamp").reset_index(drop=True)


def run(full: pd.DataFrame, rows: int, draw: int, cv: bool, trials: int, seed: int) -> dict:
    task = get_task("engagement")
    frame = full.sample(rows, random_state=draw).sort_values("event_timestamp")
    frame = frame.reset_index(drop=True)
    features = [c for c in full.columns if c not in NOT_FEATURES and c != "is_paid"]
    categorical = [c for c in features if frame[c].dtype == object]
    split = time_split(frame.event_timestamp, task.label_days)
    ts = TrainingSet(task, frame, features, categorical, split, f"draw{draw}", {})
    started = time.perf_counter()
    settings = TrainingSettings(seed=seed, cv_max_rows=10**9 if cv else 0)
    objective = REGRESSION.objective(ts, ("linear", "lightgbm"), "bench", settings)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=trials)
    model = REGRESSION.best_model(ts, objective, best_of_run(study, "bench", task.name), study)
    test = ts.part("test")
    chosen = model.selection["chosen"]
    return {
        "rows": rows,
        "draw": draw,
        "folds": len(chosen["folds"]),
        "chosen": chosen["label"],
        "validation": chosen["value"],
        "spread": chosen["spread"],
        "test_r2": float(r2_score(test.target, model.predict_frame(test[features]))),
        "seconds": time.perf_counter() - started,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1500,6000,25000")
    parser.add_argument("--draws", type=int, default=2)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("lightgbm").setLevel(logging.ERROR)
    full = stored_set(args.data_dir or load_settings().data_dir)
    results = []
    for rows in (int(s) for s in args.sizes.split(",")):
        for draw in range(1, args.draws + 1):
            for cv in (False, True):
                results.append(run(full, rows, draw, cv, args.trials, args.seed))
    table = Table(title="one split vs time-ordered folds (engagement, drawn sets)")
    for name in ("rows", "draw", "folds", "chosen", "validation ± spread", "test R²", "s"):
        table.add_column(name)
    for r in results:
        table.add_row(
            str(r["rows"]),
            str(r["draw"]),
            str(r["folds"]),
            r["chosen"][:44],
            f"{r['validation']:.3f} ± {r['spread']:.3f}",
            f"{r['test_r2']:.3f}",
            f"{r['seconds']:.0f}",
        )
    Console().print(table)
    optimism = [(r["rows"], r["folds"] > 1, abs(r["validation"] - r["test_r2"])) for r in results]
    for rows in sorted({o[0] for o in optimism}):
        for cv in (False, True):
            gaps = [g for n, c, g in optimism if n == rows and c == cv]
            print(f"rows {rows}, {'folds' if cv else 'one split'}: |validation - test| "
                  f"mean {np.mean(gaps):.3f}")  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
