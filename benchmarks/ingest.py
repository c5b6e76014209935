"""Ingestion throughput: simulator, raw load, ETL and Feast materialization vs a Redis floor.

What is measured (one run, one table):

- `simulate`: rows of every generated table (raw + truth) per second of `simulate()`.
- `raw load` (per profile): the same tables written to the profile's warehouse (Parquet files
  or PostgreSQL COPY), as `smap simulate` does.
- `etl` (per profile): `run_etl` on that warehouse; rows = analytics rows written.
- `materialize` (per profile): Feast's `FeatureStore.materialize` over the whole history
  (local: file offline store + SQLite online; services: PostgreSQL offline + Redis online);
  rows = source rows of the feature tables, as `smap materialize` counts them.
- `redis floor`: what the services materialization is compared with. A bare pipelined
  redis-py write (HSET per entity key, `transaction=False`, `--pipeline` commands per round
  trip) of the same online state: the latest row per entity of each feature table, with the
  same number of hash fields Feast writes (one per feature plus the timestamp field). Payloads
  are built before the clock starts, so the floor is Redis I/O only.

Why: Feast's materialization reads the whole offline history, keeps the latest row per entity
and writes it online. The floor is the least any tool must spend to reach the same Redis
state, so `ratio vs floor` (Feast rows/s / floor rows/s, both counting the keys written, i.e.
floor seconds / Feast seconds) says how much of the materialization time is overhead on top
of the unavoidable writes. It is a benchmark, not a test: nothing here asserts on timings.

Isolation: every profile writes under a temporary SMAP_DATA_DIR; the services profile gets a
fresh PostgreSQL database and Feast project, both removed at the end with their Redis keys.

    uv run python benchmarks/ingest.py --preset small --json .smap/bench/ingest.json

With `--import-mb N` it measures `smap ingest csv` instead (and nothing else): a generated post
export of about N MB (`write_export`: our column names, hashtags in the captions, thousands of
accounts, ~0.5% bad rows and ~0.2% repeated rows) imported by the real CLI in a child process,
whose wall time (interpreter start included), CPU time and peak RSS (`os.wait4`) are recorded
(CPU time is the steadier figure on a shared machine; PostgreSQL's own work is not in it):

- `csv new`: the export into an empty warehouse;
- `csv again`: the same export again (every row a duplicate, nothing written);
- `csv +20k`: a 2 MB (~20,000-row) export of new posts into the warehouse now holding the big
  one (what adding a little to a large warehouse costs).

    uv run python benchmarks/ingest.py --import-mb 50 --json .smap/bench/import.json
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table as RichTable

from configs.settings import PROFILES, Settings, load_settings, telemetry_env

os.environ.update(telemetry_env())  # before MLflow, BentoML or Feast are imported

out = Console()
log = Console(stderr=True)


@dataclass
class Result:
    stage: str
    profile: str
    rows: int
    seconds: float
    ratio_vs_floor: float | None = None
    keys_written: int | None = None  # online keys, for materialize and the floor
    peak_rss_mb: float | None = None  # of the child process, for the csv import stages
    cpu_seconds: float | None = None  # the child's user + system time (less noisy than wall)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")

    def as_dict(self) -> dict:
        return {**asdict(self), "rows_per_second": round(self.rows_per_second, 1)}


@dataclass(frozen=True)
class FeatureTable:
    """One feature view's source table and what Feast writes online for it."""

    view: str
    table: str
    key: str
    timestamp: str
    features: tuple[str, ...]


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Hide Feast's progress bars and prints so that stdout carries only the table."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


# --- stages -------------------------------------------------------------------------------


def run_simulator(preset: str, seed: int, start_date: str) -> tuple[dict, Result]:
    from ingestion.simulator import simulate

    tables, seconds = timed(lambda: simulate(preset, seed, start_date))
    rows = sum(len(frame) for frame in tables.values())
    return tables, Result("simulate", "-", rows, seconds)


def run_raw_load(warehouse, tables: dict[str, pd.DataFrame], profile: str) -> Result:
    from ingestion.schema import ALL_TABLES

    def write_all() -> int:
        return sum(warehouse.write(ALL_TABLES[name], frame) for name, frame in tables.items())

    rows, seconds = timed(write_all)
    return Result("raw load", profile, rows, seconds)


