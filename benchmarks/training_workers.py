"""Optuna workers sharing one round: wall seconds for the same budget with 1 and N workers.

Each row starts `smap train TASK --worker --trials T --families F` in N processes at once on a
fresh study (its own `optuna.study_prefix`) and times from the first start to the last exit;
the trials' own seconds come from the study (sum of `datetime_complete - datetime_start`).
Everything runs on the services profile against the local PostgreSQL, on a database of its
own (dropped after) and a simulated platform prepared once. Every worker process pays its own
start-up (imports, reading the stored training set, MLflow), and on one machine the workers
share its cores: it measures the overhead of the round on one host, not the speed-up of
workers on many hosts. Nothing is asserted.

    uv run python benchmarks/training_workers.py --trials 12 --workers 1 2 --families xgboost
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

# run as a script, this file's folder comes first on sys.path and `benchmarks/serving.py`
# would shadow the `serving` package that `pipelines.flows` imports
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import optuna  # noqa: E402
import psycopg2  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from configs.settings import load_settings, telemetry_env
from pipelines import flows
from training.search import study_name
from training.tasks import get_task

ROOT = Path(__file__).resolve().parents[1]
ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"


def run_round(env: dict[str, str], task: str, workers: int, args: list[str]) -> float:
    cmd = [sys.executable, "-m", "pipelines", "train", task, "--worker", *args]
    started = time.perf_counter()
    procs = [
        subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(workers)
    ]
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"worker failed: {err.decode()[-1500:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="engagement")
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--families", default="xgboost")
    parser.add_argument("--json", type=Path)
    a = parser.parse_args()
    os.environ.update(telemetry_env())
    database = f"smap_bench_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(ADMIN)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{database}"')
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            base = {
                "SMAP_DATA_DIR": str(Path(tmp) / "smap"),
                "SMAP_DATABASE": database,
                "SMAP_FEAST__PROJECT": f"b{uuid.uuid4().hex[:8]}",
            }
            settings = load_settings("services", env=base)
            flows.prepare_data(settings)
            env = {k: v for k, v in os.environ.items() if not k.startswith(("SMAP_", "MLFLOW_"))}
            env |= base | {"SMAP_PROFILE": "services"}
            args = ["--trials", str(a.trials), "--families", a.families, "--no-promote"]
            # the training set is built and stored once, outside the clock
            run_round(env | {"SMAP_OPTUNA__STUDY_PREFIX": "warm"}, a.task, 1, ["--trials", "1"])
            for n in a.workers:
                prefix = f"bench{n}"
                seconds = run_round(env | {"SMAP_OPTUNA__STUDY_PREFIX": prefix}, a.task, n, args)
                name = study_name(prefix, a.task, get_task(a.task).feature_service)
                study = optuna.load_study(study_name=name, storage=settings.optuna_storage_url)
                trial_seconds = sum(
                    (t.datetime_complete - t.datetime_start).total_seconds()
                    for t in study.trials
                    if t.datetime_complete and t.datetime_start
                )
                rows.append(
                    {
                        "workers": n,
                        "trials": len(study.trials),
                        "wall_seconds": round(seconds, 1),
                        "trial_seconds": round(trial_seconds, 1),
                    }
                )
    finally:
        with admin.cursor() as cur:
            for name in (database, f"{database}_mlflow", f"{database}_optuna"):
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
    table = Table(title=f"{a.task}: {a.trials} trials of {a.families}, one round")
    for column in rows[0]:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*map(str, row.values()))
    Console().print(table)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
