"""The prediction log: every answer appended, in batches, off the request path.

Requests only put rows in a bounded in-memory buffer; a background thread writes them to the
`predictions` table (PostgreSQL on `services`; on `local` one new Parquet part file per flush,
so several workers append at once and nothing is ever rewritten). A slow or dead log store
never blocks a request: its rows wait in the buffer and are written when the store is back
(one warning when the outage starts, an info line when they are written); past the bound, rows
are dropped and counted (`predictions_dropped` in `/metadata`), and so are rows still waiting
when the service stops.

Reading back (monitoring) on `local`: a part that cannot be read is moved aside into
`predictions/quarantine/` and named in what the read returns, never stopping it; and parts
older than `monitoring.compact_after_minutes` are compacted into one file per hour
(`compact_parts`), so a read opens a file per hour, not one per flush.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

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
    "arm",  # champion | challenger (a model experiment); null in logs written before arms
)
log = logging.getLogger(__name__)


def prediction_rows(
    request_id: str,
    task: str,
    entities: Sequence[dict],
    features: Sequence[str],
    columns: Sequence[Sequence],
    predictions: Sequence[float] | np.ndarray,
    lineage: dict,
) -> list[tuple]:
    """Log rows of one answer, as plain values: the request only pays for the tuples; the
    flushing thread turns entity keys and feature vectors into JSON text (`as_text`)."""
    now = datetime.now(UTC)
    names = tuple(features)
    model, version = lineage["model"], int(lineage["version"])
    run_id, service = lineage["run_id"], lineage["feature_service"]
    arm = lineage.get("arm", "champion")
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
            arm,
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
    """Every row of a Parquet log folder (hour files and the parts they do not cover)."""
    compacted, parts, _covered = _files(folder)
    parts = sorted([*compacted.values(), *parts], key=lambda p: p.name)
    if not parts:
        return pd.DataFrame(columns=list(COLUMNS))
    return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)


class PostgresTable:
    """Batched INSERTs into `<schema>.predictions` (created on first use)."""

    def __init__(self, settings: Settings):
        self.pg = settings.postgres
        self.table = f"{self.pg.db_schema}.{TABLE}"
        self._conn: Any = None  # a psycopg2 connection, opened on first use

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
                    feature_service TEXT NOT NULL, arm TEXT)"""
            )
            cur.execute(f"ALTER TABLE {self.table} ADD COLUMN IF NOT EXISTS arm TEXT")
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


QUARANTINE = "quarantine"  # unreadable parts, moved aside under the log's folder
STAMP = len("20260101T000000000000")  # a part's flush time: %Y%m%dT%H%M%S%f
HOUR = len("20260101T00")
COMPACTED = "hour"  # part-<newest flush it holds>-hour.parquet: one hour's parts in one file
ROW_GROUP_ROWS = 65_536  # rows per row group of a compacted file (small parts are merged)
RETRIES = 5  # reads restarted when a compaction removed a part under the reader


@dataclass(frozen=True)
class LogRead:
    """Rows read back from the log, and the parts moved aside because they cannot be read."""

    rows: pd.DataFrame
    quarantined: tuple[str, ...] = ()


@dataclass(frozen=True)
class Compaction:
    """What one compaction did: the parts merged, the hour files written, the parts moved
    aside because they cannot be read."""

    parts: int = 0
    files: tuple[str, ...] = ()
    quarantined: tuple[str, ...] = field(default=())


def _stamp(path: Path) -> str:
    return path.name[len("part-") : len("part-") + STAMP]


def _is_compacted(path: Path) -> bool:
    return path.name.endswith(f"-{COMPACTED}.parquet")


def _files(folder: Path) -> tuple[dict[str, Path], list[Path], list[Path]]:
    """The log's files as a reader takes them: per hour the compacted file that covers the
    most (the newest flush stamp), the parts flushed after what it covers, and the files that
    a compaction has made redundant (older hour files, parts it covers) and not deleted yet."""
    compacted: dict[str, Path] = {}
    others = []
    for path in sorted(folder.glob("part-*.parquet")):
        if _is_compacted(path):
            hour = _stamp(path)[:HOUR]
            if hour in compacted:
                others.append(compacted[hour])  # sorted: the later name covers more
            compacted[hour] = path
        else:
            others.append(path)
    parts, covered = [], []
    for path in others:
        best = compacted.get(_stamp(path)[:HOUR])
        if best is not None and (_is_compacted(path) or _stamp(path) <= _stamp(best)):
            covered.append(path)
        else:
            parts.append(path)
    return compacted, parts, covered


def quarantine(path: Path) -> str:
    """Move an unreadable part out of the reader's way (kept, for a look); returns its name."""
    aside = path.parent / QUARANTINE
    aside.mkdir(exist_ok=True)
    target = aside / path.name
    if target.exists():  # a part of the same name moved aside before
        target = aside / f"{path.stem}-{uuid.uuid4().hex[:8]}{path.suffix}"
    os.replace(path, target)
    log.warning("prediction log: %s cannot be read; moved to %s/", path.name, QUARANTINE)
    return path.name


