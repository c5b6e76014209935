"""What smap prints or writes for people to read or open never carries a secret or runs as a
formula: the demo's next commands and JSON summary on a profile with a PostgreSQL password,
and the dashboard's CSV exports of user-controlled text."""

from __future__ import annotations

import json
import stat
from urllib.parse import quote, quote_plus

import pandas as pd
import pyarrow.parquet as pq
import pytest

from analytics.exports import CSV_ENCODING, write_export
from configs.settings import load_settings
from pipelines import demo
from pipelines.cli import main

PASSWORD = "hunter2-Kx9"
ODD_PASSWORD = "pw #N0t-[in]-any:file"  # needs %-encoding inside a URL


def _forms(secret: str) -> set[str]:
    return {secret, quote(secret, safe=""), quote_plus(secret)}


def _holding(text: str, secret: str = PASSWORD) -> bool:
    return any(form in text for form in _forms(secret))


def services(tmp_path, password: str = PASSWORD):
    return load_settings(
        "services",
        env={"SMAP_DATA_DIR": str(tmp_path / "smap"), "SMAP_POSTGRES__PASSWORD": password},
    )


def test_the_mlflow_ui_command_names_the_password_variable_not_the_password(tmp_path):
    settings = services(tmp_path)
    assert _holding(settings.mlflow_tracking_uri)  # what MLflow itself is given
    command = demo.next_commands(settings)["mlflow ui"]
    assert not _holding(command)
    assert ":${SMAP_POSTGRES__PASSWORD}@127.0.0.1" in command
    assert command.startswith('uv run mlflow ui --backend-store-uri "postgresql+psycopg2://')


def test_a_password_a_shell_cannot_put_in_a_url_is_masked(tmp_path):
    command = demo.next_commands(services(tmp_path, ODD_PASSWORD))["mlflow ui"]
    assert not _holding(command, ODD_PASSWORD) and ":***@127.0.0.1" in command


def test_a_uri_of_the_users_own_loses_its_password(tmp_path, monkeypatch):
    monkeypatch.setenv("SMAP_MLFLOW__TRACKING_URI", "http://bob:s3cret-token@mlflow.example:5000")
    settings = load_settings("local")
    assert demo.shown_uri(settings, settings.mlflow_tracking_uri) == (
        "http://bob:***@mlflow.example:5000"
    )
    local = load_settings("local", env={"SMAP_DATA_DIR": str(tmp_path)})
    assert demo.next_commands(local)["mlflow ui"].endswith(f'"sqlite:///{tmp_path}/mlflow.db"')


def test_config_show_masks_a_tracking_uri_of_the_users_own(capsys, monkeypatch):
    monkeypatch.setenv("SMAP_MLFLOW__TRACKING_URI", "postgresql://bob:s3cret-token@db/mlflow")
    assert main(["config", "show"]) == 0
    out = capsys.readouterr().out
    assert "s3cret-token" not in out and "postgresql://bob:***@db/mlflow" in out


def _a_summary(settings) -> dict:
    """What `run_loop` returns, with a retrain whose error quotes the connection string."""
    return {
        "preset": "quick", "shift_day": 120, "shift_date": "2026-05-01",
        "simulate": {"content_posts": 10}, "skipped": {}, "trained": {},
        "failed_requests": 0, "seconds": 1.0, "after_swap": {}, "replays": [],
        "checks": [
            {
                "task": "engagement", "version": 1, "rows": 800, "drifted_share": 0.2,
                "prediction_score": 0.1, "label_score": 0.3, "quality_value": None,
                "test_value": 0.35, "verdict": "drift", "metric": "r2",
                "retrain": {"error": f"MLflow at {settings.mlflow_tracking_uri} failed"},
            }
        ],
        "reports": str(settings.reports_dir / "monitoring"),
        "commands": demo.next_commands(settings),
    }  # fmt: skip


def test_the_demo_prints_and_writes_no_password_and_keeps_the_summary_private(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("SMAP_PROFILE", "services")
    monkeypatch.setenv("SMAP_POSTGRES__PASSWORD", PASSWORD)
    monkeypatch.setenv("COLUMNS", "400")
    settings = load_settings()
    monkeypatch.setattr("pipelines.flows.has_imported_posts", lambda s: False)
    monkeypatch.setattr("pipelines.cli.run_loop", lambda s, **kw: _a_summary(s))
    path = tmp_path / "demo.json"
    path.write_text("{}")
    path.chmod(0o644)  # an older summary, readable by everyone

    assert main(["demo", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert not _holding(out)
    assert "${SMAP_POSTGRES__PASSWORD}" in out and "retrain failed: MLflow at" in out
    assert not _holding(path.read_text())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    written = json.loads(path.read_text())
    assert written["commands"] == demo.next_commands(settings)
    assert written["checks"][0]["retrain"]["error"].startswith("MLflow at postgresql+psycopg2://")


FORMULAS = ["=cmd|' /C calc'!A0", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A2)", "\tx", "\rx"]


def test_csv_exports_neutralise_formulas_and_keep_numbers_and_parquet(tmp_path):
    frame = pd.DataFrame(
        {
            "username": [*FORMULAS, "ana", "-12.5", None],
            "category": pd.Categorical(['=HYPERLINK("x")', *["food"] * 8]),
            "pagerank": [-0.5, 0.1, -3.0, 1.0, 2.0, 3.0, 4.0, -5.0, 6.0],
            "rank": [-1, 2, 3, 4, 5, 6, 7, 8, 9],
        }
    )
    done = write_export(tmp_path, "influencer_network", frame)
    back = pd.read_csv(done.csv, encoding=CSV_ENCODING, keep_default_na=False)
    assert back.username.tolist()[:6] == ["'" + f for f in FORMULAS]
    assert back.username.tolist()[6:] == ["ana", "-12.5", ""]
    assert back.category[0] == '\'=HYPERLINK("x")' and back.category[1] == "food"
    # numbers stay numbers: a negative number is not a formula
    assert back.pagerank.tolist() == frame.pagerank.tolist()
    assert back["rank"].tolist() == frame["rank"].tolist()
    raw = done.csv.read_text(encoding=CSV_ENCODING)
    assert "\r\n-0.5," not in raw and ",-0.5," in raw
    # Parquet keeps the values as they are: typed readers never run a cell
    parquet = pq.read_table(done.parquet).to_pandas()
    assert parquet.username.tolist()[:6] == FORMULAS
    assert parquet.pagerank.tolist() == frame.pagerank.tolist()


@pytest.mark.parametrize("cell", ["=1+1", "+A1", "-A1", "@A1", "\t=1", "\r=1"])
def test_every_formula_start_is_quoted(tmp_path, cell):
    done = write_export(tmp_path, "t", pd.DataFrame({"text": [cell]}))
    assert pd.read_csv(done.csv, keep_default_na=False).text[0] == "'" + cell
