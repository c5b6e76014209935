"""A background thread that follows the registry: it calls a `refresh` every few seconds and
logs what changed (the champions' aliases, the running experiments)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable


class Poller:
    """Calls `refresh` every `seconds` on a daemon thread named `name`; each poll that changed
    something is one `event` line on `log`, with the changes and how long the poll took. A poll
    that raises is logged with its traceback and the next one runs as usual: the service keeps
    following the registry (the refreshes handle registry outages themselves; this catches the
    unforeseen)."""

    def __init__(
        self,
        refresh: Callable[[], list[str]],
        seconds: float,
        name: str,
        event: str,
        log: logging.Logger,
    ):
        self.refresh, self.seconds, self.event, self.log = refresh, seconds, event, log
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Poller:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.seconds):
            started = time.perf_counter()
            try:
                changes = self.refresh()
            except Exception:  # noqa: BLE001 - a poll that fails must not end the polling
                self.log.exception(
                    "%s: the poll failed; polling again in %ss", self.event, self.seconds
                )
                continue
            if changes:
                elapsed = time.perf_counter() - started
                self.log.info("%s: %s (%.2fs)", self.event, ", ".join(changes), elapsed)