def _parquet_rows(settings: Settings, task: str, version: int, after, limit: int) -> LogRead:
    """Every row (`limit` is applied by the caller: parts are not in row order). A part that
    cannot be read is moved aside and named; a part a compaction removed meanwhile restarts
    the read (its rows are then in the hour's compacted file)."""
    import pyarrow.parquet as pq

    folder = settings.root / TABLE
    quarantined: list[str] = []
    for _attempt in range(RETRIES):
        compacted, parts, _covered = _files(folder)
        files = sorted([*compacted.values(), *parts], key=lambda p: p.name)
        if after is not None:  # a file is named by its newest flush: older files, older rows
            stamp = pd.Timestamp(after).tz_convert("UTC").strftime("%Y%m%dT%H%M%S%f")
            files = [p for p in files if _stamp(p) >= stamp]
        frames, vanished = [], False
        for part in files:
            try:
                table = pq.read_table(
                    part, filters=[("task", "=", task), ("model_version", "=", version)]
                )
            except FileNotFoundError:
                vanished = True  # compacted under this reader: list the files again
                break
            except Exception:  # noqa: BLE001 - any unreadable part is the same problem
                quarantined.append(quarantine(part))
                continue
            frames.append(table.to_pandas())
        if not vanished:
            break
        time.sleep(0.05)
    else:
        raise LogUnreadable(
            f"prediction log: its files kept changing under {RETRIES} reads (a compaction?)"
        )
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(COLUMNS))
    return LogRead(rows, tuple(quarantined))


def _log_schema():
    import pyarrow as pa

    return pa.schema(
        [
            ("request_id", pa.string()),
            ("logged_at", pa.timestamp("ns", tz="UTC")),
            ("task", pa.string()),
            ("entity", pa.string()),
            ("features", pa.string()),
            ("prediction", pa.float64()),
            ("model", pa.string()),
            ("model_version", pa.int64()),
            ("run_id", pa.string()),
            ("feature_service", pa.string()),
            ("arm", pa.string()),
        ]
    )


