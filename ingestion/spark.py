"""The Spark session of the cluster profile's heavy steps (ETL, Feast's Spark offline store
and compute engine): one per process, on the profile's master, named so the master's UI says
which step ran.

Executors run Python (Feast's compute engine, UDFs), so they must use smap's interpreter:
`PYSPARK_PYTHON` is set before the first session starts (Spark reads it only then).
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

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
        **spark.conf,
    }


def spark_session(settings: Settings, step: str) -> SparkSession:
    """The process's Spark session, started on first use with the profile's settings."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    builder = SparkSession.builder
    for key, value in spark_conf(settings, step).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()
