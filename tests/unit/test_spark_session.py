"""The Spark session's settings and the check of a standalone master before Spark starts."""

import socket

import pytest

from configs.settings import load_settings
from ingestion.spark import SparkUnreachable, check_master, spark_conf


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # free once the socket closes: nothing listens on it


def test_a_master_that_does_not_answer_is_one_line_naming_the_setting(monkeypatch):
    monkeypatch.setenv("SMAP_SPARK__MASTER", f"spark://127.0.0.1:{_closed_port()}")
    with pytest.raises(SparkUnreachable) as err:
        check_master(load_settings("cluster"), timeout_seconds=1)
    assert str(err.value).startswith("spark.master: spark://127.0.0.1:")
    assert "smap cluster up" in str(err.value) and "\n" not in str(err.value)


def test_a_listening_master_and_local_mode_pass():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        settings = load_settings("cluster")
        up = settings.model_copy(
            update={
                "spark": settings.spark.model_copy(update={"master": f"spark://127.0.0.1:{port}"})
            }
        )
        check_master(up)
    local = settings.model_copy(
        update={"spark": settings.spark.model_copy(update={"master": "local[2]"})}
    )
    check_master(local)


def test_the_session_runs_in_utc_with_smaps_interpreter_and_a_named_application():
    conf = spark_conf(load_settings("cluster"), "etl")
    assert conf["spark.app.name"] == "smap-etl"
    assert conf["spark.sql.session.timeZone"] == "UTC"
    assert conf["spark.sql.shuffle.partitions"] == "8"


def test_a_bad_master_is_refused_when_the_settings_load(monkeypatch):
    from configs.settings import ConfigError

    monkeypatch.setenv("SMAP_SPARK__MASTER", "yarn")
    with pytest.raises(ConfigError, match="spark.master"):
        load_settings("cluster")
