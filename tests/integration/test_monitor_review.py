"""Drift reports for review: a real Evidently drift report renders in headless Chromium (its
drift table is drawn and names the shifted columns), and `smap monitor ui` serves the index
and the reports folder, and nothing outside it.

No training: the reference is a hand-made sketch of a synthetic frame, the current window the
same frame with two columns shifted.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from configs.settings import DriftThresholds
from training.reference import PREDICTION, Reference, column_kinds, sketch

pytestmark = pytest.mark.integration

IN_CI = os.environ.get("CI", "").lower() == "true"
SHIFTED = {"follower_count", "media_type"}
STEADY = {"caption_length", "hour_of_day", "language"}
ROWS = 3_000


def posts(rng: np.random.Generator, shifted: bool) -> pd.DataFrame:
    """Post features and predictions; `shifted` moves follower counts, media mix, predictions."""
    return pd.DataFrame(
        {
            "follower_count": rng.lognormal(6.0 + (1.5 if shifted else 0.0), 1.0, ROWS),
            "caption_length": rng.normal(120, 30, ROWS),
            "hour_of_day": rng.integers(0, 24, ROWS).astype(float),
            "media_type": rng.choice(
                ["image", "video", "carousel"],
                ROWS,
                p=[0.1, 0.3, 0.6] if shifted else [0.6, 0.3, 0.1],
            ),
            "language": rng.choice(["en", "es", "pt"], ROWS, p=[0.7, 0.2, 0.1]),
            PREDICTION: rng.normal(0.08 if shifted else 0.05, 0.01, ROWS),
        }
    )


@pytest.fixture(scope="module")
def drift_check():
    """(result, snapshot) of a real Evidently drift run on a shifted window."""
    from monitoring.drift import run_drift

    rng = np.random.default_rng(7)
    training, live = posts(rng, shifted=False), posts(rng, shifted=True)
    columns = list(training.columns)
    reference = Reference(
        "engagement", "run-hand-made", sketch(training, columns),
        column_kinds(training, columns), ROWS, "r2", 0.4, {},
    )  # fmt: skip
    result, snapshot = run_drift(reference, live, DriftThresholds())
    assert {c.column for c in result.drifted_columns} == SHIFTED  # the given, checked once
    return result, snapshot


@pytest.fixture(scope="module")
def report_html(drift_check, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("report") / "drift.html"
    drift_check[1].save_html(str(path))
    return path


def chromium() -> str:
    path = shutil.which("chromium")
    if path:
        return path
    why = (
        "Debian's `chromium` is not installed: `make test` installs it when run as root with "
        "apt-get; otherwise `apt-get install -y chromium`"
    )
    if IN_CI:
        pytest.fail(f"required under CI=true: {why}")
    pytest.skip(why)


def headless(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    """Chromium renders `page` (scripts run on a virtual clock) with a throwaway profile."""
    return subprocess.run(
        [
            chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            f"--user-data-dir={profile}", "--virtual-time-budget=15000", *args, page.as_uri(),
        ],
        capture_output=True,
        timeout=180,
    )  # fmt: skip


class TableRows(HTMLParser):
    """The text of every rendered table row, cell by cell (script and style text left out)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._hidden = 0

    def handle_starttag(self, tag, attrs) -> None:
        if tag in ("script", "style"):
            self._hidden += 1
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag) -> None:
        if tag in ("script", "style"):
            self._hidden -= 1
        elif tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data) -> None:
        if not self._hidden and self._cell is not None:
            self._cell.append(data)


