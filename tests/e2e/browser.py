"""Pages rendered in Debian's headless chromium for the page tests: the DOM after the scripts
ran, a screenshot, and how much of it is drawn."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest


def chromium() -> str:
    path = shutil.which("chromium")
    if not path:
        pytest.skip("Debian's `chromium` is not installed (`make chromium` as root)")
    return path


def render(url: str, folder: Path, name: str) -> str:
    """The page's DOM after its scripts ran (a virtual clock of 20 s), and a screenshot."""
    done = subprocess.run(
        [
            chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            f"--user-data-dir={folder / 'profile'}", "--virtual-time-budget=20000",
            "--window-size=1400,1000", f"--screenshot={folder / (name + '.png')}",
            "--dump-dom", url,
        ],
        capture_output=True,
        timeout=180,
        cwd=folder,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return done.stdout.decode(errors="replace")


def inked(shot: Path) -> float:
    """Share of the screenshot's pixels that are not near-white."""
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("RGB"))
    return float((pixels.min(axis=2) < 240).mean())
