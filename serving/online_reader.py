"""Online feature reads for a request batch straight from the rows Feast materialized.

Feast's `get_online_features` spends ~9 ms on one draft post, almost all of it outside the
store: entity rows turned into protos, a response proto assembled field by field, converted to
Python, the on-demand views fed through the same conversions again. This reader asks the same
tables for the same keys (Feast's own key encoding and table layout: one SQL query per batch on
SQLite, one pipeline of HMGETs per batch on Redis), decodes each stored value once, and runs
the service's on-demand views' own functions as Feast runs them. A test holds its answers
equal to `get_online_features` on both online stores; `serving.online_reads: feast` switches
back to Feast's path.
"""

from __future__ import annotations

import functools
import sqlite3
import struct
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from configs.settings import Settings
from feature_repo.online_state import quick_redis_client

KEY_CACHE_SIZE = 100_000  # serialized entity keys remembered per view


@dataclass(frozen=True)
class ViewRead:
    """One feature view of the service: its join keys (with their value kinds) and the
    features the service asks of it."""

    name: str
    join_keys: tuple[str, ...]
    string_keys: frozenset[str]  # join keys stored as strings (the rest are int64)
    features: tuple[str, ...]


@dataclass(frozen=True)
class OnDemandRead:
    view: Any  # feast OnDemandFeatureView
    inputs: tuple[str, ...]  # source features and request fields it reads
    outputs: tuple[str, ...]  # the features the service asks of it

    def transform(self, inputs: dict[str, list]) -> dict[str, list]:
        """The view's own function on a dict of lists, as Feast runs a batch python-mode view
        (its `transform_dict` adds full-name copies of every input first, which ours never
        read); any other mode goes through `transform_dict`."""
        view = self.view
        if view.mode == "python" and not view.singleton:
            return view.feature_transformation.udf(inputs)
        return view.transform_dict(inputs)


@dataclass(frozen=True)
class ServicePlan:
    views: tuple[ViewRead, ...]
    on_demand: tuple[OnDemandRead, ...]


def _value(proto) -> object:
    """A stored ValueProto as a Python value (None when unset or null), as Feast's to_dict."""
    kind = proto.WhichOneof("val")
    if kind is None or kind == "null_val":
        return None
    return getattr(proto, kind)


@functools.cache
def _redis_fields(view: str, features: tuple[str, ...]) -> list[bytes]:
    """The hash fields Feast stores a view's features under (murmur3 of "view:feature")."""
    import mmh3

    return [struct.pack("<I", mmh3.hash(f"{view}:{f}", signed=False)) for f in features]


def null_nan(value: object) -> object:
    """NaN out of an on-demand view is null, as Feast's proto round trip makes it."""
    return None if isinstance(value, float) and value != value else value


def service_plan(store, service_name: str, extra_refs: Sequence[str] = ()) -> ServicePlan:
    """What a feature service reads online: its feature views (and those its on-demand views
    take as sources, as Feast resolves them), plus `extra_refs` ("view:feature")."""
    from feast.value_type import ValueType

    service = store.get_feature_service(service_name, allow_cache=True)
    odfv_names = {v.name for v in store.list_on_demand_feature_views(allow_cache=True)}
    wanted: dict[str, list[str]] = {}

    def want(view: str, features: Sequence[str]) -> None:
        names = wanted.setdefault(view, [])
        names += [f for f in features if f not in names]

    on_demand = []
    for projection in service.feature_view_projections:
        if projection.name not in odfv_names:
            want(projection.name, [f.name for f in projection.features])
            continue
        odfv = store.get_on_demand_feature_view(projection.name, allow_registry_cache=True)
        inputs: list[str] = []
        for source in odfv.source_feature_view_projections.values():
            want(source.name, [f.name for f in source.features])
            inputs += [f.name for f in source.features]
        for request in odfv.source_request_sources.values():
            inputs += [f.name for f in request.schema]
        outputs = tuple(f.name for f in projection.features)
        on_demand.append(OnDemandRead(odfv, tuple(inputs), outputs))
    for ref in extra_refs:
        view, _, feature = ref.partition(":")
        want(view, [feature])

    views = []
    for name, features in wanted.items():
        view = store.get_feature_view(name, allow_registry_cache=True)
        columns = {c.name: c for c in view.entity_columns}
        keys = tuple(view.join_keys)
        strings = frozenset(k for k in keys if columns[k].dtype.to_value_type() == ValueType.STRING)
        views.append(ViewRead(name, keys, strings, tuple(features)))
    return ServicePlan(tuple(views), tuple(on_demand))


