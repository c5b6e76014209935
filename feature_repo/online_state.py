"""What the online store actually holds, read from the store itself (not from the registry).

The registry remembers which time windows were materialized; the online store can lose them
(Redis restarted empty or from an old snapshot, `online_store.db` deleted). So after each view
is loaded smap writes a mark into the online store itself: when the mark is gone or older than
the registry's last window, the store lost data and the view is loaded again in full.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from configs.settings import Settings

MARKS_TABLE = "smap_materialized"  # SQLite: view -> end of the last window loaded


def _marks_key(project: str) -> str:
    return f"smap:{project}:materialized"  # Redis hash: view -> end of the last window loaded


class SqliteOnline:
    """Marks and key counts in Feast's SQLite online store file."""

    def __init__(self, settings: Settings):
        self.path: Path = settings.root / "online_store.db"
        self.project = settings.feast.project

    def _read(self, sql: str, args: tuple = ()) -> list[tuple]:
        if not self.path.is_file():
            return []
        db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        try:
            return db.execute(sql, args).fetchall()
        except sqlite3.OperationalError:  # the table is not there (yet)
            return []
        finally:
            db.close()

    def mark(self, view: str) -> float | None:
        rows = self._read(f"SELECT end_epoch FROM {MARKS_TABLE} WHERE view = ?", (view,))
        return rows[0][0] if rows else None

    def set_mark(self, view: str, end_epoch: float) -> None:
        db = sqlite3.connect(self.path)
        try:
            with db:
                db.execute(
                    f"CREATE TABLE IF NOT EXISTS {MARKS_TABLE} "
                    "(view TEXT PRIMARY KEY, end_epoch REAL NOT NULL)"
                )
                db.execute(f"INSERT OR REPLACE INTO {MARKS_TABLE} VALUES (?, ?)", (view, end_epoch))
        finally:
            db.close()

    def keys(self, view) -> int:
        table = f"{self.project}_{view.name}".replace('"', '""')
        rows = self._read(f'SELECT count(DISTINCT entity_key) FROM "{table}"')
        return int(rows[0][0]) if rows else 0


class RedisOnline:
    """Marks and key counts in the Redis online store (Feast: one hash per entity key)."""

    def __init__(self, settings: Settings):
        self.project = settings.feast.project
        self.client = settings.redis.client()

    def mark(self, view: str) -> float | None:
        value = self.client.hget(_marks_key(self.project), view)
        return float(value) if value is not None else None

    def set_mark(self, view: str, end_epoch: float) -> None:
        self.client.hset(_marks_key(self.project), view, str(end_epoch))

    def keys(self, view) -> int:
        """Entity keys of the project that hold this view's timestamp field."""
        from feast.infra.online_stores.helpers import _redis_key_prefix

        pattern = _redis_key_prefix(view.join_keys) + b"*" + self.project.encode()
        field = f"_ts:{view.name}".encode()
        found, batch = 0, []
        for key in self.client.scan_iter(match=pattern, count=10_000):
            batch.append(key)
            if len(batch) == 10_000:
                found += self._holding(batch, field)
                batch = []
        return found + self._holding(batch, field)

    def _holding(self, keys: list[bytes], field: bytes) -> int:
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.hexists(key, field)
        return sum(bool(hit) for hit in pipe.execute())


ONLINE_STORES = {"sqlite": SqliteOnline, "redis": RedisOnline}


def online_state(settings: Settings) -> SqliteOnline | RedisOnline:
    """The profile's online store, for marks and key counts."""
    return ONLINE_STORES[settings.feast.online_store](settings)
