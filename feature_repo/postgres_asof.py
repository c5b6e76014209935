"""The services offline store: Feast's PostgreSQL store with an as-of point-in-time join.

Feast's PostgreSQL join inserts the entity rows one statement per row, joins every feature row
of the key inside the TTL window (a ten-year window for the author's category history), ranks
them, joins the winners back, and fetches the result row by row into Python lists: over nine
minutes for the default preset's engagement set. This store asks PostgreSQL the as-of question
directly: for each entity row and view, the newest feature row at or before the row's time and
not older than the view's TTL (`ORDER BY event_timestamp DESC LIMIT 1`, one probe of the
warehouse's (key, event_timestamp) index, see ingestion/schema.py). That is Feast's point-in-time
semantics, TTL included. Only the join keys and times travel to the server (COPY into a temporary
table) and only the features come back (COPY out as CSV, read by Arrow); the entity rows' other
columns are put beside them in the client, and the on-demand views run as on the local store.

Everything else (sources, materialization, pulling the latest rows) is Feast's PostgreSQL store,
unchanged. Selected in feature_store.yaml with
`type: feature_repo.postgres_asof.AsofPostgreSQLOfflineStore`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from feast.feature_view import FeatureView
from feast.infra.offline_stores import offline_utils
from feast.infra.offline_stores.contrib.postgres_offline_store.postgres import (
    PostgreSQLOfflineStore,
    PostgreSQLOfflineStoreConfig,
)
from feast.infra.offline_stores.offline_store import RetrievalJob, RetrievalMetadata
from feast.infra.utils.postgres.connection_utils import _get_conn
from feast.on_demand_feature_view import OnDemandFeatureView
from feast.type_map import pg_type_code_to_arrow

from feature_repo.offline_store import NarrowedOnDemandView

STORE_TYPE = "feature_repo.postgres_asof.AsofPostgreSQLOfflineStore"
ROW = "smap_entity_row"  # the entity row's position: the join's output comes back in this order
MICROS = "smap_entity_us"  # its time as integer microseconds (exact, and cheap to write)
NULL = "\\N"  # a NULL in the CSV coming back; an empty quoted string stays a string


class AsofPostgreSQLOfflineStoreConfig(PostgreSQLOfflineStoreConfig):
    type: Literal["feature_repo.postgres_asof.AsofPostgreSQLOfflineStore"] = STORE_TYPE  # type: ignore[assignment]


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_type(dtype) -> str:
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "bigint"
    if pd.api.types.is_float_dtype(dtype):
        return "double precision"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "timestamptz"
    return "text"


@dataclass(frozen=True)
class ViewJoin:
    sql: str  # a LEFT JOIN LATERAL clause over the entity table `e`
    features: list[str]  # output column names, in order
    entity_keys: list[str]  # entity-row columns it joins on


def view_join(view: FeatureView, i: int, refs: list[str], ts: str, full_names: bool) -> ViewJoin:
    """The newest row of the view's source at or before each entity row's time, within the TTL."""
    source = view.batch_source
    assert source is not None  # every view of the repo reads a batch source
    column = {name: col for col, name in source.field_mapping.items()}  # view name -> source
    keys = view.projection.join_key_map or {e.name: e.name for e in view.entity_columns}
    prefix = f"{view.projection.name_to_use()}:"
    features = [ref.split(":", 1)[1] for ref in refs if ref.startswith(prefix)]
    alias = view.projection.name_alias or view.name
    out = [f"{alias}__{f}" if full_names else f for f in features]
    stamp = f"s.{_quoted(source.timestamp_field)}"
    where = [f"s.{_quoted(column.get(k, k))} = e.{_quoted(key)}" for k, key in keys.items()]
    where.append(f"{stamp} <= e.{_quoted(ts)}")
    if view.ttl:
        seconds = int(view.ttl.total_seconds())
        where.append(f"{stamp} >= e.{_quoted(ts)} - interval '{seconds} seconds'")
    order = [f"{stamp} DESC"]
    if source.created_timestamp_column:
        order.append(f"s.{_quoted(source.created_timestamp_column)} DESC")
    select = ", ".join(
        f"s.{_quoted(column.get(f, f))} AS {_quoted(name)}"
        for f, name in zip(features, out, strict=True)
    )
    sql = (
        f"LEFT JOIN LATERAL (SELECT {select} FROM {source.get_table_query_string()} AS s "
        f"WHERE {' AND '.join(where)} ORDER BY {', '.join(order)} LIMIT 1) AS v{i} ON true"
    )
    return ViewJoin(sql, out, list(keys.values()))


def _csv(table: pa.Table) -> bytes:
    """Strings quoted, nulls as empty unquoted fields: PostgreSQL's CSV reads both back as given."""
    out = pa.BufferOutputStream()
    pacsv.write_csv(table, out, pacsv.WriteOptions(include_header=False))
    return out.getvalue().to_pybytes()


def _read_csv(data: bytes, names: list[str], types: dict) -> pa.Table:
    """The COPY output as typed columns: NULL marked `\\N`, an empty quoted string kept."""
    return pacsv.read_csv(
        io.BytesIO(data),
        read_options=pacsv.ReadOptions(column_names=names),
        convert_options=pacsv.ConvertOptions(
            column_types=types,
            null_values=[NULL],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        ),
    )


