"""Model experiments in the service: the running experiment of each task, its challenger
loaded beside the champion, and the shadow scorer that runs it off the request path.

The experiment is read from the registry (`training/experiments.py`) by a poller like the
champion alias, so every worker follows `smap experiment start/stop` within
`serving.alias_poll_seconds`. A registry outage keeps the experiment as it was last read.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from serving.models import Champion, load_champion
from serving.models import _no_mlflow_db_traceback as one_line_outage  # the champion poll's
from serving.poller import Poller
from training.experiments import CHALLENGER, Experiment, running_experiment

log = logging.getLogger(__name__)
SHADOW_QUEUE = 5_000  # requests waiting for the shadow at most; past it one is not shadowed
SHADOW_SECONDS = 0.25  # how often the shadow scores what waits, in one batch


@dataclass(frozen=True)
class Running:
    experiment: Experiment
    challenger: Champion  # arm = "challenger"


class Challengers:
    """The running experiment of each task and its loaded challenger; `refresh` follows the
    registry's experiment tags."""

    def __init__(self, client, tasks: tuple[str, ...]):
        self.client, self.tasks = client, tasks
        self._running: dict[str, Running] = {}
        self._lock = threading.Lock()

    def get(self, task: str) -> Running | None:
        return self._running.get(task)  # one dict read: never half an experiment

    def running(self) -> list[Experiment]:
        return [r.experiment for r in self._running.values()]

    def refresh(self) -> list[str]:
        """Load the challenger of every experiment started since the last poll, drop those
        stopped; returns what changed. A failure keeps what was read before."""
        changed = []
        with self._lock:
            for task in self.tasks:
                try:
                    with one_line_outage():
                        experiment = running_experiment(self.client, task)
                except Exception as exc:  # noqa: BLE001 - an outage: keep the experiment
                    log.debug("%s: experiment not read: %s", task, exc)
                    continue
                current = self._running.get(task)
                if experiment is None:
                    if current is not None:
                        del self._running[task]
                        changed.append(f"{task}: experiment {current.experiment.id} stopped")
                    continue
                if current is not None and current.experiment == experiment:
                    continue
                try:
                    version = self.client.get_model_version(task, str(experiment.challenger))
                    model = load_champion(self.client, task, version)
                except Exception:
                    log.exception("%s: challenger v%s failed to load", task, experiment.challenger)
                    continue
                challenger = dataclasses.replace(model, arm=CHALLENGER)
                self._running[task] = Running(experiment, challenger)
                changed.append(
                    f"{task}: experiment {experiment.id} ({experiment.mode}, "
                    f"v{experiment.challenger})"
                )
        return changed


def experiment_poller(challengers: Challengers, seconds: float) -> Poller:
    """Refreshes the experiments every `seconds`, logging what started or stopped."""
    return Poller(challengers.refresh, seconds, "experiment-poller", "model experiment", log)


class ShadowScorer:
    """Scores challengers on the inputs champions answered, off the request path: a request
    only appends its inputs to a list; one background thread takes the list every `seconds`
    and hands it to `score` whole, so a challenger predicts once per batch, not per request
    (one model call's fixed cost, and the GIL, are shared by the whole batch). Past `queue`
    waiting requests a request is not shadowed (counted in `skipped`); a failing batch is
    counted in `failed` (its requests), never raised."""

    def __init__(self, score: Callable[[list], None], seconds: float = SHADOW_SECONDS,
                 queue: int = SHADOW_QUEUE):  # fmt: skip
        self.score, self.seconds, self.queue = score, seconds, queue
        self._waiting: list = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.scored = self.skipped = self.failed = 0

    def submit(self, item) -> bool:
        with self._lock:
            if len(self._waiting) >= self.queue:
                self.skipped += 1
                return False
            self._waiting.append(item)
        if self._thread is None:
            self._start()
        return True

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="shadow", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.seconds):
            self.drain()

    def drain(self) -> None:
        """Score what is waiting now, as one batch."""
        with self._lock:
            batch, self._waiting = self._waiting, []
        if not batch:
            return
        try:
            self.score(batch)
            self.scored += len(batch)
        except Exception:
            self.failed += len(batch)
            log.warning("shadow scoring of %d requests failed", len(batch), exc_info=True)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=5)