@pytest.mark.browser
def test_report_screenshot_in_headless_chromium_is_not_blank(report_html, tmp_path):
    from PIL import Image

    shot = tmp_path / "report.png"
    done = headless(
        report_html, tmp_path / "chromium", f"--screenshot={shot}", "--window-size=1400,2000"
    )

    assert shot.is_file(), done.stderr.decode(errors="replace")[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[:2] == (2000, 1400)
    inked = float((pixels.min(axis=2) < 240).mean())
    colours = len(np.unique(pixels.reshape(-1, 3), axis=0))
    assert inked > 0.05, f"only {inked:.1%} of the screenshot is not white"
    assert colours > 200, f"only {colours} distinct colours: charts did not render"


@pytest.mark.browser
def test_rendered_drift_table_names_the_drifted_columns(report_html, tmp_path):
    raw = TableRows()
    raw.feed(report_html.read_text())
    assert raw.rows == []  # before scripts run the page has no table: Chromium must draw it

    done = headless(report_html, tmp_path / "chromium", "--dump-dom")
    rendered = TableRows()
    rendered.feed(done.stdout.decode(errors="replace"))

    verdicts = {row[1]: row for row in rendered.rows if len(row) > 5 and row[1] in SHIFTED | STEADY}
    assert set(verdicts) == SHIFTED | STEADY, rendered.rows
    for column in SHIFTED:
        assert "Detected" in verdicts[column], verdicts[column]
    for column in STEADY:
        assert "Not Detected" in verdicts[column], verdicts[column]


# --- the review server ----------------------------------------------------------------------


def published(settings, drift_check) -> Path:
    """A check's report written where `publish` writes it, and its row in `drift_checks`."""
    from dataclasses import asdict

    from ingestion.warehouse import open_warehouse
    from monitoring.checks import CheckResult, record, write_report

    drift, snapshot = drift_check
    now = datetime.now(UTC)
    result = CheckResult(
        check_id=uuid.uuid4().hex[:12], task="engagement", version=3, run_id="run-hand-made",
        checked_at=now, window_start=now, window_end=now, rows=ROWS, labelled=0,
        drifted_share=drift.drifted_share,
        drifted_columns=[asdict(c) for c in drift.drifted_columns],
        prediction_score=drift.prediction.score, label_score=float("nan"), metric="r2",
        quality_value=float("nan"),
        test_value=0.4, verdict="drift", reasons=["data drift"],
    )  # fmt: skip
    html, data = write_report(settings, result, snapshot)
    result = CheckResult(**{**asdict(result), "report": str(html), "report_json": str(data)})
    record(open_warehouse(settings), result)
    return html


def get(port: int, path: str) -> tuple[int, str, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path)  # sent as written: no client-side dot removal
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        connection.close()


@pytest.fixture
def review_server(local_settings):
    from monitoring.review import make_server

    server = make_server(local_settings, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def test_index_lists_the_check_and_links_its_report(local_settings, drift_check, review_server):
    report = published(local_settings, drift_check)

    status, kind, body = get(review_server, "/")
    page = body.decode()

    assert status == 200 and kind.startswith("text/html")
    link = f"reports/engagement/{report.name}"
    assert f'href="{link}"' in page
    assert "engagement" in page and "v3" in page and ">drift</span>" in page
    status, kind, served = get(review_server, "/" + link)
    assert status == 200 and kind.startswith("text/html")
    assert served == report.read_bytes()
    status, kind, _ = get(review_server, "/" + link.replace(".html", ".json"))
    assert status == 200 and kind == "application/json"


def test_nothing_outside_the_reports_folder_is_served(local_settings, drift_check, review_server):
    report = published(local_settings, drift_check)
    secret = local_settings.reports_dir.parent / "secret.html"  # exists, two levels up
    secret.write_text("<p>not a report</p>")

    for path in (
        "/../../etc/passwd",
        "/reports/../../../../../../etc/passwd",
        "/reports/%2e%2e/%2e%2e/secret.html",
        "/reports/../../secret.html",
        "/reports//etc/passwd",
        "/reports/engagement/missing.html",
        "/" + report.name,
    ):
        status, _, body = get(review_server, path)
        assert status == 404, path
        assert b"not a report" not in body and b"root:" not in body


def test_monitor_ui_serves_until_ctrl_c(local_settings):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "SMAP_PROFILE": "local", "SMAP_DATA_DIR": str(local_settings.data_dir)}
    server = subprocess.Popen(
        [sys.executable, "-m", "pipelines", "monitor", "ui", "--port", str(port)],
        env=env,
        cwd=Path(__file__).parents[2],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # Ctrl-C reaches it as from a terminal, also when the test run itself was started in
        # the background (which leaves SIGINT ignored in every child)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline, status, page = time.monotonic() + 120, None, b""
        while time.monotonic() < deadline and server.poll() is None:
            try:
                status, _, page = get(port, "/")
                break
            except OSError:
                time.sleep(0.3)
        assert status == 200, server.stderr.read().decode() if server.poll() is not None else ""
        assert b"No checks recorded yet" in page

        server.send_signal(signal.SIGINT)
        code = server.wait(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert code == 0, server.stderr.read().decode()
    with pytest.raises(OSError):
        get(port, "/")
