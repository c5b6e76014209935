"""Building the engagement training set: Feast offline stores against a plain DuckDB floor.

What is measured (one run, one table), all on the same entity rows (the engagement label
query of the preset: one row per matured post, keyed by post and author, timestamped at
publication) joined point in time with the feature views of the task's feature service:

- `file`: Feast's file (Dask) offline store, the old local default, in time-ordered chunks of
  `--chunk-rows` entity rows (unchunked it ran out of 24 GB on the default preset);
  `--file-rows N` gives it only the first N entity rows (on the small preset it took ten
  minutes and 8 GB for 87k rows).
- `duckdb_window`: Feast's own DuckDB offline store (its point-in-time join is a window over
  every feature row inside the TTL), through smap's `historical_features`, chunked the same way.
- `duckdb`: the new local default, Feast's DuckDB store with smap's ASOF point-in-time join
  (feature_repo/offline_store.py), through the same `historical_features`.
- `postgres`: Feast's PostgreSQL offline store on the services profile, over the same feature
  tables copied into a fresh database (removed afterwards).
- `floor`: one DuckDB `ASOF LEFT JOIN` per feature view on its entity keys and timestamp, with no
  TTL and no Feast: the least any point-in-time join of these tables can cost here.

Each path runs in a child process of its own, so `peak MB` is that process's maximum resident
set size (its VmHWM), imports included. `rows` is what came back; the entity row count is
printed beside it, so a store that loses rows shows. A benchmark, not a test: nothing here
asserts on timings.

    uv run python benchmarks/training_set.py --preset default --json .smap/bench/training_set.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table as RichTable

from configs.settings import load_settings, telemetry_env

os.environ.update(telemetry_env())

out = Console()
log = Console(stderr=True)
METHODS = ("file", "duckdb_window", "duckdb", "postgres", "floor")


@dataclass
class Result:
    method: str
    rows: int
    entity_rows: int
    seconds: float
    peak_mb: float
    ratio_vs_floor: float | None = None

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")

    def as_dict(self) -> dict:
        return {**asdict(self), "rows_per_second": round(self.rows_per_second, 1)}


# --- data ---------------------------------------------------------------------------------


def local_env(data_dir: Path, offline_store: str = "duckdb") -> dict[str, str]:
    return {
        **os.environ,
        "SMAP_PROFILE": "local",
        "SMAP_DATA_DIR": str(data_dir),
        "SMAP_FEAST__OFFLINE_STORE": offline_store,
    }


def services_env(data_dir: Path, database: str, project: str) -> dict[str, str]:
    return {
        **os.environ,
        "SMAP_PROFILE": "services",
        "SMAP_DATA_DIR": str(data_dir),
        "SMAP_DATABASE": database,
        "SMAP_FEAST__PROJECT": project,
    }


def smap(*args: str, env: dict[str, str]) -> None:
    """Run a smap command for set-up, its output kept off the table."""
    subprocess.run(
        [sys.executable, "-m", "pipelines", *args], env=env, check=True, capture_output=True
    )


def prepare_local(data_dir: Path, preset: str, seed: int) -> None:
    """Simulate and ingest the preset once; a data dir that already holds it is reused."""
    if (data_dir / "warehouse" / "post_features.parquet").is_file():
        log.print(f"reusing the simulated tables in {data_dir}")
    else:
        log.print(f"simulating preset {preset} into {data_dir} ...")
        env = local_env(data_dir)
        smap("simulate", "--preset", preset, "--seed", str(seed), env=env)
        smap("ingest", env=env)
    # both local stores read the same FileSources: one registry serves them
    smap("features", "apply", env=local_env(data_dir))


def first_rows(source: Path, path: Path, n: int) -> None:
    """The first `n` entity rows in time order (a shorter run for a slow store)."""
    import pandas as pd

    rows = pd.read_parquet(source).sort_values("event_timestamp", kind="stable")
    rows.head(n).to_parquet(path)


def write_entity_rows(data_dir: Path, path: Path) -> int:
    """The engagement label query's entity rows, written once for every method."""
    from ingestion.warehouse import open_warehouse
    from training.tasks import get_task

    settings = load_settings(env=local_env(data_dir))
    rows = get_task("engagement").label_query(open_warehouse(settings))
    rows.to_parquet(path)
    return len(rows)


def prepare_postgres(data_dir: Path, database: str, project: str) -> None:
    """Copy the feature tables into a fresh database and register the Feast definitions."""
    from ingestion.schema import ALL_TABLES
    from ingestion.warehouse import open_warehouse

    local = open_warehouse(load_settings(env=local_env(data_dir)))
    settings = load_settings(env=services_env(data_dir / "services", database, project))
    remote = open_warehouse(settings)
    views = service_views(load_settings(env=local_env(data_dir)))
    tables = list(dict.fromkeys(view.table for view in views))
    remote.write_many([(ALL_TABLES[t], local.read(t)) for t in tables])
    smap("features", "apply", env=services_env(data_dir / "services", database, project))