def _merge(previous: list[Path], sources: list[Path], target: Path, quarantined: list[str]):
    """Stream the hour's `previous` compacted file and its `sources` into one Parquet file at
    `target` (row groups of ROW_GROUP_ROWS: small parts are merged); a source that cannot be
    read is moved aside, whole. Returns the rows written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pending: list[pa.Table]  # read, not yet written as a row group
    schema, pending, written = _log_schema(), [], 0

    def shaped(batch) -> pa.Table:
        table = pa.Table.from_batches([batch])
        if "arm" not in table.column_names:  # a part written before arms were logged
            table = table.append_column("arm", pa.nulls(table.num_rows, pa.string()))
        return table.select(schema.names).cast(schema)

    with pq.ParquetWriter(target, schema) as writer:

        def flush() -> None:
            nonlocal written
            if pending:
                table = pa.concat_tables(pending)
                writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
                written += table.num_rows
                pending.clear()

        for path in previous:  # written by a compaction: streamed, never held whole
            for batch in pq.ParquetFile(path).iter_batches(batch_size=ROW_GROUP_ROWS):
                writer.write_table(shaped(batch), row_group_size=ROW_GROUP_ROWS)
                written += batch.num_rows
        for path in sources:  # one flush each: read whole, so a bad one is left out whole
            try:
                tables = [shaped(b) for b in pq.ParquetFile(path).iter_batches()]
            except Exception:  # noqa: BLE001 - unreadable, or not the log's columns
                quarantined.append(quarantine(path))
                continue
            pending.extend(tables)
            if sum(t.num_rows for t in pending) >= ROW_GROUP_ROWS:
                flush()
        flush()
    return written


def compact_parts(settings: Settings, warehouse) -> Compaction:
    """Merge the parts flushed more than `monitoring.compact_after_minutes` ago into one file
    per hour (with the hour's earlier compacted file), under the warehouse's named lock
    `predictions.compact` (another process compacting: nothing to do here). The new file is
    renamed into place before the parts it covers are deleted, and a reader skips what a
    newer hour file covers, so a reader sees every row once at any moment."""
    folder = settings.root / TABLE
    if not folder.is_dir():
        return Compaction()
    age = timedelta(minutes=settings.monitoring.compact_after_minutes)
    cutoff = (datetime.now(UTC) - age).strftime("%Y%m%dT%H%M%S%f")
    with warehouse.exclusive("predictions.compact") as held:
        if not held:
            return Compaction()
        for staged in folder.glob(f".part-*-{COMPACTED}.parquet.tmp"):
            staged.unlink(missing_ok=True)  # a compaction killed mid-write (we hold the lock)
        compacted, parts, covered = _files(folder)
        due: dict[str, list[Path]] = {}
        for path in parts:
            if _stamp(path) < cutoff:
                due.setdefault(_stamp(path)[:HOUR], []).append(path)
        quarantined: list[str]
        merged, files, quarantined = 0, [], []
        for hour, sources in sorted(due.items()):
            newest = max(_stamp(p) for p in sources)
            target = folder / f"part-{newest}-{COMPACTED}.parquet"
            staged = folder / f".{target.name}.tmp"  # not a part: readers never see it
            previous = [compacted[hour]] if hour in compacted else []
            try:
                _merge(previous, sorted(sources), staged, quarantined)
            except Exception as exc:  # noqa: BLE001 - the hour stays as it was, and is read
                staged.unlink(missing_ok=True)
                log.warning("prediction log: hour %s not compacted: %s", hour, exc)
                continue
            os.replace(staged, target)
            for path in [*previous, *sources]:
                path.unlink(missing_ok=True)
            merged += len(sources)
            files.append(target.name)
        for path in covered:  # left by a compaction that stopped between rename and delete
            path.unlink(missing_ok=True)
    if merged:
        log.info("prediction log: %d parts compacted into %d hour files", merged, len(files))
    return Compaction(merged, tuple(files), tuple(quarantined))


def _no_compaction(settings: Settings, warehouse) -> Compaction:
    """A table compacts nothing: its rows are read by index."""
    return Compaction()


def _postgres_rows(settings: Settings, task: str, version: int, after, limit: int) -> LogRead:
    import psycopg2

    table = f"{settings.postgres.db_schema}.{TABLE}"
    with psycopg2.connect(settings.postgres.dsn()) as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s)", (table,))
        if cur.fetchone()[0] is None:
            return LogRead(pd.DataFrame(columns=list(COLUMNS)))
        schema, name = table.split(".", 1)
        cur.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_schema = %s"
            " AND table_name = %s AND column_name = 'arm'",
            (schema, name),
        )
        columns = COLUMNS if cur.fetchone() else (*COLUMNS[:-1], "NULL AS arm")  # older table
        cur.execute(
            f"SELECT {', '.join(columns)} FROM {table} WHERE task = %s AND model_version = %s"
            " AND logged_at > %s ORDER BY logged_at DESC LIMIT %s",
            (task, version, after or datetime(1970, 1, 1), limit),
        )
        rows = cur.fetchall()
    return LogRead(pd.DataFrame(rows, columns=list(COLUMNS)))


@dataclass(frozen=True)
class LogStore:
    """Where the prediction log lives: its writer, and how monitoring reads it back."""

    writer: Callable[[Settings], Callable[[list[tuple]], None]]
    # (settings, task, model version, logged after (None: all), newest rows at most) -> rows
    # and the parts moved aside because they cannot be read
    rows: Callable[[Settings, str, int, object, int], LogRead]
    # (settings, warehouse: its named lock) -> what was compacted, before a check reads
    compact: Callable[[Settings, object], Compaction] = _no_compaction


# warehouse.type -> the prediction log's store
PREDICTION_LOGS: dict[str, LogStore] = {
    "parquet": LogStore(
        writer=lambda s: ParquetParts(s.root / TABLE), rows=_parquet_rows, compact=compact_parts
    ),
    "postgres": LogStore(writer=PostgresTable, rows=_postgres_rows),
    # the cluster's service replicas on many hosts share one log on the profile's PostgreSQL
    "lake": LogStore(writer=PostgresTable, rows=_postgres_rows),
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
        self._outage = False  # a flush failed and none succeeded since

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

    def flush(self, wait: float | None = None) -> int:
        """Write what is buffered, batch by batch; a failed batch goes back to the buffer.
        `wait`: how long to wait for a flush already under way (None: as long as it takes);
        nothing is written when it does not end in time."""
        done = 0
        if not self._flush_lock.acquire(timeout=-1 if wait is None else wait):
            return done
        try:
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
                    self._failed(batch, exc)
                    return done
                done += len(batch)
                self.written += len(batch)
                if self._outage:
                    log.info("prediction log: written again, the rows held included")
                    self._outage = False
        finally:
            self._flush_lock.release()

    def _failed(self, batch: list[tuple], exc: Exception) -> None:
        """Keep a batch that was not written for the next try, within the bound; one warning
        per outage (a flush fails every `log_flush_seconds` while the store is down)."""
        if not self._outage:
            self._outage = True
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            log.warning(
                "prediction log: not written (%s): rows wait in memory (up to %d) and are "
                "written when it is back",
                first,
                self.max_rows,
            )
        self.failed_flushes += 1
        with self._lock:
            room = self.max_rows - len(self._buffer)
            keep = batch[: max(room, 0)]
            self._buffer.extendleft(reversed(keep))
            self.dropped += len(batch) - len(keep)

    def start(self) -> PredictionLog:
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            self.flush()

    def close(self, wait: float = 10.0) -> None:
        """Stop the thread and write what is left (shutdown), waiting at most about `wait`
        seconds on a store that hangs; rows still not written are counted as dropped."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=wait)
        self.flush(wait=0 if self._thread is not None and self._thread.is_alive() else None)
        with self._lock:
            lost = len(self._buffer)
            self._buffer.clear()
            self.dropped += lost
        if lost:
            log.error("prediction log: %d rows lost at shutdown (the log store is down)", lost)


def open_prediction_log(settings: Settings) -> PredictionLog:
    s = settings.serving
    writer = PREDICTION_LOGS[settings.warehouse.type].writer(settings)
    return PredictionLog(writer, s.log_buffer_rows, s.log_batch_rows, s.log_flush_seconds)
