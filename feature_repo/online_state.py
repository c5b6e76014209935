"""The kinds of Feast online store (`ONLINE_STORES`), and what one actually holds, read from the
store itself (not from the registry).

The registry remembers which time windows were materialized; the online store can lose them
(Redis restarted empty or from an old snapshot, `online_store.db` deleted). So after each view
is loaded smap writes a mark into the online store itself: when the mark is gone or older than
the registry's last window, the store lost data and the view is loaded again in full.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from configs.settings import Settings

MARKS_TABLE = "smap_materialized"  # SQLite: view -> end of the last window loaded


def _marks_key(project: str) -> str:
    return f"smap:{project}:materialized"  # Redis hash: view -> end of the last window loaded


def quick_redis_client(settings: Settings, timeout_seconds: float):
    """A client of the profile's Redis that gives up at once: `timeout_seconds` to connect and
    per command, and no retry (redis-py retries a failed command three times by default, with
    up to 14 s of backoff: a stopped Redis then holds each caller for seconds)."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client = settings.redis.client(timeout_seconds)
    client.set_retry(Retry(NoBackoff(), 0))
    return client


def loaded_until(view) -> float | None:
    """The end (epoch seconds) of the last window the registry says was loaded into the online
    store for a Feast view; None when it was never materialized."""
    if not view.materialization_intervals:
        return None
    return max(stop for _start, stop in view.materialization_intervals).timestamp()


def holds(mark: float | None, until: float) -> bool:
    """The online store's mark for a view covers the registry's last window (`loaded_until`):
    the mark is there and not older (Redis emptied, a file restored from an older copy)."""
    return mark is not None and mark >= until - 1


class SqliteOnline:
    """Marks and key counts in Feast's SQLite online store file."""

    def __init__(self, settings: Settings, timeout_seconds: float | None = None):
        self.path: Path = settings.online_store_db
        self.project = settings.feast.project
        self.timeout = 5.0 if timeout_seconds is None else timeout_seconds  # sqlite3's default

    def _read(self, sql: str, args: tuple = ()) -> list[tuple]:
        if not self.path.is_file():
            return []
        db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=self.timeout)
        try:
            return db.execute(sql, args).fetchall()
        except sqlite3.OperationalError:  # the table is not there (yet)
            return []
        finally:
            db.close()

    def mark(self, view: str) -> float | None:
        rows = self._read(f"SELECT end_epoch FROM {MARKS_TABLE} WHERE view = ?", (view,))
        return rows[0][0] if rows else None

    def marks(self) -> dict[str, float]:
        """Every view's mark, in one read."""
        return dict(self._read(f"SELECT view, end_epoch FROM {MARKS_TABLE}"))

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

    def __init__(self, settings: Settings, timeout_seconds: float | None = None):
        """`timeout_seconds`: a client that gives up at once (a health check), else the
        profile's timeouts."""
        self.project = settings.feast.project
        self.client = (
            settings.redis.client()
            if timeout_seconds is None
            else quick_redis_client(settings, timeout_seconds)
        )

    def mark(self, view: str) -> float | None:
        value = self.client.hget(_marks_key(self.project), view)
        return float(value) if value is not None else None

    def marks(self) -> dict[str, float]:
        """Every view's mark, in one read."""
        found = self.client.hgetall(_marks_key(self.project))
        return {view.decode(): float(end) for view, end in found.items()}

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


def _redis_where(settings: Settings) -> str:
    r = settings.redis
    return f"Redis at {r.host}:{r.port}"


def _redis_unreachable(settings: Settings, timeout_seconds: float | None = None) -> str:
    """'' when Redis answers a PING (within `timeout_seconds` and at the first try, else the
    profile's timeouts and retries), else the reason."""
    import redis

    client = (
        settings.redis.client()
        if timeout_seconds is None
        else quick_redis_client(settings, timeout_seconds)
    )
    try:
        client.ping()
        return ""
    except redis.exceptions.RedisError as exc:
        return str(exc).strip() or type(exc).__name__
    finally:
        client.close()


def _a_file_is_reached(settings: Settings, timeout_seconds: float | None = None) -> str:
    return ""  # a missing file is `OnlineBackend.file`'s to tell


@dataclass(frozen=True)
class OnlineBackend:
    """One kind of Feast online store: its block of feature_store.yaml, how messages name it,
    its file, whether it answers, and its marks and key counts (serving's direct reads of it
    are `serving.online_reader.ONLINE_READS`)."""

    feast_config: Callable[[Settings], dict[str, Any]]
    where: Callable[[Settings], str]
    file: Callable[[Settings], Path | None]  # None: a server, not a file of ours
    # (settings, timeout_seconds=None) -> '' when it answers, else the reason
    unreachable: Callable[..., str]
    # (settings, timeout_seconds=None) -> its marks and key counts
    state: Callable[..., SqliteOnline | RedisOnline]


# feast.online_store -> the online store
ONLINE_STORES: dict[str, OnlineBackend] = {
    "sqlite": OnlineBackend(
        feast_config=lambda s: {"type": "sqlite", "path": str(s.online_store_db)},
        where=lambda s: f"SQLite online store at {s.online_store_db}",
        file=lambda s: s.online_store_db,
        unreachable=_a_file_is_reached,
        state=SqliteOnline,
    ),
    "redis": OnlineBackend(
        feast_config=lambda s: {
            "type": "redis",
            "connection_string": s.redis.connection_string(),
        },
        where=_redis_where,
        file=lambda _s: None,
        unreachable=_redis_unreachable,
        state=RedisOnline,
    ),
}


def online_store(settings: Settings) -> OnlineBackend:
    """The profile's kind of online store."""
    return ONLINE_STORES[settings.feast.online_store]


def online_state(
    settings: Settings, timeout_seconds: float | None = None
) -> SqliteOnline | RedisOnline:
    """The profile's online store, for marks and key counts (each read within
    `timeout_seconds` when given: a health check)."""
    return online_store(settings).state(settings, timeout_seconds)
