"""Serving follows the champion alias, and only "not found" means there is none: a registry
that fails otherwise (database down, 5xx) keeps the loaded champions serving, is warned about
once per outage, and the next poll that reaches it recovers.

The registry is a fake MlflowClient (this tier only); the integration test
tests/integration/test_champion_poll_outage.py stops a real PostgreSQL under a real one.
"""

from __future__ import annotations

import logging
import threading
from types import SimpleNamespace

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INVALID_PARAMETER_VALUE,
    RESOURCE_DOES_NOT_EXIST,
    TEMPORARILY_UNAVAILABLE,
)

import serving.models
from serving.models import Champion, Champions, NoChampion, champion_version

NO_MODEL = MlflowException(
    "Registered Model with name=engagement not found", RESOURCE_DOES_NOT_EXIST
)
NO_ALIAS = MlflowException("Registered model alias champion not found.", INVALID_PARAMETER_VALUE)
# what MLflow's SQL store raises for a PostgreSQL that is down: the statement follows the cause
PG_DOWN = MlflowException(
    '(psycopg2.OperationalError) connection to server at "127.0.0.1", port 5999 failed: '
    "Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?"
    "\n\n(Background on this error at: https://sqlalche.me/e/20/e3q8)",
    TEMPORARILY_UNAVAILABLE,
)
REFUSED = MlflowException(
    "API request to http://127.0.0.1:5000/api/2.0/mlflow/registered-models/alias failed with "
    "exception HTTPConnectionPool: Max retries exceeded (Connection refused)"
)
BAD_GATEWAY = MlflowException("INTERNAL_ERROR: Response: 502 Bad Gateway")
DANGLING = MlflowException(
    "Model Version (name=engagement, version=9) not found", RESOURCE_DOES_NOT_EXIST
)


class FakeRegistry:
    """Answers `get_model_version_by_alias` from `aliases`, or raises `error` like MLflow's SQL
    store does (which logs a traceback on its own logger first)."""

    def __init__(self):
        self.aliases: dict[str, int] = {}
        self.error: Exception | None = None

    def get_model_version_by_alias(self, task: str, alias: str):
        if self.error is not None:
            logging.getLogger("mlflow.store.db.utils").exception("SQLAlchemy database error")
            raise self.error
        if task not in self.aliases:
            raise NO_ALIAS
        number = self.aliases[task]
        return SimpleNamespace(version=str(number), run_id=f"run{number}", tags={})


class Records(logging.Handler):
    """The records that reach a logger's own handlers (MLflow's loggers may not propagate)."""

    def __init__(self):
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def registry(monkeypatch) -> FakeRegistry:
    fake = FakeRegistry()
    monkeypatch.setattr(serving.models, "use_tracking", lambda settings: fake)
    monkeypatch.setattr(
        serving.models,
        "load_champion",
        lambda client, task, v: Champion(task, int(v.version), v.run_id, f"{task}_v2", object()),
    )
    return fake


@pytest.fixture
def mlflow_db_log():
    handler = Records()
    logger = logging.getLogger("mlflow.store.db.utils")
    logger.addHandler(handler)
    yield handler.records
    logger.removeHandler(handler)


@pytest.mark.parametrize("error", [NO_MODEL, NO_ALIAS])
def test_only_a_missing_model_or_alias_is_no_champion(registry, error):
    registry.error = error
    assert champion_version(registry, "engagement") is None


@pytest.mark.parametrize("error", [PG_DOWN, REFUSED, BAD_GATEWAY, DANGLING])
def test_any_other_registry_error_raises(registry, error):
    registry.error = error
    with pytest.raises(MlflowException) as caught:
        champion_version(registry, "engagement")
    assert caught.value is error


def test_an_unreachable_registry_keeps_the_champion_and_the_next_poll_recovers(
    registry, local_settings, caplog, mlflow_db_log
):
    caplog.set_level(logging.INFO, logger="serving.models")
    champions = Champions(local_settings, tasks=("engagement", "virality"))
    registry.aliases = {"engagement": 1}
    assert champions.refresh() == ["engagement v1"]

    registry.error = PG_DOWN
    for _ in range(3):
        assert champions.refresh() == []
        assert champions.get("engagement").version == 1
        assert champions.reason("engagement") == ""
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "engagement: MLflow registry not reachable, keeps serving v1: (psycopg2.OperationalError) "
        'connection to server at "127.0.0.1", port 5999 failed: Connection refused',
        "virality: MLflow registry not reachable, has no champion loaded: (psycopg2."
        'OperationalError) connection to server at "127.0.0.1", port 5999 failed: '
        "Connection refused",
    ]  # once per outage, one line each, no traceback
    assert not any(r.exc_info for r in caplog.records)
    assert mlflow_db_log == []  # MLflow's own traceback of each failed query is held back

    registry.aliases["engagement"] = 2  # the alias moved while serving could not see it
    registry.error = None
    caplog.clear()
    assert champions.refresh() == ["engagement v2"]
    assert champions.get("engagement").version == 2
    assert [r.getMessage() for r in caplog.records] == [
        "engagement: MLflow registry reachable again",
        "virality: MLflow registry reachable again",
    ]
    with pytest.raises(NoChampion, match="virality: no champion in the registry"):
        champions.get("virality")


def test_without_a_champion_loaded_the_reason_is_the_registry_not_no_champion(
    registry, local_settings
):
    registry.error = REFUSED
    champions = Champions(local_settings, tasks=("engagement",))
    assert champions.refresh() == []
    with pytest.raises(NoChampion) as caught:
        champions.get("engagement")
    assert str(caught.value) == (
        "engagement: registry not reachable: API request to http://127.0.0.1:5000/api/2.0/"
        "mlflow/registered-models/alias failed with exception HTTPConnectionPool: Max retries "
        "exceeded (Connection refused)"
    )


def test_a_champion_removed_from_the_registry_stops_serving(registry, local_settings):
    champions = Champions(local_settings, tasks=("engagement",))
    registry.aliases = {"engagement": 3}
    champions.refresh()
    del registry.aliases["engagement"]  # the alias was deleted: "not found", not an outage
    assert champions.refresh() == []
    with pytest.raises(NoChampion, match="engagement: no champion in the registry"):
        champions.get("engagement")


def test_only_the_polling_thread_loses_mlflow_db_records(registry, local_settings, mlflow_db_log):
    """Another thread's MLflow errors during a poll are still logged."""
    champions = Champions(local_settings, tasks=("engagement",))
    polling, other = threading.Event(), threading.Event()

    def slow_down(task, alias):
        polling.set()
        other.wait(5)
        logging.getLogger("mlflow.store.db.utils").error("from the poller")
        raise PG_DOWN

    def log_elsewhere():
        polling.wait(5)
        logging.getLogger("mlflow.store.db.utils").error("from a request")
        other.set()

    registry.get_model_version_by_alias = slow_down
    thread = threading.Thread(target=log_elsewhere)
    thread.start()
    champions.refresh()
    thread.join(5)
    assert [r.getMessage() for r in mlflow_db_log] == ["from a request"]
