"""Online feature lookups for a request batch, one Feast call per batch; an unreachable online
store becomes `OnlineStoreDown` with the reason (the next call simply tries again)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from configs.settings import Settings
from feature_repo.online_state import online_store
from feature_repo.store import open_store
from serving.features import SLOT_PROBES
from serving.online_reader import (
    DirectOnlineReader,
    OnDemandRead,
    ServicePlan,
    null_nan,
    service_plan,
)

PING_TIMEOUT_SECONDS = 1.0  # a health check answers at once, whatever the profile's timeouts


class OnlineStoreDown(RuntimeError):
    """The online store did not answer; the message says which and why."""


def _connection_errors() -> tuple[type[BaseException], ...]:
    import redis

    errors: list[type[BaseException]] = [redis.exceptions.RedisError, ConnectionError, OSError]
    try:
        import sqlite3

        errors.append(sqlite3.OperationalError)
    except ImportError:  # pragma: no cover - sqlite3 ships with CPython
        pass
    return tuple(errors)


class OnlineFeatures:
    """The profile's Feast store, read through feature services by name."""

    def __init__(self, settings: Settings, store=None):
        self.settings = settings
        self.store = store or open_store(settings)
        self._refs: dict[str, list[str]] = {}
        self._plans: dict[str, object] = {}
        self.reader = None
        if settings.serving.online_reads == "direct":
            config = self.store.config
            self.reader = DirectOnlineReader(
                settings, config.project, config.entity_key_serialization_version
            )
        self._request_views: dict[str, list | None] = {}
        self._lock = threading.Lock()
        self._errors = _connection_errors()

    def where(self) -> str:
        return online_store(self.settings).where(self.settings)

    def refs(self, service_name: str) -> list[str]:
        """Feature references of a service, plus the hashtag probes for draft services."""
        with self._lock:
            if service_name not in self._refs:
                service = self.store.get_feature_service(service_name, allow_cache=True)
                refs = [
                    f"{p.name_to_use()}:{f.name}"
                    for p in service.feature_view_projections
                    for f in p.features
                ]
                if any(p.name == "draft_hashtags" for p in service.feature_view_projections):
                    refs += SLOT_PROBES
                self._refs[service_name] = refs
            return self._refs[service_name]

    def plan(self, service_name: str):
        """What the direct reader reads for a service (built once per service)."""
        with self._lock:
            if service_name not in self._plans:
                service = self.store.get_feature_service(service_name, allow_cache=True)
                drafts = any(p.name == "draft_hashtags" for p in service.feature_view_projections)
                self._plans[service_name] = service_plan(
                    self.store, service_name, SLOT_PROBES if drafts else ()
                )
            return self._plans[service_name]

    def fetch(self, service_name: str, rows: dict[str, list]) -> dict[str, list]:
        """Feature values for every row, by feature name (None where the store has none)."""
        with self._reachable():
            if self.reader is not None:
                return rows | self.reader.read(self.plan(service_name), rows)
            refs = self.refs(service_name)
            return self.store.get_online_features(features=refs, entity_rows=rows).to_dict()

    @contextmanager
    def _reachable(self) -> Iterator[None]:
        """A connection error of the online store as `OnlineStoreDown` naming the store."""
        try:
            yield
        except self._errors as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise OnlineStoreDown(f"{self.where()} is not reachable: {first}") from None

    def fetch_expanded(self, service_name: str, keys: dict[str, list], expand) -> dict[str, list]:
        """One online lookup of the entity rows `keys`, then the service's on-demand views run
        over the rows `expand(looked_up)` returns as (the key row each new row copies, request
        fields per new row): request data that depends on what the store holds (a forecast
        starts the day after the history it finds) still costs one lookup."""
        plan = self.plan(service_name)
        with self._reachable():
            if self.reader is not None:
                found = keys | self.reader.read(ServicePlan(plan.views, ()), keys)
            else:
                refs = [f"{v.name}:{f}" for v in plan.views for f in v.features]
                found = self.store.get_online_features(features=refs, entity_rows=keys).to_dict()
        index, request = expand(found)
        out = {name: [values[i] for i in index] for name, values in found.items()} | request
        for odfv in plan.on_demand:
            values = odfv.transform({name: out[name] for name in odfv.inputs})
            out.update({name: [null_nan(v) for v in values[name]] for name in odfv.outputs})
        return out

    def request_views(self, service_name: str, varying: set[str]) -> list | None:
        """(on-demand view, its served feature names) for every view of the service computed
        from request data alone; None when a view mixes lookups with a `varying` request
        field (its values then differ per row and only a full lookup is right)."""
        with self._lock:
            if service_name not in self._request_views:
                service = self.store.get_feature_service(service_name, allow_cache=True)
                odfv_names = {v.name for v in self.store.list_on_demand_feature_views()}
                views: list | None = []
                for p in service.feature_view_projections:
                    if p.name not in odfv_names:
                        continue
                    view = self.store.get_on_demand_feature_view(p.name, allow_registry_cache=True)
                    inputs = {
                        f.name for s in view.source_request_sources.values() for f in s.schema
                    }
                    if not view.source_feature_view_projections:
                        assert views is not None  # set to None only just before `break`
                        views.append((view, [f.name for f in p.features]))
                    elif inputs & varying:
                        views = None
                        break
                self._request_views[service_name] = views
            return self._request_views[service_name]

    def fetch_varying(self, service_name: str, row: dict[str, list], varying: dict[str, list]):
        """Feature values of one entity row repeated with each value of the `varying` request
        fields (a draft at many planned times): one online lookup for the row, the on-demand
        views of request data run over every variant with Feast's own transformation.
        Lookups never depend on request data, so every variant shares them."""
        n = len(next(iter(varying.values())))
        views = self.request_views(service_name, set(varying))
        if views is None:  # a lookup-based view reads a varying field: look every row up
            return self.fetch(service_name, {k: v * n for k, v in row.items()} | varying)
        online = {k: v * n for k, v in self.fetch(service_name, row).items()}
        request = {k: v * n for k, v in row.items()} | varying
        for view, names in views:
            values = OnDemandRead(view, (), tuple(names)).transform(request)
            online.update({name: list(values[name]) for name in names})
        return online

    def ping(self) -> str:
        """'' when the online store answers (within a second), else the reason."""
        store = online_store(self.settings)
        path = store.file(self.settings)
        if path is not None and not path.is_file():
            return f"{self.where()} does not exist (materialize first)"
        reason = store.unreachable(self.settings, timeout_seconds=PING_TIMEOUT_SECONDS)
        return f"{self.where()} is not reachable: {reason}" if reason else ""
