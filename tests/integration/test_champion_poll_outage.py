"""The MLflow registry's PostgreSQL stops while the service polls the champion alias: the loaded
champion keeps answering with the same version, the outage is one warning line per task, and
the first poll after the server is back recovers (and follows an alias that moved).

Only MLflow lives on a private PostgreSQL (started here on a free port, in a temp folder): it is
the database stopped and started again. The warehouse, the Feast registry and offline store,
Optuna and the prediction log stay on the shared server's fresh test database, and the online
store on the shared Redis, so the outage is the registry's alone and a prediction still has
its features. Nothing is mocked: a real MlflowClient on a real PostgreSQL.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg2
import pytest

from pipelines import flows
from pipelines.serving import free_port
from pipelines.training import train
from serving.predictor import Predictor, Unavailable
from serving.schemas import Draft

pytestmark = pytest.mark.integration
IN_CI = os.environ.get("CI", "").lower() == "true"
POLL_SECONDS = 0.3  # the profile polls every 10 s: a test that waits for polls needs them often
DRAFT = Draft(
    user_id=1,
    post_type="image",
    category="food",
    hashtags=["#x"],
    planned_at=datetime(2026, 6, 1, 12, tzinfo=UTC),
)


def _pg_bin() -> Path:
    """The folder of initdb and pg_ctl (Debian keeps them off PATH)."""
    initdb = shutil.which("initdb") or next(
        iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)), None
    )
    if initdb is None:
        if IN_CI:
            pytest.fail("initdb is not installed: a private PostgreSQL cannot be started")
        pytest.skip("initdb is not installed")
    return Path(initdb).parent


class PrivatePostgres:
    """A PostgreSQL cluster of our own on a free port, never the shared one; as root it runs as
    the `postgres` user (the server refuses to run as root)."""

    def __init__(self):
        self.bin, self.port = _pg_bin(), free_port()
        # not pytest's tmp_path: its folders are private to root, the server's user needs in
        self.folder = Path(tempfile.mkdtemp(prefix="smap-private-pg-"))
        self.data = self.folder / "data"
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")

    def _run(self, tool: str, *args) -> None:
        command = [str(self.bin / tool), *map(str, args)]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        if not self.data.exists():
            self._run("initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "--no-sync")
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", self.data, "-o", options, "-l", self.folder / "log", "-w",
                  "-t", "60", "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "60", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def create_database(self, name: str) -> None:
        conn = psycopg2.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres"
        )
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        conn.close()

    def remove(self) -> None:
        if self.running():
            self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture
def private_postgres():
    server = PrivatePostgres()
    try:
        server.start()
        yield server
    finally:
        server.remove()


class Records(logging.Handler):
    """What reaches a logger's own handlers (MLflow's loggers may not propagate to the root)."""

    def __init__(self):
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def mlflow_db_log():
    handler = Records()
    logger = logging.getLogger("mlflow.store.db.utils")
    logger.addHandler(handler)
    yield handler.records
    logger.removeHandler(handler)


def _registry_on(settings, server: PrivatePostgres):
    """`settings` with MLflow (tracking and registry) on the private server, polled often."""
    server.create_database("smap_mlflow")
    pg = settings.postgres.model_copy(update={"port": server.port})
    mlflow = settings.mlflow.model_copy(update={"tracking_uri": pg.sqlalchemy_url("smap_mlflow")})
    serving = settings.serving.model_copy(update={"alias_poll_seconds": POLL_SECONDS})
    return settings.model_copy(update={"mlflow": mlflow, "serving": serving})


def _wait_for(condition, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {seconds} s")
        time.sleep(0.05)


def _messages(caplog, level: int) -> list[str]:
    ours = [r for r in caplog.records if r.name == "serving.models" and r.levelno == level]
    return [r.getMessage() for r in ours]


def test_a_registry_outage_keeps_the_champion_serving(
    services_settings, private_postgres, caplog, mlflow_db_log
):
    caplog.set_level(logging.INFO, logger="serving.models")
    settings = _registry_on(services_settings, private_postgres)
    flows.prepare_data(settings)
    trained = train(settings, "engagement", trials=2, families=("linear",))
    assert trained.version == 1

    predictor = Predictor(settings)  # its alias poller and prediction log run in the background
    try:
        assert predictor.predict_engagement([DRAFT], "before").lineage.version == 1
        caplog.clear()  # from here on, what the outage and the recovery log

        private_postgres.stop()
        _wait_for(  # the poller saw the outage: it warned, or (the bug) dropped the champion
            lambda: _messages(caplog, logging.WARNING) or predictor.champions.reason("engagement"),
            "no poll during the outage",
        )
        assert predictor.champions.reason("engagement") == ""
        assert predictor.champions.refresh() == [] and predictor.champions.refresh() == []
        answer = predictor.predict_engagement([DRAFT], "during")
        assert answer.lineage.version == 1 and answer.lineage.run_id == trained.run_id
        assert predictor.champions.get("engagement").version == 1
        with pytest.raises(Unavailable, match="virality: registry not reachable: "):
            predictor.champion("virality")  # no champion loaded and none knowable: 503, why
        warned = {m.split(":")[0]: m for m in _messages(caplog, logging.WARNING)}
        assert sorted(warned) == sorted(predictor.champions.tasks)  # one line per task, once
        assert len(_messages(caplog, logging.WARNING)) == len(warned)
        assert warned["engagement"].startswith(
            "engagement: MLflow registry not reachable, keeps serving v1: "
            "(psycopg2.OperationalError) "
        )
        assert "\n" not in warned["engagement"]
        assert not [r for r in caplog.records if r.exc_info]
        # MLflow's traceback of every failed query is held back
        assert not [r for r in mlflow_db_log if r.levelno >= logging.ERROR]

        private_postgres.start()
        _wait_for(
            lambda: len(_messages(caplog, logging.INFO)) == len(warned), "no recovery after restart"
        )
        assert set(_messages(caplog, logging.INFO)) == {
            f"{task}: MLflow registry reachable again" for task in predictor.champions.tasks
        }
        assert len(_messages(caplog, logging.WARNING)) == len(warned)  # recovered without error
        with pytest.raises(Unavailable, match="virality: no champion in the registry"):
            predictor.champion("virality")

        _move_alias_to_a_copy(predictor.champions.client, "engagement", version=1)
        _wait_for(lambda: predictor.champions.get("engagement").version == 2, "no swap to v2")
        assert predictor.predict_engagement([DRAFT], "after").lineage.version == 2
        assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    finally:
        predictor.close()


def _move_alias_to_a_copy(client, task: str, version: int) -> None:
    """Register `version`'s model again and point the champion alias at the copy."""
    source = client.get_model_version(task, str(version))
    copy = client.create_model_version(task, source.source, run_id=source.run_id)
    client.set_registered_model_alias(task, "champion", copy.version)
