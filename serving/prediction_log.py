"""The prediction log: every answer appended, in batches, off the request path.

Requests only put rows in a bounded in-memory buffer; a background thread writes them to the
`predictions` table (PostgreSQL on `services`; on `local` one new Parquet part file per flush,
so several workers append at once and nothing is ever rewritten). A slow or dead log store
never blocks a request: past the bound, rows are dropped and counted.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from configs.errors import SmapError
from configs.settings import Settings

TABLE = "predictions"
COLUMNS = (
    "request_id",
    "logged_at",
    "task",
    "entity",
    "features",
    "prediction",
    "model",
    "model_version",
    "run_id",
    "feature_service",
)
log = logging.getLogger(__name__)


def prediction_rows(
    request_id: str,
    task: str,
    entities: Sequence[dict],
    features: Sequence[str],
    columns: Sequence[Sequence],
    predictions: Sequence[float],
    lineage: dict,
) -> list[tuple]:
    """Log rows of one answer, as plain values: the request only pays for the tuples; the
    flushing thread turns entity keys and feature vectors into JSON text (`as_text`)."""
    now = datetime.now(UTC)
    names = tuple(features)
    model, version = lineage["model"], int(lineage["version"])
    run_id, service = lineage["run_id"], lineage["feature_service"]
    return [
        (
            request_id,
            now,
            task,
            entity,
            Vector(names, values),
            pred,
            model,
            version,
            run_id,
            service,
        )  # fmt: skip
        for entity, values, pred in zip(
            entities,
            zip(*columns, strict=True),
            np.asarray(predictions, dtype=float).tolist(),
            strict=True,
        )
    ]


class Vector(tuple):
    """One row's feature values with their names, turned into a JSON object when written."""

    def __new__(cls, names: tuple[str, ...], values: tuple):
        return super().__new__(cls, (names, values))

    def as_dict(self) -> dict:
        names, values = self
        return {n: None if v is None or v != v else v for n, v in zip(names, values, strict=True)}


def _json(value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Vector):
        value = value.as_dict()
    return json.dumps(value, default=str)


def as_text(rows: list[tuple]) -> list[tuple]:
    """Rows as the table stores them: entity keys and feature vectors as JSON text (NaN as
    null), predictions as float."""
    return [(r[0], r[1], r[2], _json(r[3]), _json(r[4]), float(r[5]), *r[6:]) for r in rows]


class ParquetParts:
    """One Parquet part file per flush under `<data_dir>/predictions/`."""

    def __init__(self, folder: Path):
        self.folder = folder

    def __call__(self, rows: list[tuple]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        frame = pd.DataFrame(rows, columns=list(COLUMNS))
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        name = f"part-{stamp}-{os.getpid()}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = self.folder / f".{name}.tmp"
        frame.to_parquet(tmp, index=False)
        tmp.rename(self.folder / name)  # readers never see a half-written part


def read_parquet_log(folder: Path) -> pd.DataFrame:
    parts = sorted(folder.glob("part-*.parquet"))
    if not parts:
        return pd.DataFrame(columns=list(COLUMNS))
    return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)


class PostgresTable:
    """Batched INSERTs into `<schema>.predictions` (created on first use)."""

    def __init__(self, settings: Settings):
        self.pg = settings.postgres
        self.table = f"{self.pg.db_schema}.{TABLE}"
        self._conn = None

    def _connect(self):
        import psycopg2

        conn = psycopg2.connect(self.pg.dsn())
        with conn, conn.cursor() as cur:
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {self.pg.db_schema}")
            cur.execute(
                f"""CREATE TABLE IF NOT EXISTS {self.table} (
                    request_id TEXT NOT NULL, logged_at TIMESTAMPTZ NOT NULL, task TEXT NOT NULL,
                    entity TEXT NOT NULL, features TEXT NOT NULL, prediction DOUBLE PRECISION,
                    model TEXT NOT NULL, model_version INTEGER NOT NULL, run_id TEXT NOT NULL,
                    feature_service TEXT NOT NULL)"""
            )
            cur.execute(f"CREATE INDEX IF NOT EXISTS {TABLE}_logged_at ON {self.table} (logged_at)")
        return conn

    def __call__(self, rows: list[tuple]) -> None:
        from psycopg2.extras import execute_values

        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        try:
            with self._conn, self._conn.cursor() as cur:
                execute_values(
                    cur, f"INSERT INTO {self.table} ({', '.join(COLUMNS)}) VALUES %s", rows
                )
        except Exception:
            self._conn.close()
            raise


class LogUnreadable(SmapError):
    """A part of the prediction log cannot be read."""


