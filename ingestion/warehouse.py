"""Where tables live: Parquet files (local profile) or a PostgreSQL schema (services profile).

Every write is all-or-nothing: Parquet is written to a temporary file and renamed over the
old one; PostgreSQL writes run in one transaction (DDL, DELETE and COPY together).
`append_many` adds rows to several tables as one change without rewriting them where the
backend allows it (PostgreSQL: staging tables and INSERT ... ON CONFLICT DO NOTHING); a
Parquet table is one file, which cannot grow in place, so it is rewritten, streamed batch by
batch from the old file and the new rows, so memory holds one batch. Writers
take the warehouse's write lock (a file lock, a PostgreSQL advisory lock), so a writer that
reads, changes and writes back tables (an import, the ETL) never overwrites another's rows.
A named lock (`exclusive`) is the same kind of lock taken without waiting: one process at a
time does a job (a retrain), the others learn that it is being done.
"""

from __future__ import annotations

import fcntl
import functools
import io
import itertools
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Protocol

import pandas as pd

from configs.settings import PostgresSettings, Settings
from ingestion.errors import WarehouseError
from ingestion.lake import Between, LakeFolders, write_locked
from ingestion.schema import ALL_TABLES, TYPES, Table

_held = threading.local()  # write locks this thread holds: lock name -> nesting depth


@contextmanager
def _write_lock(
    name: str, try_lock: Callable[[], bool], wait: Callable[[], None], release: Callable[[], None]
) -> Iterator[None]:
    """Hold the inter-process lock `name`; nested use in the same thread is free, so a writer
    holding it can call the warehouse's own (locking) write methods."""
    depths = _held.__dict__.setdefault("depths", {})
    if depths.get(name):
        depths[name] += 1
        try:
            yield
        finally:
            depths[name] -= 1
        return
    if not try_lock():
        # straight to stderr, whatever logging a library set up: the user sees why it waits
        print(f"waiting for another smap writer of {name} to finish", file=sys.stderr, flush=True)
        wait()
    depths[name] = 1
    try:
        yield
    finally:
        depths[name] = 0
        release()


def _server_named(method):
    """PostgreSQL failing in the middle of a call (gone, hung past the read timeout):
    one line naming the server instead of the driver's traceback."""

    @functools.wraps(method)
    def named(self, *args, **kwargs):
        import psycopg2

        try:
            return method(self, *args, **kwargs)
        except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
            raise WarehouseError(
                f"PostgreSQL at {self.pg.host}:{self.pg.port} failed: {_first_line(exc)}"
            ) from None

    return named


class Warehouse(Protocol):
    def write(self, table: Table, df: pd.DataFrame) -> int: ...
    def write_many(self, tables: Sequence[tuple[Table, pd.DataFrame]]) -> dict[str, int]: ...
    def append_many(
        self, tables: Sequence[tuple[Table, Iterable[pd.DataFrame]]]
    ) -> dict[str, int]: ...
    def replace_partitions(self, table: Table, df: pd.DataFrame) -> int: ...
    def append(self, table: Table, df: pd.DataFrame) -> int: ...
    def read(
        self, name: str, columns: list[str] | None = None, between: Between | None = None
    ) -> pd.DataFrame: ...
    def exists(self, name: str) -> bool: ...
    def writing(self) -> AbstractContextManager[None]: ...
    def exclusive(self, name: str) -> AbstractContextManager[bool]: ...
    def version(self, names: Sequence[str]) -> str: ...


_LOCK_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def _lock_name(name: str) -> str:
    """A lock's name as part of a file name: letters, digits, `_`, `.` and `-` only."""
    if not _LOCK_NAME.match(name):
        raise ValueError(f"lock name {name!r}: use letters, digits, _, . and - only")
    return name


# what a writer killed mid-write leaves in the folder: its staged copies and swap backups
_LEFTOVER = re.compile(r"^(?P<table>.+)\.parquet\.(?P<kind>tmp|bak)-(?P<pid>\d+)$")


