"""The dashboard's sentiment section on the quick preset's comments (VADER: nothing trained),
rendered in Debian's headless chromium from the local server: both charts drawn, no console
message, and its exports hold the per-post and per-author shares."""

from __future__ import annotations

import re
import subprocess
import threading

import pandas as pd
import pytest

from analytics.report import make_server, write_report
from configs.settings import load_settings
from pipelines import flows
from tests.e2e.browser import chromium

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    root = tmp_path_factory.mktemp("sentiment-page")
    settings = load_settings("local", env={"SMAP_DATA_DIR": str(root / "smap")})
    flows.simulate(settings)  # comments are all the section reads: no ETL
    return write_report(settings, root / "dashboard")


def test_section_has_two_charts_and_the_most_negative_threads(page):
    html = page.path.read_text(encoding="utf-8")
    assert "<h2>Audience sentiment</h2>" in html
    assert re.findall(r'Plotly\.newPlot\(\s*"(sentiment-\d)"', html) == [
        "sentiment-0",
        "sentiment-1",
    ]
    assert "classified by VADER (no sentiment champion registered)" in html
    per_post = pd.read_csv(page.folder / "exports" / "post_sentiment.csv")
    shares = per_post[["negative_share", "neutral_share", "positive_share"]].sum(axis=1)
    assert shares.round(6).eq(1.0).all()
    authors = pd.read_csv(page.folder / "exports" / "author_sentiment.csv")
    assert authors.comments.sum() == per_post.comments.sum()


def test_chromium_draws_the_sentiment_charts_without_console_messages(page, tmp_path):
    server = make_server(page.folder, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        done = subprocess.run(
            [
                chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
                "--virtual-time-budget=15000", "--window-size=1300,3000", "--dump-dom",
                f"http://127.0.0.1:{server.server_port}/",
            ],
            capture_output=True,
            timeout=180,
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    log = done.stderr.decode(errors="replace")
    assert "CONSOLE" not in log, [line for line in log.splitlines() if "CONSOLE" in line]
    drawn = done.stdout.decode(errors="replace")
    for chart in ("sentiment-0", "sentiment-1"):
        div = drawn[drawn.index(f'id="{chart}"') :][:3000]
        assert 'class="main-svg"' in div, chart