class DirectOnlineReader:
    """Reads a `ServicePlan` for a batch of entity rows from the profile's online store."""

    def __init__(self, settings: Settings, project: str, serialization_version: int = 3):
        self.settings = settings
        self.project = project
        self.version = serialization_version
        self._local = threading.local()  # one SQLite connection per thread
        self._redis = None
        self._redis_lock = threading.Lock()
        self._keys: dict[str, dict[tuple, bytes]] = {}
        self._read_rows = ONLINE_READS[settings.feast.online_store]

    # -- keys --------------------------------------------------------------------------------
    def _entity_key(self, view: ViewRead, values: tuple) -> bytes:
        """Feast's serialized entity key, remembered (authors and tags come back often)."""
        cache = self._keys.setdefault(view.name, {})
        key = cache.get(values)
        if key is None:
            if len(cache) >= KEY_CACHE_SIZE:
                cache.clear()
            key = cache[values] = self._serialize(view, values)
        return key

    def _serialize(self, view: ViewRead, values: tuple) -> bytes:
        from feast.infra.key_encoding_utils import serialize_entity_key
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.protos.feast.types.Value_pb2 import Value

        protos = [
            Value(string_val=str(v)) if k in view.string_keys else Value(int64_val=int(v))
            for k, v in zip(view.join_keys, values, strict=True)
        ]
        key = EntityKey(join_keys=list(view.join_keys), entity_values=protos)
        return serialize_entity_key(key, entity_key_serialization_version=self.version)

    # -- stores ------------------------------------------------------------------------------
    @functools.cached_property
    def _sqlite_path(self) -> Path:
        """The store's file, resolved once (`Path.resolve` is a tenth of a one-draft read)."""
        return self.settings.online_store_db

    def _sqlite(self) -> sqlite3.Connection:
        """This thread's connection to the online store file; a new one when the file was
        replaced (a deleted store loaded again in full), which an open connection would
        never see."""
        path = self._sqlite_path
        try:
            inode = path.stat().st_ino
        except FileNotFoundError:  # connecting would create an empty file
            raise sqlite3.OperationalError(f"unable to open database file {path}") from None
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.inode != inode:
            conn.close()
            conn = None
        if conn is None:
            conn = self._local.conn = sqlite3.connect(str(path), check_same_thread=False)
            self._local.inode = inode
        return conn

    def _read_sqlite(self, reads: list[tuple[ViewRead, list[bytes]]]) -> list[dict[bytes, dict]]:
        """One query for every view: (view number, key, feature, value) rows."""
        from feast.protos.feast.types.Value_pb2 import Value

        parts, params = [], []
        for i, (view, keys) in enumerate(reads):
            table = f'"{self.project}_{view.name}"'
            parts.append(
                f"SELECT {i}, entity_key, feature_name, value FROM {table} "
                f"WHERE entity_key IN ({','.join('?' * len(keys))})"
            )
            params += keys
        found: list[dict[bytes, dict]] = [{} for _ in reads]
        for i, key, feature, blob in self._sqlite().execute(" UNION ALL ".join(parts), params):
            found[i].setdefault(key, {})[feature] = _value(Value.FromString(blob))
        return found

    def _redis_client(self):
        """One client for every request thread: a request waits on Redis at most
        `serving.dependency_timeout_ms` (to connect, then to read) and never retries, so a
        stopped or hung Redis is a quick 503, not seconds of redis-py's backoff."""
        with self._redis_lock:
            if self._redis is None:
                timeout = self.settings.serving.dependency_timeout_ms / 1000
                self._redis = quick_redis_client(self.settings, timeout)
            return self._redis

    def _read_redis(self, reads: list[tuple[ViewRead, list[bytes]]]) -> list[dict[bytes, dict]]:
        """One pipeline of HMGETs for every view (Feast's layout: a hash per entity key and
        project, a field per murmur3 of "view:feature")."""
        from feast.protos.feast.types.Value_pb2 import Value

        project = self.project.encode()
        pipe = self._redis_client().pipeline(transaction=False)
        for view, keys in reads:
            fields = _redis_fields(view.name, view.features)
            for key in keys:
                pipe.hmget(key + project, fields)
        replies = iter(pipe.execute())
        found: list[dict[bytes, dict]] = []
        for view, keys in reads:
            by_key: dict[bytes, dict] = {}
            for key in keys:
                blobs = next(replies)
                if any(b is not None for b in blobs):
                    by_key[key] = {
                        f: None if b is None else _value(Value.FromString(b))
                        for f, b in zip(view.features, blobs, strict=True)
                    }
            found.append(by_key)
        return found

    # -- the batch ---------------------------------------------------------------------------
    def read(self, plan: ServicePlan, rows: dict[str, list]) -> dict[str, list]:
        """Feature values for every row, by feature name (None where the store has none),
        the on-demand views' outputs included."""
        reads, row_keys = [], []
        for view in plan.views:
            per_row = [
                self._entity_key(view, values)
                for values in zip(*(rows[k] for k in view.join_keys), strict=True)
            ]
            reads.append((view, list(dict.fromkeys(per_row))))
            row_keys.append(per_row)
        found = self._read_rows(self, reads)
        out: dict[str, list] = {}
        for (view, _keys), per_row, by_key in zip(reads, row_keys, found, strict=True):
            stored = [by_key.get(key) for key in per_row]
            for feature in view.features:
                out[feature] = [None if s is None else s.get(feature) for s in stored]
        for odfv in plan.on_demand:
            inputs = {name: out[name] if name in out else rows[name] for name in odfv.inputs}
            values = odfv.transform(inputs)
            out.update({name: [null_nan(v) for v in values[name]] for name in odfv.outputs})
        return out

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
        if self._redis is not None:
            self._redis.close()


# feast.online_store -> how the reader asks it for a batch: (reader, [(view, keys)]) -> per view
# {key: {feature: value}} (the store's marks, config and health: online_state.ONLINE_STORES)
ONLINE_READS: dict[
    str, Callable[[DirectOnlineReader, list[tuple[ViewRead, list[bytes]]]], list[dict]]
] = {
    "sqlite": DirectOnlineReader._read_sqlite,
    "redis": DirectOnlineReader._read_redis,
}
