"""One Spark standalone cluster and MLflow tracking server for the whole test session.

`smap cluster up` starts them (a master, two workers, the server) on free ports of 127.0.0.1,
with a data folder and a PostgreSQL database of their own; `smap cluster down` stops them
when the session ends. Spark tests ask for `cluster_settings` (the cluster profile pointed at
them) or `cluster_env` (the same as SMAP_* variables, for the smap processes a test starts),
so a session starts Spark once, however many tests use it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from configs.settings import Settings, load_settings
from pipelines.serving import free_port

PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"
IN_CI = os.environ.get("CI", "").lower() == "true"
START_SECONDS = 300  # a busy 2-core machine: the JVMs and the server start one after another


def smap(*args: str, env: dict[str, str], timeout: float = START_SECONDS):
    """Run the `smap` command line in its own process with exactly these SMAP_* settings."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SMAP_")}
    return subprocess.run(
        [sys.executable, "-m", "pipelines", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=Path(__file__).resolve().parents[2],
    )


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"required service unavailable under CI=true: {reason}")
    pytest.skip(reason)


@contextmanager
def _private_database() -> Iterator[str]:
    """A new database on the shared server, dropped after with its MLflow companion."""
    import psycopg2

    try:
        admin = psycopg2.connect(PG_ADMIN_DSN)
    except psycopg2.OperationalError as exc:
        _unavailable(f"PostgreSQL on 127.0.0.1:5432: {exc}")
    admin.autocommit = True
    name = f"smap_cluster_{uuid.uuid4().hex[:10]}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with admin.cursor() as cur:
            for database in (name, f"{name}_mlflow", f"{name}_optuna"):
                cur.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.close()


@contextmanager
def _redis_project() -> Iterator[str]:
    """A Feast project name of its own; its Redis keys are removed after."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        _unavailable(f"Redis on 127.0.0.1:6379: {exc}")
    project = f"c{uuid.uuid4().hex[:10]}"
    try:
        yield project
    finally:
        for key in client.scan_iter(match=b"*" + project.encode() + b"*", count=1000):
            client.delete(key)
        client.close()


@pytest.fixture(scope="session")
def cluster_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """SMAP_* variables of a cluster profile on a running cluster (started once)."""
    root = tmp_path_factory.mktemp("cluster") / "smap"
    with _private_database() as database, _redis_project() as project:
        spark_port, webui_port, mlflow_port = free_port(), free_port(), free_port()
        env = {
            "SMAP_PROFILE": "cluster",
            "SMAP_DATA_DIR": str(root),
            "SMAP_DATABASE": database,
            "SMAP_FEAST__PROJECT": project,
            "SMAP_CLUSTER__SPARK_PORT": str(spark_port),
            "SMAP_CLUSTER__SPARK_WEBUI_PORT": str(webui_port),
            "SMAP_CLUSTER__MLFLOW_PORT": str(mlflow_port),
            "SMAP_SPARK__MASTER": f"spark://127.0.0.1:{spark_port}",
        }
        started = smap("cluster", "up", env=env)
        try:
            assert started.returncode == 0, f"smap cluster up failed: {started.stderr[-2000:]}"
            yield env
        finally:
            stopped = smap("cluster", "down", env=env)
            assert stopped.returncode == 0, stopped.stderr[-2000:]


@pytest.fixture(scope="session")
def cluster_settings(cluster_env: dict[str, str]) -> Settings:
    """The cluster profile pointed at the session's cluster and MLflow server."""
    return load_settings("cluster", env=cluster_env)
