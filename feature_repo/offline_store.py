"""The local offline store: Feast's DuckDB store with an as-of point-in-time join.

Feast's DuckDB store finds each entity row's feature row by joining every feature row of the
key inside the TTL window, then keeping the newest (a window function over the product). A
draft-post service reads nine views, one of them with a ten-year TTL, so that product is
large. DuckDB's ASOF join answers the same question directly: the newest feature row at or
before the entity row's timestamp; a row older than the view's TTL is then treated as absent.
That is Feast's point-in-time semantics (TTL included), at the cost of a sorted merge.

Everything else (reading Parquet sources, field mappings, on-demand views, the retrieval job,
materialization) is Feast's DuckDB store, unchanged. Selected in feature_store.yaml with
`type: feature_repo.offline_store.AsofDuckDBOfflineStore`.
"""

from __future__ import annotations

from typing import Literal

import ibis
import ibis.expr.datatypes as dt
import pandas as pd
from feast.feature_view import FeatureView
from feast.infra.offline_stores import offline_utils
from feast.infra.offline_stores.duckdb import (
    DuckDBOfflineStore,
    DuckDBOfflineStoreConfig,
    _read_data_source,
    _write_data_source,
)
from feast.infra.offline_stores.ibis import IbisRetrievalJob
from feast.infra.offline_stores.offline_store import RetrievalMetadata
from feast.on_demand_feature_view import OnDemandFeatureView

STORE_TYPE = "feature_repo.offline_store.AsofDuckDBOfflineStore"


class AsofDuckDBOfflineStoreConfig(DuckDBOfflineStoreConfig):
    type: Literal["feature_repo.offline_store.AsofDuckDBOfflineStore"] = STORE_TYPE  # type: ignore[assignment]


def _view_refs(view: FeatureView, feature_refs: list[str]) -> list[str]:
    prefix = f"{view.projection.name_to_use()}:"
    return [ref.split(":", 1)[1] for ref in feature_refs if ref.startswith(prefix)]


def _feature_table(config, view: FeatureView, i: int, features: list[str], full_names: bool):
    """The view's source with the names the service uses: keys and timestamp made private to
    this view (`__k{i}_...`, `__ts{i}`), features under their (full) feature names."""
    source = view.batch_source
    assert source is not None  # every view of the repo reads a batch source
    table = _read_data_source(source, str(config.repo_path))
    for column, name in source.field_mapping.items():
        if column in table.columns:
            table = table.rename({name: column})
    keys = view.projection.join_key_map or {e.name: e.name for e in view.entity_columns}
    out_name = (
        (lambda f: f"{view.projection.name_alias or view.name}__{f}")
        if full_names
        else (lambda f: f)
    )
    return (
        table.select(
            **{f"__k{i}_{k}": table[k] for k in keys},
            **{f"__ts{i}": table[source.timestamp_field].cast(dt.Timestamp(timezone="UTC"))},
            **{out_name(f): table[f] for f in features},
        ),
        keys,
        [out_name(f) for f in features],
    )


def asof_join(config, entity: ibis.Table, views: list[FeatureView], refs: list[str], ts: str,
              full_names: bool, span: tuple[pd.Timestamp, pd.Timestamp]) -> ibis.Table:  # fmt: skip
    """Each entity row once, beside the newest row of each view at or before its timestamp,
    or nulls when there is none or it is older than the view's TTL. Only feature rows that can
    match an entity row of `span` (first, last timestamp) are read: a time-ordered chunk of
    entity rows then sorts a slice of each view, not all of it."""
    joined, keep = entity, list(entity.columns)
    first, last = span
    for i, view in enumerate(views):
        table, keys, features = _feature_table(config, view, i, _view_refs(view, refs), full_names)
        window = table[f"__ts{i}"] <= ibis.literal(last.to_pydatetime())
        if view.ttl:
            earliest = (first - view.ttl).to_pydatetime()
            window &= table[f"__ts{i}"] >= ibis.literal(earliest)
        table = table.filter(window)
        on = joined[ts] >= table[f"__ts{i}"]
        same_key = [joined[entity_key] == table[f"__k{i}_{k}"] for k, entity_key in keys.items()]
        joined = joined.asof_join(table, on=on, predicates=same_key)
        if view.ttl:
            fresh = joined[f"__ts{i}"] >= joined[ts] - ibis.interval(
                seconds=int(view.ttl.total_seconds())
            )
            joined = joined.mutate(
                **{f: fresh.ifelse(joined[f], ibis.null().cast(joined[f].type())) for f in features}
            )
        keep += features
        joined = joined.select(*keep)
    return joined


class NarrowedOnDemandView:
    """An on-demand view handed only its own input columns. Feast turns the table it is given
    into Python lists for a python-mode view: given the whole joined table (sixty columns),
    that conversion, not the transformation, took most of the time."""

    def __init__(self, view: OnDemandFeatureView):
        self._view = view
        self._inputs = {
            name
            for projection in view.source_feature_view_projections.values()
            for f in projection.features
            for name in (f.name, f"{projection.name}__{f.name}")
        } | {f.name for source in view.source_request_sources.values() for f in source.schema}

    def __getattr__(self, name: str):
        return getattr(self._view, name)

    def transform_arrow(self, table, full_feature_names: bool = False):
        narrow = table.select([c for c in table.column_names if c in self._inputs])
        return self._view.transform_arrow(narrow, full_feature_names)


class AsofDuckDBOfflineStore(DuckDBOfflineStore):
    """Feast's DuckDB offline store; only the historical join is an ASOF join."""

    @staticmethod
    def get_historical_features(
        config,
        feature_views: list[FeatureView],
        feature_refs: list[str],
        entity_df: pd.DataFrame | str,
        registry,
        project: str,
        full_feature_names: bool = False,
        filter_by_created_timestamp: bool = False,
    ):
        if not isinstance(entity_df, pd.DataFrame):
            raise TypeError("the as-of DuckDB store takes entity rows as a pandas DataFrame")
        schema = dict(zip(entity_df.columns, entity_df.dtypes, strict=True))
        ts = offline_utils.infer_event_timestamp_from_entity_df(entity_schema=schema)
        entity_df = entity_df.copy()
        entity_df[ts] = pd.to_datetime(entity_df[ts], utc=True)
        entity = ibis.memtable(entity_df)
        span = (entity_df[ts].min(), entity_df[ts].max())
        joined = asof_join(
            config, entity, feature_views, feature_refs, ts, full_feature_names, span
        )
        odfvs = OnDemandFeatureView.get_requested_odfvs(feature_refs, project, registry)
        return IbisRetrievalJob(
            joined,
            [NarrowedOnDemandView(v) for v in odfvs if v.mode != "substrait"],
            full_feature_names,
            metadata=RetrievalMetadata(
                features=feature_refs,
                keys=list(set(entity_df.columns) - {ts}),
                min_event_timestamp=entity_df[ts].min(),
                max_event_timestamp=entity_df[ts].max(),
            ),
            data_source_writer=_write_data_source,
            staging_location=config.offline_store.staging_location,
            staging_location_endpoint_override=config.offline_store.staging_location_endpoint_override,
            repo_path=str(config.repo_path),
        )
