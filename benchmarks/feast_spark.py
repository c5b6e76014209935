"""Feast on Spark (the cluster profile) against the local path, on one simulated preset.

- `local`: Parquet warehouse, Feast's DuckDB store with smap's ASOF join, Feast's local
  (in-process) engine materializing into Redis (`feast.online_store: redis`).
- `cluster`: the lake (ingestion/lake.py), Feast's Spark offline store and Spark compute
  engine materializing into Redis, on `--master` (local[2] by default).

Measured in a child process per profile, after simulate -> ingest -> apply: the first
materialization of every view (seconds, online keys written, rows/s) and the training sets
of engagement and churn (seconds, rows). Each profile gets its own Feast project (its Redis
keys are removed after) and the cluster one its own PostgreSQL database (dropped after).
A benchmark, not a test: nothing here asserts on timings.

    uv run python -m benchmarks.feast_spark --preset quick
    uv run python -m benchmarks.feast_spark --preset default --json .smap/bench/feast_spark.json
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TASKS = ("engagement", "churn")


def measure(profile: str, preset: str, data_dir: str, env: dict[str, str]) -> dict:
    """One profile's figures (run in the child process)."""
    from configs.settings import load_settings
    from feature_repo.store import materialize
    from pipelines import flows
    from training.dataset import build_training_set
    from training.tasks import get_task

    settings = load_settings(profile, env={"SMAP_DATA_DIR": data_dir, **env})
    flows.simulate(settings, preset=preset)
    flows.ingest(settings)
    flows.apply_features(settings)
    start = time.perf_counter()
    keys = materialize(settings)
    seconds = time.perf_counter() - start
    out: dict = {
        "profile": profile,
        "materialize_s": round(seconds, 1),
        "online_keys": sum(keys.values()),
        "rows_per_s": round(sum(keys.values()) / seconds),
    }
    for task in TASKS:
        start = time.perf_counter()
        training = build_training_set(settings, get_task(task))
        out[f"{task}_s"] = round(time.perf_counter() - start, 1)
        out[f"{task}_rows"] = len(training.frame)
    return out


def _child(args: argparse.Namespace) -> None:
    env = json.loads(args.env)
    print(json.dumps(measure(args.child, args.preset, args.data_dir, env)))


def _database(action: str, name: str) -> None:
    import psycopg2

    conn = psycopg2.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        if action == "create":
            cur.execute(f'CREATE DATABASE "{name}"')
        else:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


def _forget_project(project: str) -> None:
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379)
    batch = []
    for key in client.scan_iter(match=b"*" + project.encode() + b"*", count=10_000):
        batch.append(key)
        if len(batch) == 10_000:
            client.delete(*batch)
            batch.clear()
    if batch:
        client.delete(*batch)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quick", choices=["quick", "small", "default"])
    parser.add_argument("--master", default="local[2]", help="Spark master of the cluster path")
    parser.add_argument("--profiles", default="local,cluster")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    parser.add_argument("--env", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args)
        return 0
    results = []
    with tempfile.TemporaryDirectory(prefix="smap-feast-spark-") as tmp:
        for profile in args.profiles.split(","):
            project = f"bench{secrets.token_hex(4)}"
            database = f"smap_bench_{secrets.token_hex(4)}"
            env = {"SMAP_FEAST__PROJECT": project, "SMAP_FEAST__ONLINE_STORE": "redis"}
            if profile == "cluster":
                env |= {"SMAP_DATABASE": database, "SMAP_SPARK__MASTER": args.master}
                _database("create", database)
            command = [sys.executable, "-m", "benchmarks.feast_spark", "--child", profile]
            command += ["--preset", args.preset]
            command += ["--data-dir", f"{tmp}/{profile}", "--env", json.dumps(env)]
            try:
                done = subprocess.run(
                    command, cwd=ROOT, capture_output=True, text=True, env=dict(os.environ)
                )
            finally:
                _forget_project(project)
                if profile == "cluster":
                    _database("drop", database)
            if done.returncode:
                print(done.stderr[-3000:], file=sys.stderr)
                return done.returncode
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    columns = list(results[0])
    print(f"preset {args.preset}, Spark master {args.master}")
    print(" | ".join(columns))
    for row in results:
        print(" | ".join(str(row[c]) for c in columns))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"preset": args.preset, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
