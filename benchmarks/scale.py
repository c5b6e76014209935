"""How cost grows with the data: ETL, training-set build and materialization on the local
engine and on Spark, at 1x, 4x (and, if it fits, 16x) the default preset's accounts.

What is measured, per engine and size (one table, one run, side by side):

- `etl`: `smap ingest` (raw -> analytics tables); rows = analytics rows written.
- `training set`: engagement's training set built afresh (label query + Feast's
  point-in-time join); rows = training rows.
- `materialize`: the whole history into Redis (a private Redis database and Feast project);
  rows = source rows of the tables behind the views served online (as `benchmarks/ingest.py`
  counts them: Feast reads them all to keep each key's latest), and the online keys written
  per second beside them.

Engines: `local` is the local profile (Parquet + DuckDB) with Redis as its online store;
`cluster` is the cluster profile (the lake, Spark ETL, Feast's Spark offline store and
compute engine) on the Spark master of `--spark-master` (a standalone cluster from
`smap cluster up`, or `local[2]`). Each stage runs in a child process of its own, and its
**peak memory** is that of the driver: the child's Python process and every process it
started (the Spark driver's JVM), summed and sampled every 0.1 s. Spark executors run in the
cluster's worker processes and are not counted: the driver is what must stay flat as data
grows. Raw tables are generated and written before the clock starts.

    uv run python benchmarks/scale.py --sizes 1,4 --json .smap/bench/scale.json
    smap cluster up && uv run python benchmarks/scale.py --engines cluster --sizes 1

Goals (issue 18): the cluster path's driver memory stays within 25% from 1x to the largest
size while the local path's grows with the data; materialization reaches 100k rows/s into
Redis on either path; the cluster path takes at most 3x the local engine's time at the
largest size. This machine has 2 cores: Spark can't win here; it must not lose badly.
It is a benchmark, not a test: nothing here asserts on timings.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table as RichTable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from configs.settings import telemetry_env  # noqa: E402

os.environ.update(telemetry_env())  # before MLflow, BentoML or Feast are imported

out = Console(width=120)
log = Console(stderr=True)
STAGES = ("raw", "etl", "apply", "training set", "materialize", "prediction log")
TIMED = ("etl", "training set", "materialize", "prediction log")
BENCH_REDIS_DB = 13  # a Redis database of the benchmark's own, emptied before and after


@dataclass
class Result:
    engine: str
    size: int
    stage: str
    rows: int
    seconds: float
    peak_driver_mb: float
    keys: int | None = None
    bytes_per_key: float | None = None  # Redis MEMORY USAGE per online key (materialize)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("nan")

    def as_dict(self) -> dict:
        return {**asdict(self), "rows_per_second": round(self.rows_per_second, 1)}


# --- one stage, in the child process -------------------------------------------------------


def run_stage(stage: str, preset: str, size: int, seed: int) -> dict:
    """Run one stage on the profile of this process's environment; its rows and seconds."""
    from configs.settings import load_settings

    settings = load_settings()
    started = time.perf_counter()
    if stage == "raw":
        from ingestion.schema import ALL_TABLES
        from ingestion.simulator import scaled, simulate
        from ingestion.warehouse import open_warehouse

        tables = simulate(scaled(preset, size), seed, settings.simulator.start_date)
        warehouse = open_warehouse(settings)
        with warehouse.writing():
            rows = sum(warehouse.write(ALL_TABLES[n], f) for n, f in tables.items())
        return {"rows": rows, "seconds": time.perf_counter() - started}
    if stage == "etl":
        from pipelines import flows

        written = flows.ingest(settings)
        return {"rows": sum(written.values()), "seconds": time.perf_counter() - started}
    if stage == "apply":
        from pipelines import flows

        flows.apply_features(settings)
        return {"rows": 0, "seconds": time.perf_counter() - started}
    if stage == "training set":
        from training.dataset import build_training_set
        from training.tasks import get_task

        ts = build_training_set(settings, get_task("engagement"))
        return {"rows": len(ts.frame), "seconds": time.perf_counter() - started}
    if stage == "materialize":
        from feature_repo.data_sources import FEATURE_TABLES, table_of
        from feature_repo.store import materialize, online_views, open_store
        from ingestion.warehouse import open_warehouse

        keys = materialize(settings)
        seconds = time.perf_counter() - started
        warehouse = open_warehouse(settings)
        # the source rows of the views materialized (a table read by several views once)
        tables = {table_of(v.batch_source) for v in online_views(open_store(settings))}
        rows = sum(len(warehouse.read(t, columns=[FEATURE_TABLES[t]])) for t in tables)
        return {
            "rows": rows,
            "seconds": seconds,
            "keys": sum(keys.values()),
            "bytes_per_key": redis_bytes_per_key(settings),
        }
    if stage == "prediction log":
        return prediction_log_rate(settings)
    raise ValueError(f"unknown stage {stage!r}")


