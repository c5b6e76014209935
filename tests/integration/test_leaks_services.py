"""Leaks on the real stores: `smap demo --json` on the services profile (PostgreSQL behind a
password) prints and writes no password and keeps its summary private; `smap report` exports
an account named like a formula as inert text, on both profiles."""

from __future__ import annotations

import json
import stat
from urllib.parse import quote, quote_plus

import pandas as pd
import pytest

from analytics.exports import CSV_ENCODING
from ingestion.schema import INSIGHT_TABLES
from ingestion.warehouse import open_warehouse
from pipelines import demo
from pipelines.cli import main

pytestmark = pytest.mark.integration

PASSWORD = "pw #N0t-[in]-any:file"
PLAIN_PASSWORD = "Kx9-hunter2"
FORMULA = "=cmd|' /C calc'!A0"


def _holding(text: str, secret: str) -> bool:
    return any(form in text for form in {secret, quote(secret, safe=""), quote_plus(secret)})


@pytest.mark.parametrize("password", [PLAIN_PASSWORD, PASSWORD])
def test_demo_summary_on_services_holds_no_password(
    services_settings, monkeypatch, capsys, tmp_path, password
):
    """The loop itself is replaced (minutes of training); the profile, its PostgreSQL
    warehouse (asked whether posts were imported) and the printing and writing are real."""
    for key, value in {
        "SMAP_PROFILE": "services",
        "SMAP_DATA_DIR": str(services_settings.data_dir),
        "SMAP_DATABASE": services_settings.postgres.database,
        "SMAP_FEAST__PROJECT": services_settings.feast.project,
        "SMAP_POSTGRES__PASSWORD": password,
        "COLUMNS": "400",
    }.items():
        monkeypatch.setenv(key, value)

    def loop(settings, **kwargs):
        assert _holding(settings.mlflow_tracking_uri, password)  # MLflow is given it
        return {
            "preset": "quick", "shift_day": 120, "shift_date": "2026-05-01",
            "simulate": {"content_posts": 1}, "skipped": {}, "trained": {}, "checks": [],
            "failed_requests": 0, "seconds": 0.1, "after_swap": {}, "replays": [],
            "reports": str(settings.reports_dir), "commands": demo.next_commands(settings),
        }  # fmt: skip

    monkeypatch.setattr("pipelines.cli.run_loop", loop)
    path = tmp_path / "demo.json"
    assert main(["demo", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "mlflow ui: uv run mlflow ui --backend-store-uri" in out
    assert not _holding(out, password) and not _holding(path.read_text(), password)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    shown = json.loads(path.read_text())["commands"]["mlflow ui"]
    reference = "${SMAP_POSTGRES__PASSWORD}" if password == PLAIN_PASSWORD else "***"
    assert f"postgres:{reference}@127.0.0.1:5432/" in shown


def _network(name: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": [1, 2],
            "username": [name, "-bo"],
            "account_type": ["creator", "brand"],
            "category": ["food", "tech"],
            "followers": [90, -80],
            "following": [3, 4],
            "engagement_received": [900, 700],
            "pagerank": [0.5, -0.3],
            "rank": [1, 2],
            "category_rank": [1, 1],
            "computed_at": pd.Timestamp("2026-07-01 05:00", tz="UTC"),
        }
    )


def test_report_exports_a_formula_account_name_as_text(any_settings, monkeypatch, tmp_path):
    monkeypatch.setenv("SMAP_PROFILE", any_settings.profile)
    monkeypatch.setenv("SMAP_DATA_DIR", str(any_settings.data_dir))
    if any_settings.profile == "services":
        monkeypatch.setenv("SMAP_DATABASE", any_settings.postgres.database)
        monkeypatch.setenv("SMAP_FEAST__PROJECT", any_settings.feast.project)
    open_warehouse(any_settings).write(INSIGHT_TABLES["influencer_network"], _network(FORMULA))
    out = tmp_path / "dashboard"
    assert main(["report", "--out", str(out)]) == 0
    csv = pd.read_csv(out / "exports" / "influencer_network.csv", encoding=CSV_ENCODING)
    csv = csv.sort_values("user_id", ignore_index=True)
    assert csv.username.tolist() == ["'" + FORMULA, "'-bo"]
    assert csv.followers.tolist() == [90, -80] and csv.pagerank.tolist() == [0.5, -0.3]
    parquet = pd.read_parquet(out / "exports" / "influencer_network.parquet")
    assert sorted(parquet.username) == sorted([FORMULA, "-bo"])
