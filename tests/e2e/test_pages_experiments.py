"""The dashboard's Experiments section as a browser draws it: after `smap simulate
--experiments`, headless chromium renders the forest plot of the planted experiments' lifts
and their table (a screenshot is left in the test's temp folder)."""

from __future__ import annotations

import re

import pytest

from ingestion.simulate_experiments import PLANTED
from pipelines.cli import main
from tests.e2e.browser import inked, render

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def test_the_experiments_section_draws_each_planted_experiment(tmp_path):
    assert main(["simulate", "--preset", "quick", "--experiments"]) == 0
    assert main(["ingest"]) == 0
    out = tmp_path / "dashboard"
    assert main(["report", "--out", str(out)]) == 0

    dom = render((out / "index.html").as_uri(), tmp_path, "experiments")
    section = re.search(r'<section id="experiments">(.*?)</section>', dom, re.S)
    assert section, "no Experiments section"
    body = section.group(1)
    assert 'class="note empty"' not in body
    assert 'id="experiments-0"' in body and "main-svg" in body  # plotly drew the chart
    for spec in PLANTED:
        assert f"{spec.name}: B vs A" in body  # a row of the forest plot
        assert f"<td>{spec.name}</td>" in body  # and of the table
    assert inked(tmp_path / "experiments.png") > 0.02