class AsofRetrievalJob(RetrievalJob):
    """Runs the as-of join on one connection: upload keys and times, join, COPY features out."""

    def __init__(
        self,
        config,
        entity_df: pd.DataFrame,
        ts: str,
        joins: list[ViewJoin],
        full_feature_names: bool,
        on_demand_feature_views: list,
        metadata: RetrievalMetadata,
    ):
        self.config = config
        self._entity_df = entity_df
        self._ts = ts
        self._joins = joins
        self._full_feature_names = full_feature_names
        self._on_demand_feature_views = on_demand_feature_views
        self._metadata = metadata

    @property
    def full_feature_names(self) -> bool:
        return self._full_feature_names

    @property
    def on_demand_feature_views(self) -> list:
        return self._on_demand_feature_views

    @property
    def metadata(self) -> RetrievalMetadata:
        return self._metadata

    def _to_df_internal(self, timeout: int | None = None) -> pd.DataFrame:
        return self._to_arrow_internal(timeout).to_pandas()

    def to_sql(self) -> str:
        return self._query()

    def _query(self) -> str:
        features = [f"v{i}.{_quoted(n)}" for i, j in enumerate(self._joins) for n in j.features]
        return (
            f"SELECT {', '.join([f'e.{_quoted(ROW)}', *features])} FROM smap_entity_rows AS e "
            f"{' '.join(j.sql for j in self._joins)}"
        )

    def _to_arrow_internal(self, timeout: int | None = None) -> pa.Table:
        entity = self._entity_df
        keys = list(dict.fromkeys(k for j in self._joins for k in j.entity_keys))
        micros = entity[self._ts].astype("datetime64[us, UTC]").astype("int64").to_numpy()
        upload = pa.Table.from_pandas(entity[keys], preserve_index=False)
        upload = upload.add_column(0, ROW, pa.array(range(len(entity)), pa.int64()))
        upload = upload.append_column(MICROS, pa.array(micros, pa.int64()))
        columns = ", ".join(
            [
                f"{_quoted(ROW)} bigint",
                *(f"{_quoted(k)} {_sql_type(entity[k].dtype)}" for k in keys),
                f"{_quoted(MICROS)} bigint",
            ]
        )
        query = self._query()
        with _get_conn(self.config.offline_store) as conn, conn.cursor() as cur:
            # the plan is index probes in nested loops: compiling it took seconds a chunk
            cur.execute("SET LOCAL jit = off")
            cur.execute(f"CREATE TEMPORARY TABLE smap_entity_upload ({columns}) ON COMMIT DROP")
            with cur.copy("COPY smap_entity_upload FROM STDIN WITH (FORMAT csv)") as copy:
                copy.write(_csv(upload))
            cur.execute(
                "CREATE TEMPORARY TABLE smap_entity_rows ON COMMIT DROP AS SELECT "
                f"{', '.join(_quoted(c) for c in [ROW, *keys])}, "
                f"timestamptz 'epoch' + {_quoted(MICROS)} * interval '1 microsecond' "
                f"AS {_quoted(self._ts)} FROM smap_entity_upload"
            )
            cur.execute("ANALYZE smap_entity_rows")  # a fresh table: let the planner count it
            cur.execute(f"SELECT * FROM ({query}) AS q LIMIT 0")
            assert cur.description is not None  # a SELECT describes its columns
            names = [d.name for d in cur.description]
            types = {d.name: pg_type_code_to_arrow(d.type_code) for d in cur.description}
            out = io.BytesIO()
            with cur.copy(f"COPY ({query}) TO STDOUT WITH (FORMAT csv, NULL '{NULL}')") as copy:
                for block in copy:
                    out.write(block)
        if not out.getvalue():  # no entity rows: Arrow reads no table from an empty CSV
            joined = pa.table({n: pa.array([], types[n]) for n in names})
        else:
            joined = _read_csv(out.getvalue(), names, types)
        if joined.num_rows != len(entity):  # one row per entity row, by construction
            raise RuntimeError(f"the as-of join gave {joined.num_rows} rows for {len(entity)}")
        rows = joined[ROW].to_numpy()
        if not (rows == np.arange(len(entity))).all():  # back in entity-row order
            joined = joined.take(np.argsort(rows, kind="stable"))
        result = pa.Table.from_pandas(entity, preserve_index=False)
        for name in names[1:]:
            result = result.append_column(name, joined[name])
        return result


class AsofPostgreSQLOfflineStore(PostgreSQLOfflineStore):
    """Feast's PostgreSQL offline store; only the historical join is an as-of join."""

    @staticmethod
    def get_historical_features(
        config,
        feature_views: list[FeatureView],
        feature_refs: list[str],
        entity_df: pd.DataFrame | str | None,
        registry,
        project: str,
        full_feature_names: bool = False,
        filter_by_created_timestamp: bool = False,
        **kwargs: Any,
    ) -> RetrievalJob:
        if not isinstance(entity_df, pd.DataFrame):
            raise TypeError("the as-of PostgreSQL store takes entity rows as a pandas DataFrame")
        schema = dict(zip(entity_df.columns, entity_df.dtypes, strict=True))
        ts = offline_utils.infer_event_timestamp_from_entity_df(entity_schema=schema)
        expected = offline_utils.get_expected_join_keys(project, feature_views, registry)
        offline_utils.assert_expected_columns_in_entity_df(schema, expected, ts)
        entity = entity_df.reset_index(drop=True)
        entity[ts] = pd.to_datetime(entity[ts], utc=True)
        joins = [
            join
            for i, view in enumerate(feature_views)
            if (join := view_join(view, i, feature_refs, ts, full_feature_names)).features
        ]
        odfvs = OnDemandFeatureView.get_requested_odfvs(feature_refs, project, registry)
        return AsofRetrievalJob(
            config,
            entity,
            ts,
            joins,
            full_feature_names,
            [NarrowedOnDemandView(v) for v in odfvs if v.mode != "substrait"],
            RetrievalMetadata(
                features=feature_refs,
                keys=list(set(entity.columns) - {ts}),
                min_event_timestamp=entity[ts].min(),
                max_event_timestamp=entity[ts].max(),
            ),
        )