def process_alive(pid: int) -> bool:
    """Whether a process of this host still runs (a lock holder, a writer, a training worker)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


class ParquetWarehouse:
    """One Parquet file per table under `root`."""

    def __init__(self, root: Path):
        self.root = root

    @classmethod
    def open(cls, settings: Settings) -> ParquetWarehouse:
        return cls(settings.warehouse_dir)

    def path(self, name: str) -> Path:
        return self.root / f"{name}.parquet"

    def exists(self, name: str) -> bool:
        return self.path(name).is_file()

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the write lock of this folder (other processes' writers wait; the kernel
        releases it when the holder exits or is killed). The lock file sits beside the
        folder, so that it is never taken for a table."""
        self.root.parent.mkdir(parents=True, exist_ok=True)
        with open(self.root.with_name(f"{self.root.name}.lock"), "a+b") as handle:

            def try_lock() -> bool:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return True
                except BlockingIOError:
                    return False

            with _write_lock(
                str(self.root),
                try_lock,
                lambda: fcntl.flock(handle, fcntl.LOCK_EX),
                lambda: fcntl.flock(handle, fcntl.LOCK_UN),
            ):
                self._clean_leftovers()
                yield

    @contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        """Take the lock `name` of this folder if nobody holds it, without waiting: yields
        whether this holder got it (another process, or another `with` in this one, already
        holds it: False). A `fcntl.flock` file beside the folder; the kernel releases it when
        the holder exits or is killed."""
        self.root.parent.mkdir(parents=True, exist_ok=True)
        path = self.root.with_name(f"{self.root.name}.{_lock_name(name)}.lock")
        with open(path, "a+b") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _clean_leftovers(self) -> None:
        """Undo what a killed writer left (run under the lock, so no live writer is mid-write;
        files of live processes are never touched): its staged copies are deleted, and the
        backups of a swap it did not finish are put back, undoing that write as a whole."""
        if not self.root.is_dir():
            return
        removed, restored = 0, []
        for path in sorted(self.root.iterdir()):
            found = _LEFTOVER.match(path.name)
            if found is None:
                continue
            pid = int(found["pid"])
            if pid == os.getpid() or process_alive(pid):
                continue
            if found["kind"] == "bak":
                os.replace(path, self.path(found["table"]))
                restored.append(found["table"])
            else:
                path.unlink(missing_ok=True)
                removed += 1
        if removed or restored:
            undone = f"; put back {', '.join(restored)} as they were" if restored else ""
            print(
                f"cleaned up after a killed smap writer: removed {removed} temporary "
                f"file(s) from {self.root}{undone}",
                file=sys.stderr,
                flush=True,
            )

    def version(self, names: Sequence[str]) -> str:
        """Changes whenever one of the tables is rewritten (every write renames a new file in)."""
        parts = []
        for name in sorted(names):
            path = self.path(name)
            stat = path.stat() if path.is_file() else None
            parts.append(f"{name}:{stat.st_size}:{stat.st_mtime_ns}" if stat else f"{name}:-")
        return "|".join(parts)

    @write_locked
    def write(self, table: Table, df: pd.DataFrame) -> int:
        frame = table.conform(df)
        self.root.mkdir(parents=True, exist_ok=True)
        target = self.path(table.name)
        tmp = target.with_suffix(f".parquet.tmp-{os.getpid()}")
        try:
            frame.to_parquet(tmp, index=False, schema=table.arrow_schema())
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return len(frame)

    @write_locked
    def write_many(self, tables: Sequence[tuple[Table, pd.DataFrame]]) -> dict[str, int]:
        """Replace several tables as one change: every file is staged before any is swapped in,
        and a failed swap puts back the tables already replaced, so a failure changes nothing."""
        frames = [(table, table.conform(df)) for table, df in tables]
        self.root.mkdir(parents=True, exist_ok=True)
        staged: dict[str, Path] = {}
        try:
            for table, frame in frames:
                staged[table.name] = self.path(table.name).with_suffix(
                    f".parquet.tmp-{os.getpid()}"
                )
                frame.to_parquet(staged[table.name], index=False, schema=table.arrow_schema())
            self._swap_in(staged)
        finally:
            for tmp in staged.values():
                tmp.unlink(missing_ok=True)
        return {table.name: len(frame) for table, frame in frames}

    def _swap_in(self, staged: dict[str, Path]) -> None:
        """Rename staged files over their tables, keeping hard-linked backups to roll back to."""
        backups: list[Path] = []
        replaced: list[tuple[Path, Path | None]] = []
        try:
            for name, tmp in staged.items():
                target, backup = self.path(name), None
                if target.exists():
                    backup = target.with_suffix(f".parquet.bak-{os.getpid()}")
                    backup.unlink(missing_ok=True)
                    os.link(target, backup)
                    backups.append(backup)
                os.replace(tmp, target)
                replaced.append((target, backup))
        except BaseException:
            for target, backup in reversed(replaced):
                if backup is None:
                    target.unlink(missing_ok=True)
                else:
                    os.replace(backup, target)
            raise
        finally:
            for backup in backups:
                backup.unlink(missing_ok=True)

    @write_locked
    def append_many(self, tables: Sequence[tuple[Table, Iterable[pd.DataFrame]]]) -> dict[str, int]:
        """Add rows to several tables as one change (each table's rows given as frames, read
        one at a time); a table is created when missing. The caller gives rows with new keys.

        A Parquet file cannot grow in place, so every table that gets rows is rewritten: a new
        file is streamed from the old one's batches and the new frames, then all are swapped
        in as `write_many` does (a failure changes nothing). Memory holds one batch.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        staged: dict[str, Path] = {}
        added: dict[str, int] = {}
        try:
            for table, frames in tables:
                staged[table.name] = self.path(table.name).with_suffix(
                    f".parquet.tmp-{os.getpid()}"
                )
                added[table.name] = self._stage_append(table, frames, staged[table.name])
            self._swap_in({name: tmp for name, tmp in staged.items() if tmp.exists()})
        finally:
            for tmp in staged.values():
                tmp.unlink(missing_ok=True)
        return added

    def _stage_append(self, table: Table, frames: Iterable[pd.DataFrame], tmp: Path) -> int:
        """Write the old file's rows and then `frames` to `tmp`; no file when nothing changes
        (no new row for an existing table). Returns the rows added."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        new = (frame for frame in frames if len(frame))
        first = next(new, None)
        if first is None and self.exists(table.name):
            return 0
        schema = _pandas_schema(table)
        added = 0
        with pq.ParquetWriter(tmp, schema) as writer:
            if self.exists(table.name):
                for batch in pq.ParquetFile(self.path(table.name)).iter_batches(APPEND_BATCH_ROWS):
                    writer.write_table(pa.Table.from_batches([batch]).cast(schema))
            for frame in itertools.chain([first] if first is not None else [], new):
                writer.write_table(
                    pa.Table.from_pandas(table.conform(frame), schema=schema, preserve_index=False)
                )
                added += len(frame)
        return added

    @write_locked
    def replace_partitions(self, table: Table, df: pd.DataFrame) -> int:
        frame = table.conform(df)
        if self.exists(table.name):
            old = self.read(table.name)
            old = old[~old[table.partition].isin(frame[table.partition].unique())]
            frame = pd.concat([old, frame], ignore_index=True) if len(old) else frame
        self.write(table, frame)
        return len(df)

    @write_locked
    def append(self, table: Table, df: pd.DataFrame) -> int:
        frame = table.conform(df)
        if self.exists(table.name):
            frame = pd.concat([self.read(table.name), frame], ignore_index=True)
        self.write(table, frame)
        return len(df)

    def read(
        self, name: str, columns: list[str] | None = None, between: Between | None = None
    ) -> pd.DataFrame:
        if not self.exists(name):
            raise WarehouseError(f"table {name} does not exist in {self.root} (run `smap ingest`)")
        if between is None:
            return pd.read_parquet(self.path(name), columns=columns)
        column, low, high = between
        bounds = [(column, op, v) for op, v in ((">=", low), ("<=", high)) if v is not None]
        frame = pd.read_parquet(self.path(name), columns=columns, filters=bounds or None)
        return frame.reset_index(drop=True)


