"""The dashboard's platform section, rendered in Debian's headless chromium: every chart is
drawn and the page logs no console error (quick preset, simulated, ingested, reported)."""

import re
import subprocess
from pathlib import Path

import pytest

from pipelines.cli import main
from tests.e2e.browser import chromium, inked

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("platforms")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SMAP_DATA_DIR", str(root / "data"))
        assert main(["simulate", "--preset", "quick"]) == 0
        assert main(["ingest"]) == 0
        assert main(["report", "--out", str(root / "dashboard")]) == 0
    return root / "dashboard" / "index.html"


def rendered(page: Path, folder: Path) -> tuple[str, str]:
    """The DOM after the page's scripts ran, and chromium's log (console messages included)."""
    done = subprocess.run(
        [
            chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            f"--user-data-dir={folder / 'profile'}", "--virtual-time-budget=20000",
            "--window-size=1400,4000", f"--screenshot={folder / 'platforms.png'}",
            "--enable-logging=stderr", "--v=0", "--dump-dom", f"{page.as_uri()}#platforms",
        ],
        capture_output=True,
        timeout=180,
        cwd=folder,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")


def test_the_platform_section_draws_its_charts_without_console_errors(dashboard, tmp_path):
    dom, log = rendered(dashboard, tmp_path)
    section = re.search(r'<section id="platforms">(.*?)</section>', dom, re.S)
    assert section, "no platforms section on the page"
    body = section.group(1)
    assert 'class="note empty"' not in body
    charts = body.split('id="platforms-')[1:]  # each chart's div, up to the next one
    assert len(charts) == 3
    assert all('class="main-svg"' in chart for chart in charts)  # plotly drew each one
    for name in ("instagram", "tiktok", "x", "facebook", "youtube", "linkedin"):
        assert f">{name}<" in body  # a row of the comparison table per platform
    # chromium logs every console message (error, warning, uncaught exception) as CONSOLE
    console = [line for line in log.splitlines() if ":CONSOLE" in line]
    assert not console, console
    assert inked(tmp_path / "platforms.png") > 0.05
