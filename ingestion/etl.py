"""ETL: raw tables -> analytics tables that the feature store and the label queries read.

Every analytics table has one definition, a SQL text in `ingestion.etl_sql`; the profile's
warehouse kind picks the engine that runs it (`ETL_ENGINES`). Every rolling engagement figure
uses only posts whose 7-day label window has closed, so a feature row stamped at day d never
contains an outcome that was unknown at d.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from configs.settings import Settings
from ingestion.etl_engines import run_on_duckdb, run_on_postgres, run_on_spark
from ingestion.etl_sql import LABEL_DAYS
from ingestion.schema import ANALYTICS_TABLES
from ingestion.warehouse import Warehouse

__all__ = [
    "ANALYTICS_TABLES",
    "ENGAGEMENT_TARGETS",
    "ETL_ENGINES",
    "LABEL_DAYS",
    "engagement_denominator",
    "interactions",
    "run_etl",
]


def interactions(posts: pd.DataFrame) -> pd.Series:
    return posts.likes + posts.comments + posts.shares + posts.saves


# What the engagement target measures, per `engagement_definition.denominator` (docs/own-data.md)
ENGAGEMENT_TARGETS = {
    "reach": "interactions / reach over the post's first 7 days",
    "followers": "interactions / the account's followers over the post's first 7 days",
    "none": "log(1 + interactions) per post over its first 7 days",
}


def engagement_denominator(definition: pd.DataFrame | None) -> str:
    """The warehouse's engagement target; simulated data (no definition) is per reach."""
    if definition is None or definition.empty:
        return "reach"
    return str(definition.denominator.iloc[0])


# warehouse.type -> where the analytics SQL runs: DuckDB over the Parquet files, inside
# PostgreSQL, or Spark over the lake
ETL_ENGINES: dict[str, Callable[..., dict[str, int]]] = {
    "parquet": run_on_duckdb,
    "postgres": run_on_postgres,
    "lake": run_on_spark,
}


def run_etl(
    settings: Settings,
    warehouse: Warehouse,
    since: pd.Timestamp | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """Recompute analytics tables on the profile's engine and replace their date partitions
    from `since` on; `progress` hears "transform", then each table's name."""
    tick = progress or (lambda _name: None)
    return ETL_ENGINES[settings.warehouse.type](settings, warehouse, since, tick)