def drop_database(database: str, project: str) -> None:
    import psycopg2
    import redis

    conn = psycopg2.connect("host=127.0.0.1 user=postgres dbname=postgres", connect_timeout=5)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    conn.close()
    client = redis.Redis(host="127.0.0.1", socket_connect_timeout=3)
    for key in client.scan_iter(match=b"*" + project.encode() + b"*", count=1000):
        client.delete(key)


# --- the measured paths (each in its own process) ------------------------------------------


def child_feast(entity_path: Path, chunk_rows: int) -> tuple[int, float]:
    import pandas as pd

    from feature_repo.store import open_store
    from training.dataset import historical_features
    from training.tasks import get_task

    settings = load_settings()
    entity_rows = pd.read_parquet(entity_path)
    store = open_store(settings)
    start = time.perf_counter()
    service = get_task("engagement").feature_service
    frame, _restored = historical_features(store, entity_rows, service, chunk_rows)
    return len(frame), time.perf_counter() - start


def child_file_store(entity_path: Path, chunk_rows: int) -> tuple[int, float]:
    """The old path as it was: Feast's chunked result, with no rows restored."""
    import pandas as pd

    from feature_repo.store import open_store

    settings = load_settings()
    entity_rows = pd.read_parquet(entity_path).sort_values("event_timestamp", kind="stable")
    from training.tasks import get_task

    store = open_store(settings)
    service = store.get_feature_service(get_task("engagement").feature_service)
    start = time.perf_counter()
    rows = 0
    for i in range(0, len(entity_rows), chunk_rows):
        chunk = entity_rows.iloc[i : i + chunk_rows]
        rows += len(store.get_historical_features(entity_df=chunk, features=service).to_df())
    return rows, time.perf_counter() - start


@dataclass(frozen=True)
class JoinedView:
    """A feature view the task's service joins, directly or as the input of an on-demand view."""

    table: str  # the warehouse table behind its source
    path: Path  # that table's Parquet file
    keys: dict[str, str]  # entity-row column -> source column
    features: dict[str, str]  # feature name -> source column


def service_views(settings) -> list[JoinedView]:
    """Every feature view the engagement service reads: its own views and the views its
    on-demand views take as inputs (author history, author category, the hashtag slots)."""
    from feature_repo.data_sources import table_of
    from feature_repo.store import open_store
    from training.tasks import get_task

    store = open_store(settings)
    service = store.get_feature_service(get_task("engagement").feature_service)
    names: dict[str, None] = {}
    for projection in service.feature_view_projections:
        try:
            store.get_feature_view(projection.name)
            names[projection.name] = None
        except Exception:  # noqa: BLE001 - an on-demand view: its inputs are joined
            odfv = store.get_on_demand_feature_view(projection.name)
            names.update(dict.fromkeys(odfv.source_feature_view_projections))
    views = []
    for name in names:
        view = store.get_feature_view(name)
        source = view.batch_source
        column = {feature: col for col, feature in source.field_mapping.items()}
        keys = {c.name: column.get(c.name, c.name) for c in view.entity_columns}
        table = table_of(source)
        views.append(
            JoinedView(
                table,
                settings.warehouse_dir / f"{table}.parquet",
                keys,
                {f.name: column.get(f.name, f.name) for f in view.features},
            )
        )
    return views


def child_floor(entity_path: Path, warehouse_dir: Path) -> tuple[int, float]:
    import duckdb

    views = service_views(load_settings())
    con = duckdb.connect()
    start = time.perf_counter()
    con.execute(f"CREATE TABLE e AS SELECT * FROM read_parquet('{entity_path}')")
    ctes, joins, selects = [], [], []
    for i, view in enumerate(views):
        cols = ", ".join(
            f'"{src}" AS "{name}"' for name, src in (view.keys | view.features).items()
        )
        ctes.append(
            f"v{i} AS (SELECT {cols}, event_timestamp AS ts{i} FROM read_parquet('{view.path}'))"
        )
        on = " AND ".join(
            [*(f'e."{k}" = v{i}."{k}"' for k in view.keys), f"e.event_timestamp >= v{i}.ts{i}"]
        )
        joins.append(f"ASOF LEFT JOIN v{i} ON {on}")
        selects.extend(f'v{i}."{f}"' for f in view.features)
    frame = con.execute(
        f"WITH {', '.join(ctes)} SELECT e.*, {', '.join(selects)} FROM e {' '.join(joins)}"
    ).df()
    return len(frame), time.perf_counter() - start


def run_child(args: argparse.Namespace) -> int:
    if args.child == "floor":
        rows, seconds = child_floor(args.entity_path, args.warehouse_dir)
    elif args.child == "file":
        rows, seconds = child_file_store(args.entity_path, args.chunk_rows)
    else:
        rows, seconds = child_feast(args.entity_path, args.chunk_rows)
    print(json.dumps({"rows": rows, "seconds": seconds, "peak_mb": own_peak_mb()}))
    return 0