APPEND_BATCH_ROWS = 100_000  # rows per batch when an append streams an old Parquet file


def _pandas_schema(table: Table):
    """The table's Arrow schema with the pandas metadata `to_parquet` writes, so a file
    written batch by batch reads back with the same dtypes (Int64 stays Int64)."""
    import pyarrow as pa

    empty = table.conform(pd.DataFrame({column: [] for column in table.columns}))
    return pa.Table.from_pandas(empty, schema=table.arrow_schema(), preserve_index=False).schema


class PostgresWarehouse:
    """Tables with primary keys and indexes in one schema, bulk loaded with COPY."""

    def __init__(self, pg: PostgresSettings):
        self.pg = pg
        self.schema = pg.db_schema
        self._database_ready = False

    @classmethod
    def open(cls, settings: Settings) -> PostgresWarehouse:
        warehouse = cls(settings.postgres)
        warehouse.connect().close()  # fail fast, before any long job starts
        return warehouse

    def connect(self):
        import psycopg2

        if not self._database_ready:
            ensure_database(self.pg)
            self._database_ready = True
        try:
            return psycopg2.connect(self.pg.dsn())
        except psycopg2.OperationalError as exc:
            raise WarehouseError(_pg_unreachable(self.pg, exc)) from None

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold this schema's write lock: a session advisory lock on a connection of its own
        (other processes' writers wait; the server releases it if the holder dies)."""
        conn = self.connect()
        conn.autocommit = True
        key = f"smap.warehouse.{self.pg.database}.{self.schema}"

        def call(function: str):
            with conn.cursor() as cur:
                cur.execute(f"SELECT {function}(hashtext(%s))", (key,))
                return cur.fetchone()[0]

        try:
            with _write_lock(
                f"PostgreSQL {self.pg.host}:{self.pg.port}/{self.pg.database}.{self.schema}",
                lambda: call("pg_try_advisory_lock"),
                lambda: call("pg_advisory_lock"),
                lambda: call("pg_advisory_unlock"),
            ):
                yield
        finally:
            conn.close()

    @contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        """Take the lock `name` of this schema if nobody holds it, without waiting: yields
        whether this holder got it (another process, or another `with` in this one, already
        holds it: False). A session advisory lock on a connection of its own, released when
        that connection closes; the server closes it if the holder dies."""
        conn = self.connect()
        conn.autocommit = True
        key = f"smap.warehouse.{self.pg.database}.{self.schema}.{_lock_name(name)}"
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (key,))
                held = bool(cur.fetchone()[0])
            yield held
        finally:
            conn.close()

    def table_ddl(self, table: Table) -> list[str]:
        """The statements that create the table, its schema and its indexes if absent."""
        return self._ddl(table)

    def _ddl(self, table: Table) -> list[str]:
        cols = ", ".join(f'"{c}" {TYPES[k][1]}' for c, k in table.columns.items())
        key = f", PRIMARY KEY ({', '.join(table.key)})" if table.key else ""
        stmts = [
            f"CREATE SCHEMA IF NOT EXISTS {self.schema}",
            f"CREATE TABLE IF NOT EXISTS {self.schema}.{table.name} ({cols}{key})",
        ]
        # a column added to the schema later reaches a table created before it; the ALTER
        # (an exclusive lock) runs only when a column is missing, not on every write
        adds = ", ".join(
            f'ADD COLUMN IF NOT EXISTS "{c}" {TYPES[k][1]}' for c, k in table.columns.items()
        )
        stmts.append(
            "DO $$ BEGIN IF (SELECT count(*) FROM information_schema.columns WHERE "
            f"table_schema = '{self.schema}' AND table_name = '{table.name}') "
            f"< {len(table.columns)} THEN ALTER TABLE {self.schema}.{table.name} {adds}; "
            "END IF; END $$"
        )
        for index in table.indexes + ((table.partition,) if table.partition else ()):
            index_cols = (index,) if isinstance(index, str) else index
            stmts.append(
                f"CREATE INDEX IF NOT EXISTS {table.name}_{'_'.join(index_cols)}_idx "
                f"ON {self.schema}.{table.name} ({', '.join(index_cols)})"
            )
        return stmts

    def _copy(self, cur, table: Table, frame: pd.DataFrame, into: str | None = None) -> None:
        """COPY `frame` into the table, or into `into` (a staging table of the same columns)."""
        buf = io.StringIO()
        out = frame.copy()
        for col, kind in table.columns.items():
            if kind == "ts":
                out[col] = out[col].dt.strftime("%Y-%m-%d %H:%M:%S.%f+00")
            elif kind == "date":
                out[col] = out[col].dt.strftime("%Y-%m-%d")
            elif kind == "str":  # stored as text, never NULL (read back as "" either way)
                out[col] = out[col].fillna("")
        out.to_csv(buf, index=False, header=False, na_rep="\\N")
        buf.seek(0)
        cols = ", ".join(f'"{c}"' for c in table.columns)
        # text columns never match the NULL marker: a caption that is literally \\N stays text
        texts = ", ".join(f'"{c}"' for c, kind in table.columns.items() if kind == "str")
        keep = f", FORCE_NOT_NULL ({texts})" if texts else ""
        cur.copy_expert(
            f"COPY {into or f'{self.schema}.{table.name}'} ({cols}) FROM STDIN "
            f"WITH (FORMAT csv, NULL '\\N'{keep})",
            buf,
        )

    @_server_named
    @write_locked
    def write(self, table: Table, df: pd.DataFrame) -> int:
        frame = table.conform(df)
        with self.connect() as conn, conn.cursor() as cur:
            for stmt in self._ddl(table):
                cur.execute(stmt)
            cur.execute(f"TRUNCATE {self.schema}.{table.name}")
            self._copy(cur, table, frame)
        conn.close()
        return len(frame)

    @_server_named
    @write_locked
    def write_many(self, tables: Sequence[tuple[Table, pd.DataFrame]]) -> dict[str, int]:
        """Replace several tables in ONE transaction (DDL, TRUNCATE and COPY for all of them),
        so a failure on any table leaves every table as it was."""
        frames = [(table, table.conform(df)) for table, df in tables]
        conn = self.connect()
        try:
            with conn, conn.cursor() as cur:
                for table, frame in frames:
                    for stmt in self._ddl(table):
                        cur.execute(stmt)
                    cur.execute(f"TRUNCATE {self.schema}.{table.name}")
                    self._copy(cur, table, frame)
        finally:
            conn.close()
        return {table.name: len(frame) for table, frame in frames}

    @_server_named
    @write_locked
    def append_many(self, tables: Sequence[tuple[Table, Iterable[pd.DataFrame]]]) -> dict[str, int]:
        """Add rows to several tables in ONE transaction, rewriting none: each table's frames
        are copied (one at a time) into a temporary staging table, then inserted with
        ON CONFLICT DO NOTHING, so a row whose key is already there is skipped, not doubled.
        A failure on any table leaves every table as it was. Returns the rows inserted."""
        added: dict[str, int] = {}
        conn = self.connect()
        try:
            with conn, conn.cursor() as cur:
                for table, frames in tables:
                    for stmt in self._ddl(table):
                        cur.execute(stmt)
                    target, stage = f"{self.schema}.{table.name}", f"smap_stage_{table.name}"
                    cur.execute(f"CREATE TEMPORARY TABLE {stage} (LIKE {target}) ON COMMIT DROP")
                    for frame in frames:
                        if len(frame):
                            self._copy(cur, table, table.conform(frame), into=stage)
                    cur.execute(
                        f"INSERT INTO {target} SELECT * FROM {stage} ON CONFLICT DO NOTHING"  # noqa: S608
                    )
                    added[table.name] = cur.rowcount
        finally:
            conn.close()
        return added

    @_server_named
    @write_locked
    def replace_partitions(self, table: Table, df: pd.DataFrame) -> int:
        frame = table.conform(df)
        dates = sorted({d.date() for d in frame[table.partition]})
        with self.connect() as conn, conn.cursor() as cur:
            for stmt in self._ddl(table):
                cur.execute(stmt)
            cur.execute(
                f"DELETE FROM {self.schema}.{table.name} WHERE {table.partition} = ANY(%s)",
                (dates,),
            )
            self._copy(cur, table, frame)
        conn.close()
        return len(frame)

    @_server_named
    @write_locked
    def append(self, table: Table, df: pd.DataFrame) -> int:
        frame = table.conform(df)
        with self.connect() as conn, conn.cursor() as cur:
            for stmt in self._ddl(table):
                cur.execute(stmt)
            self._copy(cur, table, frame)
        conn.close()
        return len(frame)

    @_server_named
    def exists(self, name: str) -> bool:
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT to_regclass(%s)", (f"{self.schema}.{name}",))
            found = cur.fetchone()[0] is not None
        conn.close()
        return found

    @_server_named
    def version(self, names: Sequence[str]) -> str:
        """Changes whenever rows of one of the tables are added, changed or deleted: the row
        count and the newest writing transaction id (one sequential scan per table)."""
        parts = []
        with self.connect() as conn, conn.cursor() as cur:
            for name in sorted(names):
                cur.execute("SELECT to_regclass(%s)", (f"{self.schema}.{name}",))
                if cur.fetchone()[0] is None:
                    parts.append(f"{name}:-")
                    continue
                cur.execute(
                    f"SELECT count(*), max(xmin::text::bigint) FROM {self.schema}.{name}"  # noqa: S608
                )
                rows, newest = cur.fetchone()
                parts.append(f"{name}:{rows}:{newest}")
        conn.close()
        return "|".join(parts)

    @_server_named
    def execute(self, sql: str) -> None:
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute(sql)
        conn.close()

    @_server_named
    def read(
        self, name: str, columns: list[str] | None = None, between: Between | None = None
    ) -> pd.DataFrame:
        """Typed values straight from the driver (no CSV re-parsing: text stays text, so
        `007` and a literal `\\N` come back as written), fetched in chunks."""
        if not self.exists(name):
            raise WarehouseError(
                f"table {self.schema}.{name} does not exist in PostgreSQL (run `smap ingest`)"
            )
        table = ALL_TABLES.get(name)
        known = table.columns if table else {}
        kinds = {c: known.get(c) for c in columns or known}
        select = ", ".join(_select_expr(c, k) for c, k in kinds.items()) or "*"
        parts = []
        with self.connect() as conn:
            # a server-side cursor streams the rows, so memory holds one chunk of tuples
            with conn.cursor(name=f"smap_read_{name}") as cur:
                cur.itersize = READ_CHUNK_ROWS
                where, bounds = _where(between)
                cur.execute(f"SELECT {select} FROM {self.schema}.{name}{where}", bounds)  # noqa: S608
                while rows := cur.fetchmany(READ_CHUNK_ROWS):
                    parts.append(pd.DataFrame.from_records(rows, columns=_names(cur)))
                names = _names(cur)
        conn.close()
        frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=names)
        return _typed(frame, kinds)


