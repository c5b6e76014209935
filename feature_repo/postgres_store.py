"""The services offline store: Feast's PostgreSQL store, its point-in-time join planned
without nested loops.

Feast's join is a chain of CTEs over a freshly uploaded, never analysed entity table, with
time bounds that are sub-query results, so PostgreSQL guesses a few dozen rows per CTE and
joins them in nested loops that in fact compare every pair of rows. The quick preset's
engagement set (9,100 entity rows, nine views) took 511 s; with nested loops off for that one
query it takes 8 s, same rows. Materialization, sources and everything else are Feast's store,
unchanged. Selected in feature_store.yaml with `type: feature_repo.postgres_store.
HashJoinPostgreSQLOfflineStore`.
"""

from __future__ import annotations

from typing import Any, Literal

import pyarrow as pa
from feast.errors import ZeroColumnQueryResult
from feast.infra.offline_stores.contrib.postgres_offline_store.postgres import (
    PostgreSQLOfflineStore,
    PostgreSQLOfflineStoreConfig,
    PostgreSQLRetrievalJob,
)
from feast.infra.offline_stores.offline_store import RetrievalJob
from feast.infra.utils.postgres.connection_utils import _get_conn
from feast.type_map import pg_type_code_to_arrow

STORE_TYPE = "feature_repo.postgres_store.HashJoinPostgreSQLOfflineStore"
PLANNER_SETTINGS = ("SET enable_nestloop = off",)  # this connection only: it runs one query


class HashJoinPostgreSQLOfflineStoreConfig(PostgreSQLOfflineStoreConfig):
    type: Literal["feature_repo.postgres_store.HashJoinPostgreSQLOfflineStore"] = STORE_TYPE  # type: ignore[assignment]


class HashJoinRetrievalJob(PostgreSQLRetrievalJob):
    """Feast's retrieval job, run on a connection whose planner may not use nested loops."""

    def _to_arrow_internal(self, timeout: int | None = None) -> pa.Table:
        with self._query_generator() as query:
            with _get_conn(self.config.offline_store) as conn, conn.cursor() as cur:
                conn.read_only = True
                for statement in PLANNER_SETTINGS:
                    cur.execute(statement)
                cur.execute(query)
                if not cur.description:
                    raise ZeroColumnQueryResult(query)
                schema = pa.schema(
                    [(c.name, pg_type_code_to_arrow(c.type_code)) for c in cur.description]
                )
                rows = cur.fetchall()
                columns = [pa.array([row[i] for row in rows]) for i in range(len(schema))]
                return pa.Table.from_arrays(columns, schema=schema)


class HashJoinPostgreSQLOfflineStore(PostgreSQLOfflineStore):
    @staticmethod
    def get_historical_features(*args: Any, **kwargs: Any) -> RetrievalJob:
        job = PostgreSQLOfflineStore.get_historical_features(*args, **kwargs)
        return HashJoinRetrievalJob(
            query=job._query_generator,
            config=job.config,
            full_feature_names=job.full_feature_names,
            on_demand_feature_views=job.on_demand_feature_views,
            metadata=job.metadata,
        )
