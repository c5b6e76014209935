"""`smap ui`: the three pages a person looks at after a run, on 127.0.0.1, started and stopped
together: MLflow's UI (experiments, runs, the registry), the drift review page and the
dashboard."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from http.server import ThreadingHTTPServer

import httpx

from analytics import report
from configs.errors import SmapError
from configs.settings import Settings, telemetry_env
from monitoring import review
from pipelines.serving import free_port

LOOPBACK = "127.0.0.1"
MLFLOW_START_SECONDS = 90.0  # MLflow's server imports its app and migrates the store first
# MLflow 3.17's UI picks its GenAI or model-training view from a switch kept in the browser
# (default GenAI), not from the experiments' `mlflow.experimentKind` tag; this query opens
# the model-training one, and the UI keeps it on the links it follows
MODEL_TRAINING_VIEW = "#/experiments?workflowType=machine_learning"


class UiError(SmapError):
    """A page of `smap ui` could not start."""


@dataclass(frozen=True)
class Pages:
    mlflow: str
    review: str
    dashboard: str

    def lines(self) -> dict[str, str]:
        return {
            "MLflow (experiments, registry)": self.mlflow,
            "drift reviews": self.review,
            "dashboard": self.dashboard,
        }


@contextmanager
def _served(server: ThreadingHTTPServer, name: str) -> Iterator[str]:
    """`server` answering on a thread of its own until the block ends."""
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _stop(process: subprocess.Popen) -> None:
    """End MLflow's server and the workers it started (its own process group)."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
        except ProcessLookupError:
            pass


@contextmanager
def _mlflow_ui(settings: Settings, port: int) -> Iterator[str]:
    """MLflow's UI over the profile's tracking store. A profile whose tracking is already an
    HTTP server has its UI there: that address is given and nothing is started."""
    uri = settings.mlflow_tracking_uri
    if uri.startswith(("http://", "https://")):
        yield uri.rstrip("/") + "/"
        return
    port = port or free_port()
    # the store's URI goes by environment, never on a command line other users can list
    env = {
        **os.environ,
        **telemetry_env(settings.telemetry),
        "MLFLOW_BACKEND_STORE_URI": uri,
        "MLFLOW_REGISTRY_STORE_URI": uri,
    }
    command = [sys.executable, "-m", "mlflow", "server", "--host", LOOPBACK]
    command += ["--port", str(port), "--workers", "1"]
    process = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://{LOOPBACK}:{port}/"
    try:
        deadline = time.monotonic() + MLFLOW_START_SECONDS
        while True:
            if process.poll() is not None:
                raise UiError(f"MLflow's UI exited with code {process.returncode} on port {port}")
            try:
                if httpx.get(f"{url}health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise UiError(f"MLflow's UI did not answer on {url} in {MLFLOW_START_SECONDS} s")
            time.sleep(0.5)
        yield url
    finally:
        _stop(process)


@contextmanager
def open_pages(
    settings: Settings, mlflow_port: int = 0, review_port: int = 0, dashboard_port: int = 0
) -> Iterator[Pages]:
    """The three pages serving until the block ends (port 0: a free one); the dashboard is
    written first when it has never been."""
    folder = settings.reports_dir / "dashboard"
    if not (folder / "index.html").is_file():
        report.write_report(settings, folder)
    with ExitStack() as stack:
        board = stack.enter_context(
            _served(report.make_server(folder, dashboard_port, LOOPBACK), "smap-dashboard")
        )
        reviews = stack.enter_context(
            _served(review.make_server(settings, LOOPBACK, review_port), "smap-review")
        )
        mlflow = stack.enter_context(_mlflow_ui(settings, mlflow_port))
        yield Pages(mlflow + MODEL_TRAINING_VIEW, reviews, board)


def run_until_interrupted(settings: Settings, show, **ports: int) -> None:
    """Open the pages, `show(pages)`, and keep them up until Ctrl-C (or SIGTERM)."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with open_pages(settings, **ports) as pages:
            show(pages)
            try:
                while not stop.wait(0.5):
                    pass
            except KeyboardInterrupt:
                pass
    finally:
        signal.signal(signal.SIGTERM, previous)