READ_CHUNK_ROWS = 100_000  # rows per round trip when reading a PostgreSQL table


def _where(between: Between | None) -> tuple[str, tuple | None]:
    """A WHERE clause and its parameters keeping rows inside `between` (None: all rows)."""
    if between is None:
        return "", None
    column, low, high = between
    bounds = [(op, v) for op, v in ((">=", low), ("<=", high)) if v is not None]
    if not bounds:
        return "", None
    where = " AND ".join(f'"{column}" {op} %s' for op, _ in bounds)
    values = tuple(v.to_pydatetime() if isinstance(v, pd.Timestamp) else v for _, v in bounds)
    return f" WHERE {where}", values


def _select_expr(column: str, kind: str | None) -> str:
    """Times as integer microseconds and dates as day numbers: exact, and far cheaper to
    turn into a frame than one Python datetime per value."""
    if kind == "ts":
        return f'(extract(epoch FROM "{column}") * 1000000)::bigint AS "{column}"'
    if kind == "date":
        return f'("{column}" - DATE \'1970-01-01\') AS "{column}"'
    return f'"{column}"'


def _names(cur) -> list[str]:
    return [d.name for d in cur.description] if cur.description else []


def _typed(frame: pd.DataFrame, kinds: dict[str, str | None]) -> pd.DataFrame:
    """The schema's dtypes; NULL text reads as "", as it always has on this backend."""
    for col in frame.columns:
        kind = kinds.get(col)
        if kind == "ts":
            stamps = pd.to_datetime(frame[col].astype("Int64"), unit="us", utc=True)
            frame[col] = stamps.astype("datetime64[ns, UTC]")
        elif kind == "date":
            days = pd.to_datetime(frame[col].astype("Int64"), unit="D")
            frame[col] = days.astype("datetime64[ns]")
        elif kind == "str":
            frame[col] = frame[col].fillna("").astype("object")
        elif kind is not None:
            frame[col] = frame[col].astype(TYPES[kind][0])
        elif frame[col].map(lambda v: isinstance(v, datetime)).any():
            frame[col] = pd.to_datetime(frame[col], utc=True)
    return frame


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _pg_unreachable(pg: PostgresSettings, exc: Exception) -> str:
    return f"PostgreSQL at {pg.host}:{pg.port} is not reachable: {_first_line(exc)}"


