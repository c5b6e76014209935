"""Shared fixtures: profiles pointed at temporary folders, fresh PostgreSQL databases, Redis.

Integration tests need the real PostgreSQL and Redis on 127.0.0.1. Under CI=true an
unreachable service fails the run; elsewhere those tests are skipped with the reason.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.servers import SilentServer

for _key, _value in {
    "DO_NOT_TRACK": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "BENTOML_DO_NOT_TRACK": "True",
    "EVIDENTLY_DISABLE_TELEMETRY": "1",
}.items():
    os.environ[_key] = _value
# LightGBM and XGBoost threads sleep instead of spinning while they wait for each other: on a
# busy 2-core machine a spinning thread holds the core its partner needs (one small LightGBM
# fit: 40 s spinning, 4 s sleeping). Set before either library loads; subprocesses inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"
IN_CI = os.environ.get("CI", "").lower() == "true"


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"required service unavailable under CI=true: {reason}")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """No test inherits a developer's SMAP_* variables or writes into the checkout."""
    for key in list(os.environ):
        if key.startswith("SMAP_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("SMAP_DATA_DIR", str(tmp_path / "smap"))


@contextmanager
def _fresh_database() -> Iterator[str]:
    """A new PostgreSQL database, dropped (with its MLflow and Optuna companions) after."""
    import psycopg2

    try:
        admin = psycopg2.connect(PG_ADMIN_DSN)
    except psycopg2.OperationalError as exc:
        _unavailable(f"PostgreSQL on 127.0.0.1:5432: {exc}")
    admin.autocommit = True
    name = f"smap_test_{uuid.uuid4().hex[:10]}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    yield name
    with admin.cursor() as cur:
        for database in (name, f"{name}_mlflow", f"{name}_optuna", f"{name}_dagster"):
            cur.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    admin.close()


@contextmanager
def _redis() -> Iterator:
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        _unavailable(f"Redis on 127.0.0.1:6379: {exc}")
    yield client
    client.close()


@contextmanager
def _services_profile(root: Path, database: str, redis_client) -> Iterator:
    """Services settings on `database` with a Feast project of their own, whose Redis keys
    are removed after."""
    from configs.settings import load_settings

    project = f"t{uuid.uuid4().hex[:10]}"
    settings = load_settings(
        "services",
        env={"SMAP_DATA_DIR": str(root), "SMAP_DATABASE": database, "SMAP_FEAST__PROJECT": project},
    )
    yield settings
    for key in redis_client.scan_iter(match=b"*" + project.encode() + b"*", count=1000):
        redis_client.delete(key)


@pytest.fixture
def pg_database():
    """A fresh PostgreSQL database, dropped after the test."""
    with _fresh_database() as name:
        yield name


@pytest.fixture
def redis_online():
    """Redis on 127.0.0.1:6379 (tests use a unique Feast project and clean their keys)."""
    with _redis() as client:
        yield client


@pytest.fixture
def local_settings(tmp_path: Path):
    from configs.settings import load_settings

    return load_settings("local", env={"SMAP_DATA_DIR": str(tmp_path / "smap")})


@pytest.fixture
def services_settings(tmp_path: Path, pg_database: str, redis_online):
    with _services_profile(tmp_path / "smap", pg_database, redis_online) as settings:
        yield settings


@pytest.fixture(scope="module")
def module_services_settings(tmp_path_factory: pytest.TempPathFactory):
    """services_settings shared by the tests of one module, for a platform they all read
    (loading one into PostgreSQL is slow): one database and Feast project for the module."""
    root = tmp_path_factory.mktemp("services") / "smap"
    with _redis() as client, _fresh_database() as database:
        with _services_profile(root, database, client) as settings:
            yield settings


@pytest.fixture(params=["local", "services"])
def any_settings(request: pytest.FixtureRequest):
    """Run a test on both profiles."""
    name = "local_settings" if request.param == "local" else "services_settings"
    return request.getfixturevalue(name)


@pytest.fixture
def service_app():
    """`Smap.to_asgi()` as many times as tests need in one process: BentoML registers its
    request metrics with prometheus on every app, and prometheus refuses a second
    registration of a name, so the previous app's `bentoml_*` collectors are dropped first."""
    from prometheus_client import REGISTRY

    def make():
        for collector in list(REGISTRY._collector_to_names):
            if any(n.startswith("bentoml_") for n in REGISTRY._collector_to_names[collector]):
                REGISTRY.unregister(collector)
        from serving.service import Smap

        return Smap.to_asgi()

    return make


@pytest.fixture
def silent_server():
    server = SilentServer()
    yield server
    server.close()
