"""Seconds of the ETL (raw tables -> every analytics table, written back) per engine, on one
simulated platform: DuckDB over Parquet (local), in-database PostgreSQL (services), Spark over
a lake (cluster, `--master`). Loading the raw tables is not timed; Spark's time includes
starting its session. (The pandas ETL these replaced is `--engines pandas` at commit f2232a5.)

    .venv/bin/python benchmarks/etl_engines.py --preset default --engines duckdb,postgres,spark
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd

from configs.settings import Settings, load_settings
from ingestion.schema import ALL_TABLES, RAW_TABLES
from ingestion.simulator import simulate
from ingestion.warehouse import open_warehouse


def microsecond_raw(preset: str, seed: int) -> dict[str, pd.DataFrame]:
    """The simulated platform with timestamps to the microsecond (what the lake stores)."""
    tables = simulate(preset, seed=seed)
    for name, frame in tables.items():
        for column, kind in ALL_TABLES[name].columns.items():
            if kind == "ts":
                frame[column] = frame[column].dt.floor("us")
    return tables


def load(settings: Settings, raw: dict[str, pd.DataFrame]):
    warehouse = open_warehouse(settings)
    for name, frame in raw.items():
        warehouse.write(ALL_TABLES[name], frame)
    return warehouse


def run_duckdb(root: Path, raw: dict[str, pd.DataFrame], master: str) -> float:
    from ingestion.etl import run_etl

    settings = load_settings("local", env={"SMAP_DATA_DIR": str(root / "local")})
    warehouse = load(settings, raw)
    start = time.perf_counter()
    run_etl(settings, warehouse)
    return time.perf_counter() - start


def run_postgres(root: Path, raw: dict[str, pd.DataFrame], master: str) -> float:
    import psycopg2

    from ingestion.etl import run_etl

    database = f"smap_bench_{uuid.uuid4().hex[:8]}"
    env = {"SMAP_DATA_DIR": str(root / "services"), "SMAP_DATABASE": database}
    settings = load_settings("services", env=env)
    try:
        warehouse = load(settings, raw)
        start = time.perf_counter()
        run_etl(settings, warehouse)
        return time.perf_counter() - start
    finally:
        admin = psycopg2.connect(settings.postgres.dsn("postgres"))
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.close()


def run_spark(root: Path, raw: dict[str, pd.DataFrame], master: str) -> float:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ingestion.etl_engines import run_on_spark

    env = {"SMAP_DATA_DIR": str(root / "cluster"), "SMAP_SPARK__MASTER": master}
    settings = load_settings("cluster", env=env)
    lake = Path(urlparse(settings.lake_uri).path)
    for name, frame in raw.items():  # raw tables are unpartitioned in the lake
        if name in RAW_TABLES:
            table = RAW_TABLES[name]
            (lake / name).mkdir(parents=True)
            arrow = pa.Table.from_pandas(
                table.conform(frame), schema=table.arrow_schema(), preserve_index=False
            )
            pq.write_table(arrow, lake / name / "part-0.parquet", coerce_timestamps="us")
    start = time.perf_counter()
    run_on_spark(settings, None, None, lambda _name: None)
    return time.perf_counter() - start


ENGINES: dict[str, Callable[[Path, dict[str, pd.DataFrame], str], float]] = {
    "duckdb": run_duckdb,
    "postgres": run_postgres,
    "spark": run_spark,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quick", choices=["quick", "small", "default"])
    parser.add_argument("--engines", default="duckdb,postgres,spark")
    parser.add_argument("--master", default="local[2]", help="Spark master")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    raw = microsecond_raw(args.preset, args.seed)
    print(f"preset {args.preset}: {len(raw['content_posts']):,} posts, load {os.getloadavg()}")
    for engine in args.engines.split(","):
        with tempfile.TemporaryDirectory(prefix=f"smap-etl-{engine}-") as folder:
            seconds = ENGINES[engine](Path(folder), raw, args.master)
        print(f"{engine:>9} {args.preset:>8} {seconds:8.1f} s   load {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
