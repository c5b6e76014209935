"""The Feast store of the active profile: config, apply and materialize.

`feature_store.yaml` is generated from the profile (and written to the data directory for
people who want the `feast` CLI); it is never edited by hand.
"""

from __future__ import annotations

import io
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from pydantic import SecretStr

from configs.errors import SmapError
from configs.settings import Settings
from feature_repo.online_state import holds, loaded_until, online_state, online_store
from ingestion.spark import spark_conf, spark_session, use_smap_python
from ingestion.warehouse import WarehouseError, ensure_database, open_warehouse

REGISTRY_CACHE_TTL_SECONDS = 60
# what the written feature_store.yaml holds instead of the password: Feast fills ${VAR} from
# the environment when it reads the file, so the secret never lands on disk
PASSWORD_REFERENCE = "${SMAP_POSTGRES__PASSWORD}"


class _Quoted(str):
    """Written single-quoted, so the filled-in password keeps spaces, '#' and ':'."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(
    _Quoted, lambda dumper, text: dumper.represent_scalar("tag:yaml.org,2002:str", text, "'")
)


def _offline_postgres(settings: Settings) -> dict[str, Any]:
    pg = settings.postgres
    return {
        # Feast's PostgreSQL store with an as-of point-in-time join (feature_repo/postgres_asof.py)
        "type": "feature_repo.postgres_asof.AsofPostgreSQLOfflineStore",
        "host": pg.host,
        "port": pg.port,
        "database": pg.database,
        "db_schema": pg.db_schema,
        "user": pg.user,
        "password": pg.password.get_secret_value(),
        "sslmode": pg.sslmode,
    }


def _nothing_to_prepare(_settings: Settings) -> None:
    pass


def _postgres_ready(settings: Settings) -> None:
    """The profile's PostgreSQL database exists, and Feast's clients connect with its timeout."""

    ensure_database(settings.postgres)
    # Feast's PostgreSQL offline store takes no connect timeout; libpq reads this instead
    os.environ.setdefault("PGCONNECT_TIMEOUT", str(settings.postgres.connect_timeout_seconds))


# Spark moves frames to and from pandas through Arrow (row by row without it: minutes for
# a training set)
SPARK_FEAST_CONF = {"spark.sql.execution.arrow.pyspark.enabled": "true"}


def _offline_spark(settings: Settings) -> dict[str, Any]:
    """Feast's Spark store on the profile's Spark (its session is the process's one)."""
    return {"type": "spark", "spark_conf": spark_conf(settings, "features") | SPARK_FEAST_CONF}


def _spark_engine(settings: Settings) -> dict[str, Any]:
    """Feast's Spark compute engine: materialization runs on the executors, each writing its
    partition of the latest rows into the online store."""
    conf = spark_conf(settings, "features") | SPARK_FEAST_CONF
    return {
        "type": "spark.engine",
        "spark_conf": conf,
        "partitions": settings.spark.shuffle_partitions,
    }


def _spark_ready(_settings: Settings) -> None:
    """Executors run Python (the compute engine's writers): smap's interpreter, set before
    Feast starts the session."""
    use_smap_python()


def _spark_started(settings: Settings) -> None:
    """The process's Spark session on the profile's master before Feast's compute engine
    asks for one: Feast 0.67 hands the engine's whole block (`type`, `spark_conf`, ...) to
    SparkConf as if it were Spark's settings, so a session it starts ignores `spark_conf`
    (the master included) and runs in local mode."""
    session = spark_session(settings, "features")
    for key, value in SPARK_FEAST_CONF.items():
        session.conf.set(key, value)


@dataclass(frozen=True)
class OfflineBackend:
    config: Callable[[Settings], dict[str, Any]]  # the offline_store block of feature_store.yaml
    prepare: Callable[[Settings], None] = _nothing_to_prepare  # before Feast opens the store
    # the batch_engine block (materialization); None: Feast's local engine, in this process
    batch_engine: Callable[[Settings], dict[str, Any]] | None = None
    # before Feast materializes with that engine
    start_engine: Callable[[Settings], None] = _nothing_to_prepare


# feast.offline_store -> the offline store (its data sources: data_sources.SOURCE_KINDS)
OFFLINE_STORES: dict[str, OfflineBackend] = {
    # Feast's DuckDB store with an ASOF point-in-time join (feature_repo/offline_store.py)
    "duckdb": OfflineBackend(
        lambda _settings: {"type": "feature_repo.offline_store.AsofDuckDBOfflineStore"}
    ),
    "duckdb_window": OfflineBackend(lambda _settings: {"type": "duckdb"}),  # Feast's own join
    "file": OfflineBackend(lambda _settings: {"type": "file"}),
    "postgres": OfflineBackend(_offline_postgres, prepare=_postgres_ready),
    # Feast's Spark store over the lake's folders, its Spark compute engine to materialize
    "spark": OfflineBackend(
        _offline_spark, _spark_ready, batch_engine=_spark_engine, start_engine=_spark_started
    ),
}


def _registry_path(settings: Settings) -> Path:
    return settings.feature_repo_dir / "registry.db"


def _file_registry(settings: Settings) -> dict[str, Any]:
    return {
        "registry_type": "file",
        "path": str(_registry_path(settings)),
        "cache_ttl_seconds": REGISTRY_CACHE_TTL_SECONDS,
    }


def _sql_registry(settings: Settings) -> dict[str, Any]:
    # the password travels beside the URL, so the written file can hold a reference instead
    pg = settings.postgres.model_copy(update={"password": SecretStr("")})
    password = settings.postgres.password.get_secret_value()
    return {
        "registry_type": "sql",
        "path": pg.sqlalchemy_url(),
        "cache_ttl_seconds": REGISTRY_CACHE_TTL_SECONDS,
        "sqlalchemy_config_kwargs": {
            "echo": False,
            "pool_pre_ping": True,
            "connect_args": {"password": password} if password else {},
        },
    }


@dataclass(frozen=True)
class RegistryBackend:
    config: Callable[[Settings], dict[str, Any]]  # the registry block of feature_store.yaml
    # the registry file smap checks and stamps; None: the registry is in a database
    file: Callable[[Settings], Path | None]
    prepare: Callable[[Settings], None] = _nothing_to_prepare  # before Feast opens it


# feast.registry -> the Feast registry
REGISTRIES: dict[str, RegistryBackend] = {
    "file": RegistryBackend(_file_registry, file=_registry_path),
    "sql": RegistryBackend(_sql_registry, file=lambda _settings: None, prepare=_postgres_ready),
}


def registry_file(settings: Settings) -> Path | None:
    """The profile's Feast registry file, or None when the registry is not a file."""
    return REGISTRIES[settings.feast.registry].file(settings)


def feature_store_config(settings: Settings) -> dict[str, Any]:
    """The feature_store.yaml content for this profile."""
    offline = OFFLINE_STORES[settings.feast.offline_store]
    engine = {"batch_engine": offline.batch_engine(settings)} if offline.batch_engine else {}
    return {
        "project": settings.feast.project,
        "provider": "local",
        "registry": REGISTRIES[settings.feast.registry].config(settings),
        "offline_store": offline.config(settings),
        **engine,
        "online_store": online_store(settings).feast_config(settings),
        "entity_key_serialization_version": 3,
    }


def write_feature_store_yaml(settings: Settings) -> Path:
    """Write the generated config next to the registry for the `feast` CLI, with a reference
    to the password in place of its value (and readable by its owner only)."""
    config = feature_store_config(settings)
    if config["offline_store"].get("password"):
        config["offline_store"]["password"] = _Quoted(PASSWORD_REFERENCE)
    connect_args = config["registry"].get("sqlalchemy_config_kwargs", {}).get("connect_args", {})
    if connect_args.get("password"):
        connect_args["password"] = _Quoted(PASSWORD_REFERENCE)
    settings.feature_repo_dir.mkdir(parents=True, exist_ok=True)
    path = settings.feature_repo_dir / "feature_store.yaml"
    tmp = path.with_suffix(f".yaml.tmp-{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(yaml.dump(config, Dumper=_Dumper, sort_keys=False))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


class RegistryUnusable(SmapError):
    """The Feast registry cannot be read or holds no definitions yet."""


def check_registry_file(settings: Settings, rebuild: bool = False) -> None:
    """A corrupt registry.db must not end every command in a protobuf traceback: `features
    apply` (rebuild=True) moves it aside and registers the definitions afresh; every other
    command says to run it."""
    path = registry_file(settings)
    if path is None or not path.is_file():
        return
    from feast.protos.feast.core.Registry_pb2 import Registry as RegistryProto
    from google.protobuf.message import DecodeError

    try:
        RegistryProto().ParseFromString(path.read_bytes())
        return
    except DecodeError:
        pass
    if not rebuild:
        raise RegistryUnusable(
            f"the Feast registry {path} is corrupt: run `smap features apply` to rebuild it"
        )
    aside = path.with_name(f"registry.db.corrupt-{datetime.now(UTC):%Y%m%dT%H%M%S}")
    os.replace(path, aside)
    print(
        f"the Feast registry {path} was corrupt (kept as {aside.name}): registering smap's "
        "definitions afresh; the next materialize loads the online store in full",
        file=sys.stderr,
        flush=True,
    )


def open_store(settings: Settings, rebuild_registry: bool = False):
    """A FeatureStore built from the profile (import of feast is deferred: it is slow)."""
    from feast import FeatureStore, RepoConfig

    settings.feature_repo_dir.mkdir(parents=True, exist_ok=True)
    check_registry_file(settings, rebuild=rebuild_registry)
    registry = REGISTRIES[settings.feast.registry]
    offline = OFFLINE_STORES[settings.feast.offline_store]
    for prepare in dict.fromkeys((registry.prepare, offline.prepare)):  # each once
        prepare(settings)
    config = RepoConfig(repo_path=settings.feature_repo_dir, **feature_store_config(settings))
    return FeatureStore(config=config)


def definitions(settings: Settings) -> list:
    """Every Feast object smap defines, built for the profile's data sources."""
    from feature_repo.data_sources import build_sources, build_tag_slot_sources
    from feature_repo.entities import ENTITIES
    from feature_repo.feature_services import build_feature_services
    from feature_repo.feature_views import (
        build_draft_views,
        build_feature_views,
        build_trend_views,
        draft_features,
        post_request_features,
    )
    from feature_repo.platform_views import platform_features

    sources = build_sources(settings)
    views = (
        build_feature_views(sources)
        | build_draft_views(sources, build_tag_slot_sources(settings))
        | build_trend_views(sources)
    )
    services = build_feature_services(views)
    on_demand = [post_request_features, draft_features, platform_features]
    return [*ENTITIES, *views.values(), *on_demand, *services.values()]


def apply(settings: Settings) -> list[str]:
    """Register all definitions; returns their names."""
    store = open_store(settings, rebuild_registry=True)
    objects = definitions(settings)
    store.apply(objects)
    write_feature_store_yaml(settings)
    return [o.name for o in objects]


@contextmanager
def _feast_prints_to_log() -> Iterator[None]:
    """Feast prints each materialization to stdout; it belongs in the log, not the terminal."""
    buffer = io.StringIO()
    try:
        with redirect_stdout(buffer):
            yield
    finally:
        if buffer.getvalue().strip():
            logging.getLogger("feast").info(buffer.getvalue().strip())


def materialize(
    settings: Settings, end: datetime | None = None, start: datetime | None = None, progress=None
) -> dict[str, int]:
    """Load the latest feature rows up to `end` into the online store, view by view; returns
    the entity keys each view holds in the online store afterwards.

    A view is loaded in full (from `start`, or its earliest source row) the first time and
    whenever the online store lost what the registry says was loaded; otherwise it continues
    incrementally from where the previous run ended.
    """
    store = open_store(settings)
    online = online_state(settings)
    OFFLINE_STORES[settings.feast.offline_store].start_engine(settings)
    end = end or datetime.now(UTC)
    tick = progress or (lambda _name: None)
    keys = {}
    if not store.list_feature_views():  # an empty or new registry: loading nothing misleads
        raise RegistryUnusable(
            f"no feature views are registered in Feast project {settings.feast.project} "
            "(run `smap features apply`)"
        )
    views = online_views(store)
    with named_server_errors(settings):
        for view in views:
            if _online_is_current(online, view):
                with _feast_prints_to_log():
                    store.materialize_incremental(end_date=end, feature_views=[view.name])
            else:
                if view.materialization_intervals:
                    # on stderr, whatever logging a library set up: a full load takes longer
                    print(
                        f"the online store lost {view.name} (emptied, deleted or restored from "
                        "an older copy): loading its whole history again",
                        file=sys.stderr,
                        flush=True,
                    )
                store.apply([view])  # the registry's own view: re-creates its online table
                first = start or _earliest_row(settings, view)
                if first is not None:  # an empty source has nothing to load
                    with _feast_prints_to_log():
                        store.materialize(start_date=first, end_date=end, feature_views=[view.name])
            online.set_mark(view.name, end.timestamp())
            keys[view.name] = online.keys(view)
            tick(view.name)
    return keys


def online_views(store) -> list:
    """The feature views served online (the others are only joined into training sets)."""
    return [view for view in store.list_feature_views() if view.online]


def _online_is_current(online, view) -> bool:
    """The online store still holds everything the registry says was loaded into it."""
    until = loaded_until(view)
    return until is not None and holds(online.mark(view.name), until)


def _earliest_row(settings: Settings, view) -> datetime | None:
    warehouse, table = open_warehouse(settings), _table_of(view)
    if not warehouse.exists(table):  # a source not written yet (no ETL run): nothing to load
        return None
    stamps = warehouse.read(table, columns=["event_timestamp"])
    first = stamps.event_timestamp.min()
    return None if pd.isna(first) else first.to_pydatetime()


def _table_of(view) -> str:
    from feature_repo.data_sources import table_of

    return table_of(view.batch_source)


class OnlineStoreUnreachable(SmapError, RuntimeError):
    """The profile's online store cannot be reached or stopped answering."""


def check_online_store(settings: Settings) -> None:
    """Fail fast with one line when Redis is down or hung, before Feast starts a long job."""
    store = online_store(settings)
    reason = store.unreachable(settings)
    if reason:
        raise OnlineStoreUnreachable(
            f"{store.where(settings)} is not reachable: {reason.splitlines()[0]}"
        )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _postgres_errors() -> tuple[type[BaseException], ...]:
    """The errors PostgreSQL clients raise when the server goes away (Feast uses several)."""
    import sqlalchemy.exc

    errors: list[type[BaseException]] = [sqlalchemy.exc.OperationalError]
    for module in ("psycopg", "psycopg2"):
        try:
            errors.append(__import__(module).OperationalError)
        except ImportError:
            pass
    return tuple(errors)


@contextmanager
def named_server_errors(settings: Settings) -> Iterator[None]:
    """A server that dies or hangs in the middle of a Feast call: one line naming it."""
    import redis

    try:
        yield
    except redis.exceptions.RedisError as exc:
        r = settings.redis
        raise OnlineStoreUnreachable(
            f"Redis at {r.host}:{r.port} stopped answering: {_first_line(exc)}"
        ) from None
    except _postgres_errors() as exc:
        pg = settings.postgres
        raise WarehouseError(
            f"PostgreSQL at {pg.host}:{pg.port} stopped answering: {_first_line(exc)}"
        ) from None
