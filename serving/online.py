"""Online feature lookups for a request batch, one Feast call per batch; an unreachable online
store becomes `OnlineStoreDown` with the reason. After a failed read the store is taken as down
for a second (`RETRY_AFTER_SECONDS`): requests answer 503 at once and one of them tries again.
`StoreWatch` checks the store in the background: whether it answers, and whether it still holds
what the registry says was materialized into it (docs/serving.md, "Outages")."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from configs.settings import Settings
from feature_repo.online_state import (
    RedisOnline,
    SqliteOnline,
    holds,
    loaded_until,
    online_state,
    online_store,
)
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
RETRY_AFTER_SECONDS = 1.0  # after a failed read: 503 at once for this long, then one try
REGISTRY_RECHECK_SECONDS = 30.0  # how often the watch asks the registry what was materialized
STARTUP_REGISTRY_WAIT = 5.0  # the first check waits this long for the registry at most
MATERIALIZE = "run smap features materialize"  # what an answer's x-smap-degraded says to do
log = logging.getLogger(__name__)


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
        self._down = ""  # why the last read failed ('' once one succeeded)
        self._retry_at = 0.0  # monotonic: before it, reads fail at once with `_down`
        self._down_lock = threading.Lock()

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
        """A connection error of the online store as `OnlineStoreDown` naming the store; while
        the store is taken as down, `OnlineStoreDown` at once (but for one try a second)."""
        with self._down_lock:
            if self._down:
                now = time.monotonic()
                if now < self._retry_at:
                    raise OnlineStoreDown(self._down)
                self._retry_at = now + RETRY_AFTER_SECONDS  # this one tries, others do not
        try:
            yield
        except self._errors as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            reason = f"{self.where()} is not reachable: {first}"
            self.failed(reason)
            raise OnlineStoreDown(reason) from None
        if self._down:
            self.answered()

    def failed(self, reason: str) -> None:
        """The store did not answer: reads fail at once with `reason` for a while."""
        with self._down_lock:
            if not self._down:
                log.warning("online store: %s; answering 503 until it is back", reason)
            self._down, self._retry_at = reason, time.monotonic() + RETRY_AFTER_SECONDS

    def answered(self) -> None:
        """The store answered (a read or the watch's ping): reads go to it again."""
        with self._down_lock:
            if self._down:
                log.info("online store: %s answers again", self.where())
            self._down = ""

    def down(self) -> str:
        """Why the last read of the store failed; '' once one succeeded."""
        return self._down

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
        """'' when the online store answers (within a second, at the first try), else the
        reason."""
        store = online_store(self.settings)
        path = store.file(self.settings)
        if path is not None and not path.is_file():
            return f"{self.where()} does not exist (materialize first)"
        reason = store.unreachable(self.settings, timeout_seconds=PING_TIMEOUT_SECONDS)
        return f"{self.where()} is not reachable: {reason}" if reason else ""


@dataclass(frozen=True)
class StoreHealth:
    down: str = ""  # why the online store does not answer ('' when it does)
    degraded: str = ""  # why it answers without what was materialized into it ('' when whole)


class StoreWatch:
    """The online store's health, checked at most every `seconds` (by a background thread once
    started, else when asked and stale): whether it answers (a ping), and whether it still holds
    everything the Feast registry says was materialized into it: each view's mark (written by
    `smap features materialize` into the store itself, feature_repo/online_state.py) is there
    and not older than the registry's last window. A Redis restarted empty or restored from an
    older snapshot is then `degraded` until the next materialize, instead of every answer
    silently falling back to default features.

    The registry (PostgreSQL on `services`) is read on a thread of its own, at most every
    `REGISTRY_RECHECK_SECONDS`; the check uses the last answer it gave, so a registry outage
    never holds the watch. The store is asked within `serving.dependency_timeout_ms`."""

    def __init__(self, online: OnlineFeatures, seconds: float):
        self.online, self.seconds = online, seconds
        settings = online.settings
        self.timeout = max(settings.serving.dependency_timeout_ms / 1000, PING_TIMEOUT_SECONDS)
        self._state: SqliteOnline | RedisOnline | None = None  # the marks, opened on first use
        self._windows: dict[str, float] = {}  # view -> loaded until, as the registry last said
        self._registry = ThreadPoolExecutor(1, thread_name_prefix="registry-read")
        self._read: Future | None = None
        self._read_due = 0.0
        self._health: StoreHealth | None = None
        self._checked = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def health(self) -> StoreHealth:
        """The last check's answer (checked now when no thread runs and it is stale)."""
        if self._thread is None and (
            self._health is None or time.monotonic() - self._checked >= self.seconds
        ):
            return self.check()
        return self._health or StoreHealth()

    def start(self) -> StoreWatch:
        self.check(registry_wait=STARTUP_REGISTRY_WAIT)  # an answer before any request
        self._thread = threading.Thread(target=self._run, name="online-store-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._registry.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        while not self._stop.wait(self.seconds):
            try:
                self.check()
            except Exception:  # noqa: BLE001 - the watch outlives any one failed check
                log.exception("online store watch: check failed")

    def check(self, registry_wait: float | None = None) -> StoreHealth:
        with self._lock:
            down = self.online.ping()
            degraded = ""
            if not down:
                try:
                    degraded = self._lost(registry_wait)
                except self.online._errors as exc:  # the store went away between the two
                    down = f"{self.online.where()} is not reachable: {exc}"
            if down:
                self.online.failed(down)
            else:
                self.online.answered()
            before, self._health = self._health, StoreHealth(down, degraded)
            self._checked = time.monotonic()
            if degraded and (before is None or before.degraded != degraded):
                log.warning("online store degraded: %s", degraded)
            elif before is not None and before.degraded and not degraded and not down:
                log.info("online store: %s holds what was materialized again", self.online.where())
            return self._health

    def _lost(self, registry_wait: float | None) -> str:
        """'' when every view the registry says was materialized has its mark, else why not."""
        windows = self._registry_windows(registry_wait)
        if not windows:
            return ""  # nothing materialized yet (or the registry never answered)
        if self._state is None:
            self._state = online_state(self.online.settings, self.timeout)
        marks = self._state.marks()
        lost = sorted(view for view, until in windows.items() if not holds(marks.get(view), until))
        if not lost:
            return ""
        where = self.online.where()
        if not marks:
            return f"{where} is empty (no materialization mark): {MATERIALIZE}"
        more = f" and {len(lost) - 3} more views" if len(lost) > 3 else ""
        return (
            f"{where} lost {', '.join(lost[:3])}{more} (missing, or older than the registry's "
            f"last materialization): {MATERIALIZE}"
        )

    def _registry_windows(self, wait: float | None) -> dict[str, float]:
        """The registry's last window per view, refreshed off this thread; `wait`: how long to
        wait for a read started now (None: until it answers, when no thread runs)."""
        now = time.monotonic()
        if self._read is None and now >= self._read_due:
            self._read = self._registry.submit(self._read_registry)
            self._read_due = now + REGISTRY_RECHECK_SECONDS
            if wait is not None or self._thread is None:
                with suppress(Exception):  # a failed read is taken up below
                    self._read.result(timeout=wait)
        if self._read is not None and self._read.done():
            read, self._read = self._read, None
            try:
                self._windows = read.result()
            except Exception as exc:  # noqa: BLE001 - any registry failure: keep the last answer
                log.debug("online store watch: registry not read: %s", exc)
        return self._windows

    def _read_registry(self) -> dict[str, float]:
        views = self.online.store.list_feature_views(allow_cache=True)
        return {v.name: until for v in views if (until := loaded_until(v)) is not None}