def run_etl_stage(settings: Settings, warehouse) -> Result:
    from ingestion.etl import run_etl

    written, seconds = timed(lambda: run_etl(settings, warehouse))
    return Result("etl", settings.profile, sum(written.values()), seconds)


def run_materialize(
    settings: Settings, features: list[FeatureTable], frames: dict[str, pd.DataFrame]
) -> Result:
    """Feast's own materialize call over the whole history (store opened beforehand)."""
    from feature_repo.store import open_store

    start, end = history_window(features, frames)
    with quiet():
        store = open_store(settings)
        _, seconds = timed(lambda: store.materialize(start_date=start, end_date=end))
    rows = sum(len(frames[f.table]) for f in features)
    keys = sum(frames[f.table][f.key].nunique() for f in features)
    return Result("materialize", settings.profile, rows, seconds, keys_written=keys)


def run_profile(
    settings: Settings, tables: dict[str, pd.DataFrame], frames: dict[str, pd.DataFrame]
) -> tuple[list[Result], list[FeatureTable]]:
    """Raw load, ETL, Feast apply (untimed) and materialize on one profile.

    `frames` is filled with the feature tables on the first profile (all profiles compute
    the same analytics), read after the ETL and outside every timed section."""
    from feature_repo.store import apply
    from ingestion.warehouse import open_warehouse

    warehouse = open_warehouse(settings)
    log.print(f"{settings.profile}: raw load + etl")
    results = [
        run_raw_load(warehouse, tables, settings.profile),
        run_etl_stage(settings, warehouse),
    ]
    features = feature_tables(settings)
    if not frames:
        frames.update(read_feature_frames(warehouse, features))
    log.print(f"{settings.profile}: feast apply + materialize")
    with quiet():
        apply(settings)
    results.append(run_materialize(settings, features, frames))
    return results, features


# --- feature tables -----------------------------------------------------------------------


def feature_tables(settings: Settings) -> list[FeatureTable]:
    """The feature views smap defines, with their source table, join key and feature names."""
    from feature_repo.data_sources import FEATURE_TABLES, build_sources
    from feature_repo.entities import ENTITIES
    from feature_repo.feature_views import build_feature_views

    join_key = {entity.name: entity.join_key for entity in ENTITIES}
    specs = []
    for view in build_feature_views(build_sources(settings)).values():
        table = view.batch_source.name.removesuffix("_source")
        specs.append(
            FeatureTable(
                view=view.name,
                table=table,
                key=join_key[view.entities[0]],
                timestamp=FEATURE_TABLES[table],
                features=tuple(f.name for f in view.features),
            )
        )
    return specs


def read_feature_frames(warehouse, features: list[FeatureTable]) -> dict[str, pd.DataFrame]:
    return {
        f.table: warehouse.read(f.table, columns=[f.key, f.timestamp, *f.features])
        for f in features
    }


def history_window(
    features: list[FeatureTable], frames: dict[str, pd.DataFrame]
) -> tuple[datetime, datetime]:
    """From the earliest to just past the latest event (not `now`: data may be in the future)."""
    stamps = [frames[f.table][f.timestamp] for f in features]
    start = min(s.min() for s in stamps).to_pydatetime()
    end = max(s.max() for s in stamps).to_pydatetime() + timedelta(seconds=1)
    return start, end


# --- redis floor --------------------------------------------------------------------------


def floor_payloads(
    features: list[FeatureTable], frames: dict[str, pd.DataFrame], prefix: str
) -> list[tuple[bytes, dict[str, str]]]:
    """(key, mapping) per entity: its latest row, one field per feature plus `_ts:<view>`."""
    payloads = []
    for f in features:
        latest = frames[f.table].sort_values(f.timestamp).drop_duplicates(f.key, keep="last")
        names = [f"{f.view}:{name}" for name in f.features] + [f"_ts:{f.view}"]
        values = latest[[*f.features, f.timestamp]].astype(str).to_numpy().tolist()
        keys = latest[f.key].astype(str).tolist()
        for entity, row in zip(keys, values, strict=True):
            mapping = dict(zip(names, row, strict=True))
            payloads.append((f"{prefix}{f.view}:{entity}".encode(), mapping))
    return payloads