def _parquet_rows(settings: Settings, task: str, version: int, after, limit: int):
    """Every row (`limit` is applied by the caller: parts are not in row order)."""
    import pyarrow.parquet as pq

    folder = settings.root / TABLE
    parts = sorted(folder.glob("part-*.parquet"))
    if after is not None:  # a part is named by its flush time: older parts hold older rows
        stamp = pd.Timestamp(after).tz_convert("UTC").strftime("%Y%m%dT%H%M%S%f")
        parts = [p for p in parts if p.name[len("part-") : len("part-") + len(stamp)] >= stamp]
    frames = []
    for part in parts:
        try:
            table = pq.read_table(
                part, filters=[("task", "=", task), ("model_version", "=", version)]
            )
        except Exception as exc:  # noqa: BLE001 - any unreadable part is the same problem
            raise LogUnreadable(f"prediction log: {part.name} cannot be read ({exc})") from None
        frames.append(table.to_pandas())
    if not frames:
        return pd.DataFrame(columns=list(COLUMNS))
    return pd.concat(frames, ignore_index=True)


def _postgres_rows(settings: Settings, task: str, version: int, after, limit: int):
    import psycopg2

    table = f"{settings.postgres.db_schema}.{TABLE}"
    with psycopg2.connect(settings.postgres.dsn()) as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s)", (table,))
        if cur.fetchone()[0] is None:
            return pd.DataFrame(columns=list(COLUMNS))
        cur.execute(
            f"SELECT {', '.join(COLUMNS)} FROM {table} WHERE task = %s AND model_version = %s"
            " AND logged_at > %s ORDER BY logged_at DESC LIMIT %s",
            (task, version, after or datetime(1970, 1, 1), limit),
        )
        rows = cur.fetchall()
    return pd.DataFrame(rows, columns=list(COLUMNS))


@dataclass(frozen=True)
class LogStore:
    """Where the prediction log lives: its writer, and how monitoring reads it back."""

    writer: Callable[[Settings], Callable[[list[tuple]], None]]
    # (settings, task, model version, logged after (None: all), newest rows at most) -> rows
    rows: Callable[[Settings, str, int, object, int], pd.DataFrame]


# warehouse.type -> the prediction log's store
PREDICTION_LOGS: dict[str, LogStore] = {
    "parquet": LogStore(writer=lambda s: ParquetParts(s.root / TABLE), rows=_parquet_rows),
    "postgres": LogStore(writer=PostgresTable, rows=_postgres_rows),
}


class PredictionLog:
    """Bounded buffer + flushing thread. `add` never blocks on I/O."""

    def __init__(
        self,
        write: Callable[[list[tuple]], None],
        max_rows: int = 100_000,
        batch_rows: int = 5_000,
        flush_seconds: float = 1.0,
    ):
        self.write, self.max_rows, self.batch_rows = write, max_rows, batch_rows
        self.flush_seconds = flush_seconds
        self._buffer: deque[tuple] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._flush_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.written = self.dropped = self.failed_flushes = 0

    def add(self, rows: list[tuple]) -> None:
        with self._lock:
            room = self.max_rows - len(self._buffer)
            self._buffer.extend(rows[: max(room, 0)])
            self.dropped += max(len(rows) - max(room, 0), 0)
            full = len(self._buffer) >= self.batch_rows
        if full:
            self._wake.set()

    def pending(self) -> int:
        return len(self._buffer)

    def flush(self) -> int:
        """Write what is buffered, batch by batch; a failed batch goes back to the buffer."""
        done = 0
        with self._flush_lock:
            while True:
                with self._lock:
                    batch = [
                        self._buffer.popleft()
                        for _ in range(min(self.batch_rows, len(self._buffer)))
                    ]
                if not batch:
                    return done
                try:
                    self.write(as_text(batch))
                except Exception as exc:
                    self.failed_flushes += 1
                    log.warning("prediction log: %d rows not written yet: %s", len(batch), exc)
                    with self._lock:  # keep them for the next try, within the bound
                        room = self.max_rows - len(self._buffer)
                        keep = batch[: max(room, 0)]
                        self._buffer.extendleft(reversed(keep))
                        self.dropped += len(batch) - len(keep)
                    return done
                done += len(batch)
                self.written += len(batch)

    def start(self) -> PredictionLog:
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            self.flush()

    def close(self) -> None:
        """Stop the thread and write what is left (shutdown)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()


def open_prediction_log(settings: Settings) -> PredictionLog:
    s = settings.serving
    writer = PREDICTION_LOGS[settings.warehouse.type].writer(settings)
    return PredictionLog(writer, s.log_buffer_rows, s.log_batch_rows, s.log_flush_seconds)
