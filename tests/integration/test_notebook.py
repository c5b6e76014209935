"""notebooks/explore.ipynb runs top to bottom in a fresh kernel on the quick preset, and shows
what the simulator planted: creators and brands leading the influencers, the 19:00 peak."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.integration

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "explore.ipynb"


def _text(cell) -> str:
    """Everything a code cell printed or displayed, as plain text."""
    parts = []
    for output in cell.get("outputs", []):
        if output.output_type == "stream":
            parts.append(output.text)
        elif "data" in output:
            parts.append(output.data.get("text/plain", ""))
    return "\n".join(parts)


def test_the_example_notebook_runs_and_shows_the_planted_answers(tmp_path, monkeypatch):
    monkeypatch.setenv("SMAP_NOTEBOOK_DATA_DIR", str(tmp_path / "smap"))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")

    NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},  # the kernel's working directory
    ).execute()

    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(not any(o.output_type == "error" for o in c.outputs) for c in code)
    shown = "\n".join(_text(cell) for cell in code)
    assert f"data in {tmp_path / 'smap'}" in shown
    assert (tmp_path / "smap" / "warehouse" / "influencer_network.parquet").is_file()
    influencers = next(_text(c) for c in code if "top_influencers(warehouse, n=10)" in c.source)
    assert influencers.count("creator") + influencers.count("brand") >= 6  # of the top 10
    assert "best hours (UTC): 19:00" in shown or "best hours (UTC): 20:00" in shown
    assert "engagement_rate" in shown and "trend_score" in shown