def write_pipelined(client, payloads: list[tuple[bytes, dict]], batch: int) -> None:
    with client.pipeline(transaction=False) as pipe:
        for i, (key, mapping) in enumerate(payloads, start=1):
            pipe.hset(key, mapping=mapping)
            if i % batch == 0:
                pipe.execute()
        pipe.execute()


def delete_matching(client, pattern: bytes) -> int:
    """UNLINK every key matching `pattern`, in chunks; returns how many were removed."""
    removed, chunk = 0, []
    for key in client.scan_iter(match=pattern, count=1000):
        chunk.append(key)
        if len(chunk) == 1000:
            removed += client.unlink(*chunk)
            chunk = []
    if chunk:
        removed += client.unlink(*chunk)
    return removed


def run_floor(
    settings: Settings,
    features: list[FeatureTable],
    frames: dict[str, pd.DataFrame],
    batch: int,
) -> Result:
    client = redis_client(settings)
    prefix = f"smap_bench_floor_{secrets.token_hex(4)}:"
    payloads = floor_payloads(features, frames, prefix)
    log.print(f"services: redis floor, {len(payloads):,} keys, pipeline {batch}")
    try:
        _, seconds = timed(lambda: write_pipelined(client, payloads, batch))
    finally:
        delete_matching(client, prefix.encode() + b"*")
    return Result("redis floor", settings.profile, len(payloads), seconds, 1.0, len(payloads))


def ratio_vs_floor(materialize: Result, floor: Result) -> float:
    """Feast keys/s over floor keys/s for the same online state (= floor s / Feast s)."""
    return floor.seconds / materialize.seconds if materialize.seconds > 0 else float("nan")


# --- services isolation -------------------------------------------------------------------


def redis_client(settings: Settings):
    return settings.redis.client()  # the profile's connect and read timeouts, as Feast's


def services_unreachable(settings: Settings) -> str | None:
    """Why the services profile cannot run, or None when PostgreSQL and Redis both answer."""
    import psycopg2
    import redis

    try:
        psycopg2.connect(settings.postgres.dsn("postgres"), connect_timeout=3).close()
    except psycopg2.OperationalError as exc:
        reason = " ".join(str(exc).split())
        return f"PostgreSQL at {settings.postgres.host}:{settings.postgres.port}: {reason}"
    try:
        redis_client(settings).ping()
    except redis.exceptions.RedisError as exc:
        return f"Redis at {settings.redis.host}:{settings.redis.port}: {exc}"
    return None


def admin_sql(settings: Settings, sql: str) -> None:
    import psycopg2

    conn = psycopg2.connect(settings.postgres.dsn("postgres"), connect_timeout=5)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