def retry_on_race(make, attempts: int = 5):
    """Workers starting together on a fresh database race to create its tables; retry."""
    import time

    for attempt in range(attempts):
        try:
            return make()
        except Exception:  # noqa: BLE001 - the loser of the race sees a DDL/integrity error
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 * (attempt + 1))


def ensure_database(pg: PostgresSettings) -> None:
    """Create the profile's database on first use (the server must already be running)."""
    import psycopg2
    import psycopg2.errors

    try:
        conn = psycopg2.connect(pg.dsn("postgres"))
    except psycopg2.OperationalError as exc:
        raise WarehouseError(_pg_unreachable(pg, exc)) from None
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (pg.database,))
        if cur.fetchone() is None:
            try:
                cur.execute(f'CREATE DATABASE "{pg.database}"')
            except (psycopg2.errors.DuplicateDatabase, psycopg2.errors.UniqueViolation):
                pass  # another worker created it a moment ago
    conn.close()


def ensure_server_database(pg: PostgresSettings | None) -> None:
    """Create a tool's database on its server on first use; None: the tool keeps a file."""
    if pg is not None:
        ensure_database(pg)


class LakeWarehouse(LakeFolders):
    """The cluster profile's lake (ingestion/lake.py) under the profile's PostgreSQL advisory
    locks: its writers run on many hosts, which all reach that server."""

    @classmethod
    def open(cls, settings: Settings) -> LakeWarehouse:
        return cls(settings.lake_uri, PostgresWarehouse.open(settings))


# warehouse.type -> the warehouse class; its `open(settings)` makes the profile's warehouse
# (a server is asked at once), its `writing` and `exclusive` are the warehouse's locks
# (a file lock beside the Parquet folder, a PostgreSQL advisory lock)
WAREHOUSES: dict[str, type[ParquetWarehouse] | type[PostgresWarehouse] | type[LakeWarehouse]] = {
    "parquet": ParquetWarehouse,
    "postgres": PostgresWarehouse,
    "lake": LakeWarehouse,
}


def open_warehouse(settings: Settings) -> Warehouse:
    """The profile's warehouse, picked by `warehouse.type`."""
    return WAREHOUSES[settings.warehouse.type].open(settings)
