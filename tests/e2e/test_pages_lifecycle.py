"""The dashboard's engagement quality, share cascades and lifecycle sections in Debian's headless
chromium, served by `smap report --serve`'s server on the quick preset: every chart of the
three sections is drawn, the page logs nothing to the console, and the screenshot of the
sections (left in the test's temp folder) is not blank."""

from __future__ import annotations

import re
import subprocess
import threading

import numpy as np
import pytest

from analytics.report import make_server, write_report
from configs.settings import load_settings
from pipelines import flows
from pipelines.analytics import run as run_analytics
from tests.e2e.browser import chromium

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
KEYS = ("quality", "cascades", "lifecycle")


def test_chromium_draws_the_lifecycle_sections_without_console_messages(tmp_path):
    from PIL import Image

    settings = load_settings("local", env={"SMAP_DATA_DIR": str(tmp_path / "smap")})
    flows.simulate(settings, preset="quick")
    flows.ingest(settings)
    run_analytics(settings)
    report = write_report(settings, tmp_path / "dashboard")
    page = report.path.read_text(encoding="utf-8")
    charts = re.findall(r'Plotly\.newPlot\(\s*"([a-z]+-\d)"', page)
    ours = [c for c in charts if c.split("-")[0] in KEYS]
    assert len(ours) == 7, ours  # quality 2, cascades 2, lifecycle 3

    server = make_server(report.folder, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    shot = tmp_path / "lifecycle.png"
    try:
        done = subprocess.run(
            [
                chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                f"--user-data-dir={tmp_path / 'chromium'}", "--enable-logging=stderr", "--v=0",
                "--virtual-time-budget=15000", "--window-size=1300,9000", "--dump-dom",
                f"--screenshot={shot}", f"http://127.0.0.1:{server.server_port}/",
            ],
            capture_output=True,
            timeout=180,
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()

    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    log = done.stderr.decode(errors="replace")
    assert "CONSOLE" not in log, [line for line in log.splitlines() if "CONSOLE" in line]
    dom = done.stdout.decode(errors="replace")
    for key in KEYS:  # segments and model health are empty here: nothing was trained
        section = dom[dom.index(f'<section id="{key}">') :]
        assert 'class="note empty"' not in section[: section.index("</section>")], key
    for chart in ours:  # the SVG plotly drew inside each chart's div
        assert 'class="main-svg"' in dom[dom.index(f'id="{chart}"') :][:3000], chart
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    lower = pixels[pixels.shape[0] // 2 :]  # the new sections sit in the page's lower half
    assert float((lower.min(axis=2) < 240).mean()) > 0.03, "the sections' area is nearly blank"
