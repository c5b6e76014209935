"""The service's analytics answers: top influencers and one user's segment, read from the tables
`smap analytics run` and `smap segment` write. No model answers them, so they carry no lineage,
only when their table was computed.

The influencer table is read once and kept until the warehouse says it was rewritten (checked
at most every `serving.alias_poll_seconds`), as docs/analytics.md suggests for a service; a
segment lookup goes through `analytics.segments.user_segment` on every call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pandas as pd

from analytics import segments
from analytics.errors import AnalyticsError
from analytics.influence import top_of
from configs.errors import SmapError
from configs.settings import Settings
from ingestion.warehouse import WarehouseError, open_warehouse
from serving.schemas import Influencer, InfluencersResponse, UserSegmentResponse

NETWORK = "influencer_network"
SEGMENTS = "user_segments"


class NotAnswerable(Exception):
    """Input the tables cannot answer (HTTP 400 or 404); the message names the field."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class NotBuilt(RuntimeError):
    """The table is not built yet or the warehouse is down (HTTP 503); the message says why."""


class Insights:
    def __init__(
        self,
        settings: Settings,
        warehouse=None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.settings = settings
        self._warehouse = warehouse
        self._clock = clock
        self._lock = threading.Lock()
        self._network: pd.DataFrame | None = None
        self._version: str | None = None
        self._checked = float("-inf")

    def warehouse(self):
        """The profile's warehouse, opened on first use (a service starts without it)."""
        if self._warehouse is None:
            self._warehouse = open_warehouse(self.settings)
        return self._warehouse

    def network(self) -> pd.DataFrame:
        """`influencer_network`, re-read when rewritten since the last check. A ranking already
        read keeps being served while the warehouse cannot be asked (asked again after the
        next interval), as the champions are through a registry outage."""
        with self._lock:
            now = self._clock()
            if self._network is not None and now - self._checked < self.recheck_seconds:
                return self._network
            try:
                self._recheck()
            except (SmapError, WarehouseError):
                if self._network is None:
                    raise
            self._checked = now
            return self._network

    def _recheck(self) -> None:
        warehouse = self.warehouse()
        if not warehouse.exists(NETWORK):
            raise NotBuilt(f"{NETWORK} is not built yet (run `smap analytics run`)")
        version = warehouse.version([NETWORK])
        if version != self._version:
            self._network, self._version = warehouse.read(NETWORK), version

    @property
    def recheck_seconds(self) -> float:
        return self.settings.serving.alias_poll_seconds

    def top_influencers(self, category: str | None, n: int) -> InfluencersResponse:
        """The `n` best-ranked accounts, optionally of one category."""
        network = _guarded(self.network)
        try:
            top = top_of(network, category, n)
        except AnalyticsError as exc:
            raise NotAnswerable(str(exc), 400) from None
        fields = list(Influencer.model_fields)
        return InfluencersResponse(
            influencers=[Influencer(**row) for row in top[fields].to_dict("records")],
            category=category,
            computed_at=pd.Timestamp(network.computed_at.max()).to_pydatetime(),
        )

    def user_segment(self, user_id: int) -> UserSegmentResponse:
        """The segment `smap segment` gave one user, with its readable profile."""

        def lookup():
            warehouse = self.warehouse()
            if not warehouse.exists(SEGMENTS):
                raise NotBuilt(segments.NOT_SEGMENTED)
            return segments.user_segment(warehouse, user_id)

        try:
            found = _guarded(lookup)
        except AnalyticsError as exc:
            raise NotAnswerable(str(exc), 404) from None
        return UserSegmentResponse(
            user_id=found.user_id,
            segment=found.segment,
            name=found.name,
            description=found.description,
            model_version=found.model_version,
            computed_at=found.assigned_at,
        )


def _guarded(read):
    """`read()`, with a warehouse failure (unreachable, locked) turned into NotBuilt."""
    try:
        return read()
    except AnalyticsError:
        raise
    except (SmapError, WarehouseError) as exc:
        raise NotBuilt(str(exc).splitlines()[0]) from None
