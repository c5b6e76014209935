"""The cluster profile's lake: a folder of Parquet part files per table under a base URI that
every machine reaches (`file:///shared/lake`; `s3a://bucket/path` is pyarrow's `s3://`),
read alike by Spark (the ETL, Feast's Spark offline store and compute engine) and pyarrow.

Layout, shared with the Spark ETL: table T is `<lake_uri>/T/`. Timestamps are stored as
microseconds, UTC (Spark refuses Parquet nanoseconds), dates as Parquet dates. A table with a
date to partition by (`partition_column`) is Hive-partitioned into `day=YYYY-MM-DD` folders
by that column's UTC date: the ETL replaces the days it recomputed without rewriting the
others, and a read bounded on that column opens only its days. `day` is a partition key,
not a column: readers drop it. Other tables are one folder of part files.

Writes are all-or-nothing. The new content of every folder a write changes (a table's, or a
day's) is staged under a hidden transaction folder at the lake's root (`.tx-<host>-<pid>-<id>`,
which Spark and pyarrow skip), then renamed in, the old folders kept aside until every rename
succeeded. A failure puts the old folders back; a writer killed in the middle leaves its
transaction folder, which the next writer (under the lock) rolls back the same way. Writers
on many hosts share the profile's PostgreSQL advisory locks (the services warehouse's).

On an object store (s3://) a rename is a copy and pyarrow's S3 filesystem moves files only:
the layout and reads hold there, the all-or-nothing swap does not (documented, untested).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import socket
import sys
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Protocol

import pandas as pd

from configs.settings import Settings
from ingestion.errors import WarehouseError
from ingestion.schema import ALL_TABLES, Table

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    import pyarrow as pa
    from pyarrow.fs import FileSystem

PARTITION_KEY = "day"  # the Hive partition folder's key: day=YYYY-MM-DD
DAY_FORMAT = "%Y-%m-%d"
# raw tables of events, which grow by the day: partitioned by when each event happened
EVENT_TIMES = {
    "content_posts": "created_at",
    "comments": "created_at",
    "likes": "created_at",
    "follows": "created_at",
}
_TX_PREFIX = ".tx-"
_TARGETS = "targets.json"  # written once every folder is staged: the swap may have begun
_COMMITTED = "committed"  # written once every folder is swapped in: nothing to undo


class Locks(Protocol):
    """The write lock and named locks a warehouse lends the lake (ingestion/warehouse.py)."""

    def writing(self) -> AbstractContextManager[None]: ...
    def exclusive(self, name: str) -> AbstractContextManager[bool]: ...


# rows whose `column` lies in [low, high], bounds included (None: unbounded on that side);
# every warehouse's `read` takes it
Between = tuple[str, object, object]


def write_locked(method):
    """Run a write method under its warehouse's write lock, `self.writing()` (nested use in a
    thread is free); the Parquet, PostgreSQL and lake warehouses' writes all use it."""

    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with self.writing():
            return method(self, *args, **kwargs)

    return locked


def partition_column(table: Table) -> str | None:
    """The column whose UTC date names a row's `day=` folder, or None: an unpartitioned table."""
    return table.partition or EVENT_TIMES.get(table.name)


def table_uri(settings: Settings, name: str) -> str:
    """Where table `name` lives in the profile's lake (a folder URI Spark reads as it is)."""
    return f"{settings.lake_uri}/{name}"


def lake_schema(table: Table) -> pa.Schema:
    """The table's Parquet schema in the lake: microsecond UTC timestamps, dates as dates."""
    import pyarrow as pa

    schema = table.arrow_schema()
    lake_types = {"ts": pa.timestamp("us", tz="UTC"), "date": pa.date32()}
    return pa.schema(
        [
            (name, lake_types.get(table.columns[name], schema.field(name).type))
            for name in schema.names
        ]
    )


def filesystem(uri: str) -> tuple[FileSystem, str]:
    """pyarrow's filesystem for a lake URI and the path inside it (`s3a://` is `s3://`)."""
    from pyarrow import fs

    if uri.startswith("s3a://"):
        uri = "s3://" + uri.removeprefix("s3a://")
    return fs.FileSystem.from_uri(uri)


def _days(arrow: pa.Table, column: str, table: str) -> pa.Array:
    """`YYYY-MM-DD` of each row's `column` (UTC); an empty value has no day to go to."""
    import pyarrow.compute as pc

    values = arrow.column(column)
    if values.null_count:
        raise ValueError(f"table {table}: column {column} is empty in some rows (the lake's day)")
    return pc.strftime(values, format=DAY_FORMAT)


