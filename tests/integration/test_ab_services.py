"""`smap ab report` on PostgreSQL: planted experiments through the simulator, the ETL and
the report give the same figures as on the local profile; an export's experiment columns load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingestion.csv_import import import_posts
from ingestion.warehouse import open_warehouse
from pipelines import ab as ab_flow
from pipelines import flows
from pipelines.cli import main

pytestmark = pytest.mark.integration
SEED = 5


def test_ab_report_on_services_matches_local(
    services_settings, local_settings, monkeypatch, capsys
):
    for settings in (services_settings, local_settings):
        flows.simulate(settings, preset="quick", seed=SEED, experiments=True)
        flows.ingest(settings)
    on_services = ab_flow.report(services_settings, "caption_style", 0.05)
    on_local = ab_flow.report(local_settings, "caption_style", 0.05)
    assert on_services.variants == on_local.variants
    services, local = on_services.comparisons[0], on_local.comparisons[0]
    assert services.plain.lift == pytest.approx(local.plain.lift, rel=1e-9)
    assert services.cuped.lift_low == pytest.approx(local.cuped.lift_low, rel=1e-9)
    assert services.sequential_p == pytest.approx(local.sequential_p, rel=1e-9)
    truth = open_warehouse(services_settings).read("truth_experiments").set_index("experiment")
    lift = truth.true_lift["caption_style"]
    assert services.plain.lift_low <= lift <= services.plain.lift_high

    monkeypatch.setenv("SMAP_DATABASE", services_settings.postgres.database)
    monkeypatch.setenv("SMAP_DATA_DIR", str(services_settings.root))
    capsys.readouterr()
    assert main(["ab", "report", "aa_check", "--profile", "services", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["experiment"] == "aa_check" and len(report["variants"]) == 2
    assert report["comparisons"][0]["width_ratio"] < 1


def test_an_exports_experiment_columns_load_into_postgres(services_settings, tmp_path: Path):
    export = tmp_path / "export.csv"
    export.write_text(
        "timestamp,type,category,reach,likes,comments,shares,experiment,variant\n"
        "2026-03-01 10:00,image,food,100,5,1,0,caption_style,A\n"
        "2026-03-01 11:00,image,food,100,4,0,0,,\n"
    )
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("default_account: cafe\n")
    warehouse = open_warehouse(services_settings)
    result = import_posts(export, mapping, warehouse, tmp_path / "rejects")
    assert result.rows_loaded == 2
    posts = warehouse.read("content_posts").sort_values("created_at")
    # this backend reads NULL text back as ""
    assert posts.experiment.tolist() == ["caption_style", ""]
    assert posts.variant.tolist() == ["A", ""]