def redis_bytes_per_key(settings, sample: int = 2_000) -> float:
    """Mean `MEMORY USAGE` of a sample of the online store's keys (Redis' own accounting of
    a key with its hash of features): what the capacity model multiplies by keys."""
    client = settings.redis.client()
    keys = []
    for key in client.scan_iter(count=1_000):
        keys.append(key)
        if len(keys) == sample:
            break
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key)
    sizes = [n for n in pipe.execute() if n]
    return sum(sizes) / len(sizes) if sizes else float("nan")


def prediction_log_rate(settings, rows: int = 100_000) -> dict:
    """Rows/s of the PostgreSQL prediction log's batched INSERTs (the services and cluster
    profiles' log), in the service's batch size; one draft's row as the service writes it."""
    from ingestion.warehouse import ensure_database
    from serving.prediction_log import PostgresTable, as_text

    ensure_database(settings.postgres)
    table = PostgresTable(settings)
    now = datetime.now(UTC)
    features = json.dumps({f"f{i}": 0.5 for i in range(24)})  # a draft's ~24 features
    row = ("r", now, "engagement", '{"user_id": 1}', features, 0.05, "engagement", 1, "x", "s")
    batch = as_text([row] * settings.serving.log_batch_rows)
    table(batch[:1])  # the table created before the clock starts
    started = time.perf_counter()
    for _ in range(rows // len(batch)):
        table(batch)
    return {"rows": rows, "seconds": time.perf_counter() - started}


# --- the parent: children, memory sampling, the table ---------------------------------------


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MB."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def run_child(
    stage: str, preset: str, size: int, seed: int, env: dict[str, str]
) -> tuple[dict, float]:
    """One stage in a fresh interpreter; its result and the peak memory of its tree."""
    with tempfile.NamedTemporaryFile(suffix=".json") as result:
        child = subprocess.Popen(
            [sys.executable, __file__, "--stage", stage, "--preset", preset, "--size", str(size)]
            + ["--seed", str(seed), "--result", result.name],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        peak = 0.0
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, tree_rss_mb(child.pid))
                stop.wait(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, err = child.communicate()
        stop.set()
        sampler.join()
        if child.returncode != 0:
            raise RuntimeError(f"{stage} failed (exit {child.returncode}):\n{err[-3000:]}")
        return json.loads(Path(result.name).read_text()), peak


def engine_env(engine: str, data_dir: Path, database: str, project: str, master: str) -> dict:
    env = {
        **os.environ,
        "SMAP_PROFILE": engine,
        "SMAP_DATA_DIR": str(data_dir),
        "SMAP_DATABASE": database,
        "SMAP_FEAST__PROJECT": project,
        "SMAP_FEAST__ONLINE_STORE": "redis",
        "SMAP_REDIS__DB": str(BENCH_REDIS_DB),
    }
    if engine == "cluster":
        env["SMAP_SPARK__MASTER"] = master
    return env


def drop_database(name: str) -> None:
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        for db in (name, f"{name}_mlflow", f"{name}_optuna"):
            cur.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    conn.close()


def flush_bench_redis() -> None:
    import redis

    redis.Redis(host="127.0.0.1", port=6379, db=BENCH_REDIS_DB).flushdb()


def measure(
    engine: str, preset: str, size: int, seed: int, master: str, workdir: Path
) -> list[Result]:
    tag = uuid.uuid4().hex[:8]
    database, project = f"smap_scale_{tag}", f"scale_{tag}"
    env = engine_env(engine, workdir / f"{engine}-{size}x", database, project, master)
    results = []
    flush_bench_redis()
    try:
        for stage in STAGES:
            log.print(f"{engine} {size}x: {stage}")
            figures, peak = run_child(stage, preset, size, seed, env)
            if stage in TIMED:
                results.append(
                    Result(
                        engine,
                        size,
                        stage,
                        figures["rows"],
                        figures["seconds"],
                        round(peak, 1),
                        figures.get("keys"),
                        figures.get("bytes_per_key"),
                    )
                )
    finally:
        drop_database(database)
        flush_bench_redis()
    return results


def print_table(results: list[Result], preset: str) -> None:
    table = RichTable(title=f"smap scale benchmark ({preset} preset x size)")
    for name in (
        "stage",
        "size",
        "engine",
        "rows",
        "seconds",
        "rows/s",
        "keys/s",
        "B/key",
        "peak MB",
    ):
        table.add_column(name, justify="left" if name in ("stage", "engine") else "right")
    for stage in TIMED:
        for r in sorted((r for r in results if r.stage == stage), key=lambda r: (r.size, r.engine)):
            keys_rate = f"{r.keys / r.seconds:,.0f}" if r.keys else ""
            table.add_row(
                stage,
                f"{r.size}x",
                r.engine,
                f"{r.rows:,}",
                f"{r.seconds:.1f}",
                f"{r.rows_per_second:,.0f}",
                keys_rate,
                f"{r.bytes_per_key:,.0f}" if r.bytes_per_key else "",
                f"{r.peak_driver_mb:,.0f}",
            )
    out.print(table)
    for stage in TIMED:
        for size in sorted({r.size for r in results}):
            pair = {r.engine: r for r in results if r.stage == stage and r.size == size}
            if {"local", "cluster"} <= pair.keys():
                ratio = pair["cluster"].seconds / pair["local"].seconds
                out.print(f"{stage} {size}x: cluster takes {ratio:.2f}x the local engine's time")
    for engine in sorted({r.engine for r in results}):
        sizes = sorted({r.size for r in results if r.engine == engine})
        if len(sizes) > 1:
            for stage in TIMED:
                by = {r.size: r for r in results if r.engine == engine and r.stage == stage}
                growth = by[sizes[-1]].peak_driver_mb / by[sizes[0]].peak_driver_mb
                out.print(
                    f"{engine} {stage}: driver peak {sizes[-1]}x / {sizes[0]}x = {growth:.2f}"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,4", help="comma separated multiples of default")
    parser.add_argument("--engines", default="local,cluster", help="local, cluster or both")
    parser.add_argument("--spark-master", default="spark://127.0.0.1:7077")
    parser.add_argument("--preset", default="default", choices=("quick", "small", "default"))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--stage", help=argparse.SUPPRESS)  # a child's one stage
    parser.add_argument("--size", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        args.result.write_text(json.dumps(run_stage(args.stage, args.preset, args.size, args.seed)))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    engines = [e.strip() for e in args.engines.split(",")]
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="smap-scale-") as workdir:
        for size in sizes:
            for engine in engines:
                results += measure(
                    engine, args.preset, size, args.seed, args.spark_master, Path(workdir)
                )
    print_table(results, args.preset)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([r.as_dict() for r in results], indent=2))
        log.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