@contextlib.contextmanager
def services_sandbox(settings: Settings) -> Iterator[None]:
    """A fresh database for the run; the database and the project's Redis keys go afterwards."""
    database, project = settings.postgres.database, settings.feast.project
    admin_sql(settings, f'CREATE DATABASE "{database}"')
    try:
        yield
    finally:
        admin_sql(settings, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        removed = delete_matching(redis_client(settings), b"*" + project.encode())
        log.print(f"services: dropped database {database}, removed {removed:,} redis keys")


# --- csv import ---------------------------------------------------------------------------

EXPORT_HEADER = "account,timestamp,type,category,text,reach,likes,comments,shares,saves,paid"
_TYPES = np.array(["image", "Photo", "video", "reel", "carousel", "text", "link"])
_CATEGORIES = np.array(["travel", "food", "fitness", "tech", "fashion", "music", "gaming"])
_BAD = np.array(["likes:n/a", "type:hologram", "timestamp:soon", "reach:-5"])


def export_block(rng: np.random.Generator, first_row: int, rows: int, tag: str) -> pd.DataFrame:
    """`rows` posts numbered from `first_row`: ~0.5% with one bad cell, ~0.2% exact repeats."""
    number = np.arange(first_row, first_row + rows)
    accounts = np.minimum(rng.zipf(1.3, rows), 5000)
    seconds = rng.integers(0, 300 * 86400, rows)
    stamps = pd.Timestamp("2025-01-01", tz="UTC") + pd.to_timedelta(np.sort(seconds), unit="s")
    category = _CATEGORIES[rng.integers(0, len(_CATEGORIES), rows)]
    tags = rng.integers(0, 2000, (rows, 2))
    reach = rng.integers(100, 50_000, rows)
    likes = (reach * rng.uniform(0.0, 0.08, rows)).astype(np.int64)
    frame = pd.DataFrame(
        {
            "account": pd.Series(accounts).map("acct_{:04d}".format),
            "timestamp": stamps.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "type": _TYPES[rng.integers(0, len(_TYPES), rows)],
            "category": category,
            "text": [
                f"{tag} {n} on #{c} #t{a} #t{b}"
                for n, c, a, b in zip(number, category, tags[:, 0], tags[:, 1], strict=True)
            ],
            "reach": reach,
            "likes": likes,
            "comments": likes // 20,
            "shares": likes // 30,
            "saves": np.where(rng.random(rows) < 0.3, "", (likes // 10).astype(str)),
            "paid": np.where(rng.random(rows) < 0.05, "yes", "no"),
        }
    ).astype(str)
    bad = np.flatnonzero(rng.random(rows) < 0.005)
    for row, spec in zip(bad, _BAD[rng.integers(0, len(_BAD), len(bad))], strict=True):
        column, value = spec.split(":")
        frame.loc[row, column] = value
    repeats = np.flatnonzero(rng.random(rows) < 0.002)
    return pd.concat([frame, frame.iloc[repeats]]).sort_index(kind="stable")


def write_export(path: Path, megabytes: float, seed: int, tag: str = "bench") -> int:
    """A post export of about `megabytes` MB (10**6 bytes), written block by block; returns
    its data rows. The same seed and size give the same file."""
    rng = np.random.default_rng(seed)
    path.write_text(EXPORT_HEADER + "\n", encoding="utf-8")
    rows, block = 0, 10_000
    while path.stat().st_size < megabytes * 1e6:
        frame = export_block(rng, rows, block, tag)
        frame.to_csv(path, mode="a", header=False, index=False)
        rows += len(frame)
    return rows


def cli_import(export: Path, rows: int, settings: Settings, stage: str) -> Result:
    """`smap ingest csv` in a child process: wall time and the child's own peak RSS."""
    env = {
        **os.environ,
        "SMAP_DATA_DIR": str(settings.data_dir),
        "SMAP_DATABASE": settings.postgres.database,
    }
    command = [sys.executable, "-m", "pipelines", "ingest", "csv", str(export)]
    command += ["--profile", settings.profile]
    log.print(f"{settings.profile}: {stage} ({export.stat().st_size / 1e6:.1f} MB)")
    with tempfile.TemporaryFile() as errors:
        start = time.perf_counter()
        child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(child.pid, 0)  # this child's rusage, not all children's
        seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode:
            errors.seek(0)
            tail = errors.read().decode(errors="replace").strip()[-400:]
            raise RuntimeError(f"{stage} on {settings.profile} failed: {tail}")
    peak, cpu = usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime  # ru_maxrss: kB
    return Result(stage, settings.profile, rows, seconds, peak_rss_mb=peak, cpu_seconds=cpu)


def baseline_rss_mb() -> float:
    """Peak RSS of a child that imports what the import needs and does nothing else."""
    modules = "import pandas, pyarrow.parquet, psycopg2, pipelines.cli, ingestion.csv_import"
    child = subprocess.Popen([sys.executable, "-c", modules])
    _, _, usage = os.wait4(child.pid, 0)
    child.returncode = 0
    return usage.ru_maxrss / 1024


def run_imports(args: argparse.Namespace, root: Path) -> tuple[list[Result], list[str]]:
    """The three csv import stages on each profile, from the same generated files."""
    big, small = root / "export.csv", root / "more.csv"
    log.print(f"generate a {args.import_mb:g} MB export (seed {args.seed})")
    big_rows = write_export(big, args.import_mb, args.seed)
    small_rows = write_export(small, 1, args.seed + 1, tag="more")
    stages = [("csv new", big, big_rows), ("csv again", big, big_rows)]
    stages.append(("csv +20k", small, small_rows))
    tag, results = secrets.token_hex(4), []
    notes = [
        f"{big.name}: {big.stat().st_size / 1e6:.1f} MB, {big_rows:,} rows",
        f"a child that only imports the modules peaks at {baseline_rss_mb():,.0f} MB RSS",
    ]
    for profile in args.profiles:
        settings = profile_settings(profile, root, tag)
        if profile != "services":
            results += [cli_import(path, rows, settings, name) for name, path, rows in stages]
            continue
        reason = services_unreachable(settings)
        if reason:
            notes.append(f"services rows skipped: {reason}")
            continue
        with services_sandbox(settings):
            results += [cli_import(path, rows, settings, name) for name, path, rows in stages]
    return results, notes


# --- run ----------------------------------------------------------------------------------


def profile_settings(profile: str, root: Path, tag: str) -> Settings:
    env = {
        **os.environ,
        "SMAP_DATA_DIR": str(root / profile),
        "SMAP_DATABASE": f"smap_bench_{tag}",
        "SMAP_FEAST__PROJECT": f"bench{tag}",
    }
    return load_settings(profile, env=env)


def run(args: argparse.Namespace, root: Path) -> tuple[list[Result], list[str]]:
    tag = secrets.token_hex(4)
    notes: list[str] = []
    start_date = load_settings("local", env={**os.environ}).simulator.start_date
    log.print(f"simulate preset={args.preset} seed={args.seed}")
    tables, sim = run_simulator(args.preset, args.seed, start_date)
    results = [sim]
    frames: dict[str, pd.DataFrame] = {}
    for profile in args.profiles:
        settings = profile_settings(profile, root, tag)
        if profile != "services":
            results += run_profile(settings, tables, frames)[0]
            continue
        reason = services_unreachable(settings)
        if reason:
            notes.append(f"services rows skipped: {reason}")
            continue
        with services_sandbox(settings):
            rows, features = run_profile(settings, tables, frames)
            floor = run_floor(settings, features, frames, args.pipeline)
        rows[-1].ratio_vs_floor = ratio_vs_floor(rows[-1], floor)
        results += [*rows, floor]
    return results, notes


def render(results: list[Result], notes: list[str], args: argparse.Namespace) -> None:
    what = f"csv {args.import_mb:g} MB" if args.import_mb else f"preset={args.preset}"
    table = RichTable(title=f"smap ingest benchmark ({what}, seed={args.seed})")
    for name in ("stage", "profile"):
        table.add_column(name)
    imports = any(r.peak_rss_mb is not None for r in results)
    last = ("cpu s", "peak RSS MB") if imports else ("ratio vs floor",)
    for name in ("rows", "seconds", "rows/s", *last):
        table.add_column(name, justify="right")
    for r in results:
        extra = ["" if r.ratio_vs_floor is None else f"{r.ratio_vs_floor:.3f}"]
        if imports:
            extra = [f"{r.cpu_seconds:.1f}", f"{r.peak_rss_mb:,.0f}"]
        rate = f"{r.rows_per_second:,.0f}"
        table.add_row(r.stage, r.profile, f"{r.rows:,}", f"{r.seconds:.2f}", rate, *extra)
    out.print(table)
    for r in results:
        if r.stage == "materialize" and r.ratio_vs_floor:
            out.print(
                f"ratio vs floor = floor s / materialize s for the same {r.keys_written:,} "
                f"online keys: feast {r.profile} took {1 / r.ratio_vs_floor:.1f}x the floor's time"
            )
    for note in notes:
        out.print(f"[yellow]note:[/] {note}")


def metadata(args: argparse.Namespace, notes: list[str]) -> dict:
    import feast

    return {
        "preset": args.preset,
        "seed": args.seed,
        "profiles": args.profiles,
        "pipeline": args.pipeline,
        "import_mb": args.import_mb,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "feast": feast.__version__,
        "pandas": pd.__version__,
        "platform": platform.platform(),
        "notes": notes,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small", choices=("quick", "small", "default"))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--profiles", default=",".join(PROFILES), help="comma separated")
    parser.add_argument("--pipeline", type=int, default=1000, help="commands per floor round trip")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument(
        "--import-mb", type=float, help="measure `smap ingest csv` on a generated export this big"
    )
    args = parser.parse_args(argv)
    args.profiles = [p.strip() for p in args.profiles.split(",") if p.strip()]
    unknown = sorted(set(args.profiles) - set(PROFILES))
    if unknown or not args.profiles:
        parser.error(f"--profiles: choose from {', '.join(PROFILES)} (got {args.profiles})")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="smap-bench-") as tmp:
        measure = run_imports if args.import_mb else run
        results, notes = measure(args, Path(tmp))
    render(results, notes, args)
    if args.json:
        report = {"metadata": metadata(args, notes), "results": [r.as_dict() for r in results]}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        log.print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