def own_peak_mb() -> float | None:
    """This process's own peak RSS (VmHWM of its address space). Not `wait4`'s ru_maxrss: on
    Linux a child's counts the parent's RSS at the fork (exec carries the old high-water mark
    over), so every path looked as large as the driver holding the entity rows."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def measure(method: str, env: dict[str, str], args: argparse.Namespace, entity_path: Path):
    """Run one path in a child process; its time and peak memory from inside."""
    command = [
        sys.executable,
        __file__,
        "--child",
        method,
        "--entity-path",
        str(entity_path),
        "--warehouse-dir",
        str(args.data_dir / "warehouse"),
        "--chunk-rows",
        str(args.chunk_rows),
    ]
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(command, env=env, stdout=stdout, stderr=stderr)
        _pid, status, usage = os.wait4(proc.pid, 0)
        stdout.seek(0)
        stderr.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            tail = stderr.read().decode(errors="replace").strip().splitlines()[-3:]
            raise RuntimeError(f"{method} failed: {' / '.join(tail)}")
        figures = json.loads(stdout.read().decode().strip().splitlines()[-1])
    peak = figures.get("peak_mb") or usage.ru_maxrss / 1024  # no /proc: an upper bound
    return figures["rows"], figures["seconds"], peak


# --- run ----------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> tuple[list[Result], list[str]]:
    notes: list[str] = []
    prepare_local(args.data_dir, args.preset, args.seed)
    entity_path = args.data_dir / "bench_entity_rows.parquet"
    entity_rows = write_entity_rows(args.data_dir, entity_path)
    tag = secrets.token_hex(4)
    database, project = f"smap_bench_ts_{tag}", f"benchts{tag}"
    results = []
    for method in args.methods:
        path, rows_in = entity_path, entity_rows
        if method == "file" and args.file_rows and args.file_rows < entity_rows:
            path, rows_in = args.data_dir / "bench_entity_rows_file.parquet", args.file_rows
            first_rows(entity_path, path, rows_in)
            notes.append(
                f"file: the first {rows_in:,} of {entity_rows:,} entity rows in time order "
                "(--file-rows): its seconds are for those rows only"
            )
        if method == "postgres":
            log.print("copying the feature tables into PostgreSQL ...")
            prepare_postgres(args.data_dir, database, project)
            env = services_env(args.data_dir / "services", database, project)
        elif method in ("file", "duckdb_window", "duckdb"):
            env = local_env(args.data_dir, method)
        else:
            env = local_env(args.data_dir)
        log.print(f"measuring {method} ...")
        try:
            rows, seconds, peak = measure(method, env, args, path)
        except RuntimeError as exc:
            notes.append(str(exc))
            continue
        finally:
            if method == "postgres":
                drop_database(database, project)
                drop_database(f"{database}_mlflow", project)
        results.append(Result(method, rows, rows_in, seconds, peak))
        log.print(f"{method}: {rows:,} of {rows_in:,} rows in {seconds:.1f} s, peak {peak:,.0f} MB")
    floor = next((r for r in results if r.method == "floor"), None)
    for r in results:
        if floor and r.entity_rows == floor.entity_rows:
            r.ratio_vs_floor = round(r.seconds / floor.seconds, 2)
        if r.rows != r.entity_rows:
            notes.append(f"{r.method}: {r.entity_rows - r.rows:,} entity rows lost in the join")
    return results, notes


def render(results: list[Result], notes: list[str], args: argparse.Namespace) -> None:
    table = RichTable(title=f"engagement training set, preset {args.preset}")
    for col in ("path", "rows", "entity rows", "seconds", "rows/s", "peak MB", "× floor"):
        table.add_column(col, justify="left" if col == "path" else "right")
    for r in results:
        table.add_row(
            r.method,
            f"{r.rows:,}",
            f"{r.entity_rows:,}",
            f"{r.seconds:.1f}",
            f"{r.rows_per_second:,.0f}",
            f"{r.peak_mb:,.0f}",
            "-" if r.ratio_vs_floor is None else f"{r.ratio_vs_floor:.2f}",
        )
    out.print(table)
    for note in notes:
        out.print(f"note: {note}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default", choices=("quick", "small", "default"))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--methods", default=",".join(METHODS), help="comma separated")
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument(
        "--file-rows",
        type=int,
        help="give the file store only the first N entity rows in time order (it takes hours "
        "and ~8 GB on the full default set)",
    )
    parser.add_argument(
        "--data-dir", type=Path, help="where the simulated tables live (reused if present)"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--child", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--entity-path", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--warehouse-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.methods = [m for m in args.methods.split(",") if m]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return run_child(args)
    if args.data_dir is None:
        args.data_dir = Path(".smap") / "bench" / f"training-set-{args.preset}"
    args.data_dir = args.data_dir.resolve()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    results, notes = run(args)
    render(results, notes, args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "benchmark": "training_set",
            "preset": args.preset,
            "chunk_rows": args.chunk_rows,
            "file_rows": args.file_rows,
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "results": [r.as_dict() for r in results],
            "notes": notes,
        }
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