def _arrow(table: Table, frame: pd.DataFrame) -> pa.Table:
    """A conformed frame as the lake stores it (no pandas metadata: Spark writes none)."""
    import pyarrow as pa

    arrow = pa.Table.from_pandas(frame, schema=table.arrow_schema(), preserve_index=False)
    return arrow.cast(lake_schema(table), safe=False).replace_schema_metadata(None)


def _typed(table: Table, frame: pd.DataFrame) -> pd.DataFrame:
    """The warehouse's pandas dtypes for the columns read (those of `Table.conform`)."""
    known = {c: table.columns[c] for c in frame.columns if c in table.columns}
    return Table(table.name, known).conform(frame)


class LakeFolders:
    """Tables as folders of Parquet part files under the lake's base URI, under the locks it
    is lent (ingestion/warehouse.py's LakeFolders: the profile's PostgreSQL advisory locks)."""

    def __init__(self, uri: str, locks: Locks):
        self.uri = uri.rstrip("/")
        self.fs, self.base = filesystem(self.uri)
        self.base = self.base.rstrip("/")
        self._locks = locks

    def path(self, name: str) -> str:
        """The table's folder, as a path of the lake's filesystem."""
        return f"{self.base}/{name}"

    def move(self, source: str, target: str) -> None:
        """Rename a folder of the lake (every swap's one step: what can fail midway)."""
        self.fs.move(source, target)

    def _kind(self, path: str):
        return self.fs.get_file_info(path).type

    def exists(self, name: str) -> bool:
        from pyarrow.fs import FileType

        return self._kind(self.path(name)) == FileType.Directory

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the lake's write lock (writers on every host wait), first undoing what a
        killed writer left."""
        with self._locks.writing():
            self._clean_leftovers()
            yield

    @contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        """Take the lock `name` if nobody holds it, without waiting: yields whether it did."""
        with self._locks.exclusive(name) as held:
            yield held

    def version(self, names: Sequence[str]) -> str:
        """Changes whenever a table is rewritten (every write renames new part files in), the
        same in every process: a stored training set is reused while it holds."""
        from pyarrow.fs import FileSelector, FileType

        parts = []
        for name in sorted(names):
            if not self.exists(name):
                parts.append(f"{name}:-")
                continue
            infos = self.fs.get_file_info(FileSelector(self.path(name), recursive=True))
            files = sorted(
                f"{i.path}:{i.size}:{i.mtime_ns}" for i in infos if i.type == FileType.File
            )
            digest = hashlib.sha256("\n".join(files).encode()).hexdigest()[:16]
            parts.append(f"{name}:{len(files)}:{digest}")
        return "|".join(parts)

    # -- reading ---------------------------------------------------------------------------

    def _dataset(self, name: str):
        import pyarrow as pa
        import pyarrow.dataset as ds

        table = ALL_TABLES.get(name)
        key = pa.schema([(PARTITION_KEY, pa.string())])
        partitioned = table is not None and partition_column(table) is not None
        schema = None
        if table is not None:
            extra = [(PARTITION_KEY, pa.string())] if partitioned else []
            schema = pa.schema([*lake_schema(table), *extra])
        return ds.dataset(
            self.path(name),
            filesystem=self.fs,
            format="parquet",
            schema=schema,
            partitioning=ds.partitioning(key, flavor="hive") if partitioned or not table else None,
        )

    def read(
        self, name: str, columns: list[str] | None = None, between: Between | None = None
    ) -> pd.DataFrame:
        if not self.exists(name):
            raise WarehouseError(f"table {name} does not exist in {self.uri} (run `smap ingest`)")
        dataset = self._dataset(name)
        table = ALL_TABLES.get(name)
        names = columns or [n for n in dataset.schema.names if n != PARTITION_KEY]
        found = dataset.to_table(columns=names, filter=self._bounds(table, dataset, between))
        frame = found.to_pandas()
        return _typed(table, frame) if table is not None else frame

    def _bounds(self, table: Table | None, dataset, between: Between | None):
        """The filter keeping rows of `between` (None: all rows); bounds on the partition
        column also skip whole days."""
        import pyarrow as pa
        import pyarrow.dataset as ds

        if between is None:
            return None
        column, low, high = between
        kind = dataset.schema.field(column).type
        partitioned = table is not None and partition_column(table) == column
        found = None
        for op, value in ((">=", low), ("<=", high)):
            if value is None:
                continue
            stamp = pd.Timestamp(value)
            if pa.types.is_timestamp(kind):
                stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp
                bound = pa.scalar(stamp.tz_convert("UTC").to_pydatetime(), kind)
                day = stamp.tz_convert("UTC").strftime(DAY_FORMAT)
            elif pa.types.is_date(kind):
                bound = pa.scalar(stamp.date(), kind)
                day = stamp.strftime(DAY_FORMAT)
            else:
                bound, day = pa.scalar(value), None
            field = ds.field(column)
            test = field >= bound if op == ">=" else field <= bound
            if partitioned and day is not None:
                key = ds.field(PARTITION_KEY)
                test &= key >= day if op == ">=" else key <= day
            found = test if found is None else found & test
        return found

    # -- writing ---------------------------------------------------------------------------

    def _stage_files(self, stage: str, table: Table, frame: pd.DataFrame) -> None:
        """Write `frame` (conformed) as new part files under the staged folder `stage`: one
        per day folder for a partitioned table."""
        import pyarrow as pa
        import pyarrow.dataset as ds
        import pyarrow.parquet as pq

        self.fs.create_dir(stage, recursive=True)
        if frame.empty:
            return
        arrow = _arrow(table, frame)
        token = uuid.uuid4().hex[:12]
        column = partition_column(table)
        if column is None:
            pq.write_table(arrow, f"{stage}/part-{token}.parquet", filesystem=self.fs)
            return
        keyed = arrow.append_column(PARTITION_KEY, _days(arrow, column, table.name))
        ds.write_dataset(
            keyed,
            stage,
            filesystem=self.fs,
            format="parquet",
            partitioning=ds.partitioning(pa.schema([(PARTITION_KEY, pa.string())]), flavor="hive"),
            basename_template=f"part-{token}-{{i}}.parquet",
            existing_data_behavior="overwrite_or_ignore",
            preserve_order=True,
        )

    def _copy_folder(self, source: str, stage: str) -> None:
        """Copy the part files of a live folder into its staged copy (an append keeps them)."""
        from pyarrow.fs import FileSelector, FileType

        for info in self.fs.get_file_info(FileSelector(source, recursive=True)):
            if info.type == FileType.File and not info.base_name.startswith((".", "_")):
                target = f"{stage}/{info.path[len(source) + 1 :]}"
                self.fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
                self.fs.copy_file(info.path, target)

    @write_locked
    def write(self, table: Table, df: pd.DataFrame) -> int:
        return self.write_many([(table, df)])[table.name]

    @write_locked
    def write_many(self, tables: Sequence[tuple[Table, pd.DataFrame]]) -> dict[str, int]:
        """Replace several tables as one change: every folder is staged before any is swapped
        in, and a failed swap puts back the tables already replaced."""
        frames = [(table, table.conform(df)) for table, df in tables]
        with _Swap(self) as swap:
            for table, frame in frames:
                self._stage_files(swap.stage(table.name), table, frame)
            swap.commit([table.name for table, _ in frames])
        return {table.name: len(frame) for table, frame in frames}

    @write_locked
    def replace_partitions(self, table: Table, df: pd.DataFrame) -> int:
        """Replace the day folders of the days `df` holds (all of them: a day's rows are all
        given); the other days stay as they are, untouched on disk."""
        frame = table.conform(df)
        if partition_column(table) is None or not self.exists(table.name):
            return self.write(table, frame)
        with _Swap(self) as swap:
            self._stage_files(swap.stage(table.name), table, frame)
            for day in sorted(set(self._frame_days(table, frame))):
                swap.fold(f"{table.name}/{PARTITION_KEY}={day}")
            swap.commit(swap.folded)
        return len(frame)

    def _frame_days(self, table: Table, frame: pd.DataFrame):
        column = partition_column(table)
        assert column is not None
        return pd.Series(
            _days(_arrow(table, frame), column, table.name).to_numpy(zero_copy_only=False),
            index=frame.index,
        )

    @write_locked
    def append(self, table: Table, df: pd.DataFrame) -> int:
        return self.append_many([(table, [df])])[table.name]

    @write_locked
    def append_many(self, tables: Sequence[tuple[Table, Iterable[pd.DataFrame]]]) -> dict[str, int]:
        """Add rows to several tables as one change (each table's rows given as frames, read
        one at a time); a table is created when missing. Only the folders that get rows are
        rewritten: their old part files are copied beside new ones, then swapped in."""
        added: dict[str, int] = {}
        with _Swap(self) as swap:
            for table, frames in tables:
                added[table.name] = 0
                live = self.exists(table.name)
                copied: set[str] = set()
                for frame in frames:
                    if not len(frame):
                        continue
                    frame = table.conform(frame)
                    column = partition_column(table)
                    groups = (
                        [(table.name, frame)]
                        if column is None
                        else [
                            (f"{table.name}/{PARTITION_KEY}={day}", rows)
                            for day, rows in frame.groupby(self._frame_days(table, frame))
                        ]
                    )
                    for rel, rows in groups:
                        if rel not in copied and live:
                            copied.add(rel)
                            if self._kind(f"{self.base}/{rel}") == _directory():
                                self._copy_folder(f"{self.base}/{rel}", swap.stage(rel))
                        target = swap.stage(rel if column is None else table.name)
                        self._stage_files(target, table, rows)
                        swap.fold(rel)
                        added[table.name] += len(rows)
                if not live:
                    self.fs.create_dir(swap.stage(table.name), recursive=True)
                    swap.replace_whole(table.name)
            swap.commit(swap.folded)
        return added

    # -- killed writers ----------------------------------------------------------------------

    def _clean_leftovers(self) -> None:
        """Roll back the transactions of writers that did not finish (run under the lock, so
        no live writer is mid-swap): their old folders are put back, their staged ones
        removed; a transaction that swapped everything in is only tidied away."""
        from pyarrow.fs import FileSelector, FileType

        if self._kind(self.base) != FileType.Directory:
            return
        mine = _tx_owner()
        undone = 0
        for info in self.fs.get_file_info(FileSelector(self.base)):
            name = info.base_name
            if not name.startswith(_TX_PREFIX) or name.startswith(_TX_PREFIX + mine + "-"):
                continue
            undone += _roll_back(self, info.path)
        if undone:
            print(
                f"cleaned up after a killed smap writer: put back {undone} folder(s) of "
                f"{self.uri} as they were",
                file=sys.stderr,
                flush=True,
            )


def _directory():
    from pyarrow.fs import FileType

    return FileType.Directory


def _tx_owner() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class _Swap:
    """One all-or-nothing change of folders of the lake: stage the new content of each under
    a hidden transaction folder, then `commit` renames them in, keeping the old ones aside
    until all are in; leaving the `with` without a commit (an error) undoes it."""

    def __init__(self, lake: LakeFolders):
        self.lake = lake
        self.dir = f"{lake.base}/{_TX_PREFIX}{_tx_owner()}-{uuid.uuid4().hex[:8]}"
        self.folded: list[str] = []

    def stage(self, rel: str) -> str:
        return f"{self.dir}/new/{rel}"

    def fold(self, rel: str) -> None:
        """Swap the folder `rel` (a day of a table) when committing."""
        if rel not in self.folded:
            self.folded.append(rel)

    def replace_whole(self, rel: str) -> None:
        """Swap the whole table folder `rel` instead of its days (a new table)."""
        prefix = f"{rel}/"
        self.folded = [r for r in self.folded if not r.startswith(prefix)]
        self.fold(rel)

    def __enter__(self) -> _Swap:
        self.lake.fs.create_dir(self.dir, recursive=True)
        return self

    def commit(self, rels: Sequence[str]) -> None:
        fs, base = self.lake.fs, self.lake.base
        with fs.open_output_stream(f"{self.dir}/{_TARGETS}") as out:
            out.write(json.dumps(list(rels)).encode())
        for rel in rels:
            target = f"{base}/{rel}"
            if self.lake._kind(target) == _directory():
                aside = f"{self.dir}/old/{rel}"
                fs.create_dir(aside.rsplit("/", 1)[0], recursive=True)
                self.lake.move(target, aside)
            fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
            self.lake.move(self.stage(rel), target)
        with fs.open_output_stream(f"{self.dir}/{_COMMITTED}"):
            pass

    def __exit__(self, *exc) -> None:
        _roll_back(self.lake, self.dir)


def _roll_back(lake: LakeFolders, tx: str) -> int:
    """Undo a transaction that did not commit (put its old folders back, remove what it
    moved in) and delete its folder; returns the folders put back."""
    from pyarrow.fs import FileType

    fs, base = lake.fs, lake.base
    restored = 0
    targets = f"{tx}/{_TARGETS}"
    committed = lake._kind(f"{tx}/{_COMMITTED}") == FileType.File
    if not committed and lake._kind(targets) == FileType.File:
        with fs.open_input_stream(targets) as handle:
            rels = json.loads(handle.read().decode())
        for rel in reversed(rels):
            target, aside = f"{base}/{rel}", f"{tx}/old/{rel}"
            moved_in = lake._kind(f"{tx}/new/{rel}") == FileType.NotFound
            if moved_in and lake._kind(target) == FileType.Directory:
                fs.delete_dir(target)
            if lake._kind(aside) == FileType.Directory:
                lake.move(aside, target)
                restored += 1
    fs.delete_dir(tx)
    return restored
