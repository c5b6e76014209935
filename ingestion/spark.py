"""The Spark session of the cluster profile's heavy steps (ETL, Feast's Spark offline store
and compute engine): one per process, on the profile's master, named so the master's UI says
which step ran.

Executors run Python (Feast's compute engine, UDFs), so they must use smap's interpreter:
`PYSPARK_PYTHON` is set before the first session starts (Spark reads it only then).
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from configs.errors import SmapError
from configs.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def spark_conf(settings: Settings, step: str) -> dict[str, str]:
    """Every spark.* setting of a session for `step` (also Feast's compute engine's conf)."""
    spark = settings.spark
    return {
        "spark.master": spark.master,
        "spark.app.name": f"{spark.app_prefix}-{step}",
        "spark.driver.memory": spark.driver_memory,
        "spark.executor.memory": spark.executor_memory,
        "spark.sql.shuffle.partitions": str(spark.shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",  # timestamps read and written as UTC
        "spark.ui.showConsoleProgress": "false",
        "spark.pyspark.python": sys.executable,
        # the lake (ingestion/lake.py): microsecond timestamps, and a table of a few hundred
        # day folders listed by the driver (past 32 paths Spark lists them with a job of one
        # task per folder: seconds of every read on two cores)
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        "spark.sql.sources.parallelPartitionDiscovery.threshold": "100000",
        **spark.conf,
    }


class SparkUnreachable(SmapError):
    """The profile's standalone Spark master does not answer."""


def check_master(settings: Settings, timeout_seconds: float = 3.0) -> None:
    """A standalone master that does not accept a connection: one line saying how to start
    it, instead of Spark's retries and a JVM stack trace a minute later."""
    master = settings.spark.master
    if not master.startswith("spark://"):
        return  # local[N]: Spark inside this process
    where = urlsplit(master)
    try:
        socket.create_connection((where.hostname, where.port), timeout_seconds).close()
    except OSError as exc:
        raise SparkUnreachable(
            f"spark.master: {master} does not answer ({exc.strerror or exc}); start it with "
            "`smap cluster up`, or run Spark in this process with SMAP_SPARK__MASTER=local[2]"
        ) from None


def spark_session(settings: Settings, step: str) -> SparkSession:
    """The process's Spark session, started on first use with the profile's settings."""
    check_master(settings)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    builder = SparkSession.builder
    for key, value in spark_conf(settings, step).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def use_smap_python() -> None:
    """Executors and the driver run smap's interpreter (read only when a session starts):
    for sessions that Feast, not `spark_session`, starts."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)


def stop_spark() -> None:
    """End this process's Spark application, if it has one, at the end of a step: a
    standalone master lends an application every free core until it stops, so an idle one
    would starve the other hosts' steps; the next step starts an application of its own
    name (the master's UI then lists what smap ran, step by step)."""
    if "pyspark" not in sys.modules:  # no step of this process used Spark
        return
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    if session is not None:
        session.stop()


@contextmanager
def spark_step() -> Iterator[None]:
    """A step whose Spark application, if it starts one, ends with it (`stop_spark`)."""
    try:
        yield
    finally:
        stop_spark()
