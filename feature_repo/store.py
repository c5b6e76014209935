"""The Feast store of the active profile: config, apply and materialize.

`feature_store.yaml` is generated from the profile (and written to the data directory for
people who want the `feast` CLI); it is never edited by hand.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from configs.settings import Settings

REGISTRY_CACHE_TTL_SECONDS = 60


def _offline_postgres(settings: Settings) -> dict[str, Any]:
    pg = settings.postgres
    return {
        "type": "postgres",
        "host": pg.host,
        "port": pg.port,
        "database": pg.database,
        "db_schema": pg.db_schema,
        "user": pg.user,
        "password": pg.password.get_secret_value(),
        "sslmode": pg.sslmode,
    }


# profile value -> the offline_store block of feature_store.yaml
OFFLINE_STORES = {
    "duckdb": lambda _settings: {"type": "duckdb"},
    "file": lambda _settings: {"type": "file"},
    "postgres": _offline_postgres,
}


def _offline(settings: Settings) -> dict[str, Any]:
    return OFFLINE_STORES[settings.feast.offline_store](settings)


def _online(settings: Settings) -> dict[str, Any]:
    if settings.feast.online_store == "sqlite":
        return {"type": "sqlite", "path": str(settings.root / "online_store.db")}
    return {"type": "redis", "connection_string": settings.redis.connection_string()}


def _registry(settings: Settings) -> dict[str, Any]:
    if settings.feast.registry == "file":
        return {
            "registry_type": "file",
            "path": str(settings.feature_repo_dir / "registry.db"),
            "cache_ttl_seconds": REGISTRY_CACHE_TTL_SECONDS,
        }
    return {
        "registry_type": "sql",
        "path": settings.postgres.sqlalchemy_url(),
        "cache_ttl_seconds": REGISTRY_CACHE_TTL_SECONDS,
        "sqlalchemy_config_kwargs": {"echo": False, "pool_pre_ping": True},
    }


def feature_store_config(settings: Settings) -> dict[str, Any]:
    """The feature_store.yaml content for this profile."""
    return {
        "project": settings.feast.project,
        "provider": "local",
        "registry": _registry(settings),
        "offline_store": _offline(settings),
        "online_store": _online(settings),
        "entity_key_serialization_version": 3,
    }


def write_feature_store_yaml(settings: Settings) -> Path:
    """Write the generated config next to the registry (password left out)."""
    config = feature_store_config(settings)
    if "password" in config["offline_store"]:
        config["offline_store"]["password"] = "${SMAP_POSTGRES__PASSWORD}"
    settings.feature_repo_dir.mkdir(parents=True, exist_ok=True)
    path = settings.feature_repo_dir / "feature_store.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def open_store(settings: Settings):
    """A FeatureStore built from the profile (import of feast is deferred: it is slow)."""
    from feast import FeatureStore, RepoConfig

    settings.feature_repo_dir.mkdir(parents=True, exist_ok=True)
    if settings.feast.registry == "sql" or settings.feast.offline_store == "postgres":
        from ingestion.warehouse import ensure_database

        ensure_database(settings.postgres)
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
        draft_features,
        post_request_features,
    )

    sources = build_sources(settings)
    views = build_feature_views(sources) | build_draft_views(
        sources, build_tag_slot_sources(settings)
    )
    services = build_feature_services(views)
    on_demand = [post_request_features, draft_features]
    return [*ENTITIES, *views.values(), *on_demand, *services.values()]


def apply(settings: Settings) -> list[str]:
    """Register all definitions; returns their names."""
    store = open_store(settings)
    objects = definitions(settings)
    store.apply(objects)
    write_feature_store_yaml(settings)
    return [o.name for o in objects]


def materialize(
    settings: Settings, end: datetime | None = None, start: datetime | None = None, progress=None
) -> dict[str, int]:
    """Load the latest feature rows up to `end` into the online store, view by view.

    The first run of a view covers its whole source (from `start`, or the earliest row);
    later runs continue incrementally from where the previous one ended.
    """
    store = open_store(settings)
    end = end or datetime.now(UTC)
    tick = progress or (lambda _name: None)
    counts = {}
    for view in store.list_feature_views():
        stamps = _source_timestamps(settings, view)
        if view.materialization_intervals:
            store.materialize_incremental(end_date=end, feature_views=[view.name])
        else:
            first = start or stamps.min().to_pydatetime()
            store.materialize(start_date=first, end_date=end, feature_views=[view.name])
        counts[view.name] = len(stamps)
        tick(view.name)
    return counts


def _source_timestamps(settings: Settings, view):
    """Event timestamps of a view's source table: its size and earliest row in one read."""
    from ingestion.warehouse import open_warehouse

    return (
        open_warehouse(settings).read(_table_of(view), columns=["event_timestamp"]).event_timestamp
    )


def _table_of(view) -> str:
    from feature_repo.data_sources import table_of

    return table_of(view.batch_source)


class OnlineStoreUnreachable(RuntimeError):
    """The profile's online store cannot be reached."""


def check_online_store(settings: Settings) -> None:
    """Fail fast with one line when Redis is down, before Feast starts a long job."""
    if settings.feast.online_store != "redis":
        return
    import redis

    r = settings.redis
    try:
        redis.Redis(host=r.host, port=r.port, db=r.db, socket_connect_timeout=3).ping()
    except redis.exceptions.RedisError as exc:
        raise OnlineStoreUnreachable(
            f"Redis at {r.host}:{r.port} is not reachable: {exc}"
        ) from None
