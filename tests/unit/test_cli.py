"""The CLI turns bad input into one line on stderr and a non-zero exit."""

from rich.console import Console

from pipelines.cli import evaluation_table, main


def test_help_works_for_every_command(capsys):
    for argv in (
        ["--help"],
        ["simulate", "--help"],
        ["ingest", "--help"],
        ["ingest", "csv", "--help"],
        ["features", "apply", "--help"],
        ["features", "materialize", "--help"],
        ["config", "show", "--help"],
        ["demo", "--help"],
    ):
        assert main(argv) == 0, argv


def test_config_show_prints_effective_values(capsys, monkeypatch):
    monkeypatch.setenv("SMAP_REDIS__PORT", "6391")
    assert main(["config", "show"]) == 0
    assert "port: 6391" in capsys.readouterr().out


def test_bad_config_value_is_one_line(capsys, monkeypatch):
    monkeypatch.setenv("SMAP_FEAST__ONLINE_STORE", "mongo")
    assert main(["config", "show"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: config error") and "feast.online_store" in err
    assert "\n" not in err and "Traceback" not in err


def test_unknown_preset_is_one_line(capsys):
    assert main(["simulate", "--preset", "huge"]) == 1
    assert "--preset" in capsys.readouterr().err


def test_ingest_before_simulate_says_what_to_run(capsys):
    assert main(["ingest"]) == 1
    err = capsys.readouterr().err
    assert "raw table" in err and "smap simulate" in err


def test_unknown_option_is_a_usage_error(capsys):
    assert main(["simulate", "--nope"]) == 2


def test_config_show_never_prints_the_password(capsys, monkeypatch):
    monkeypatch.setenv("SMAP_PROFILE", "services")
    monkeypatch.setenv("SMAP_POSTGRES__PASSWORD", "p@ss/word")
    assert main(["config", "show"]) == 0
    shown = capsys.readouterr().out
    assert "p@ss" not in shown and "p%40ss" not in shown
    assert "postgresql+psycopg2://postgres:***@127.0.0.1:5432/smap_mlflow" in shown


def test_evaluate_table_puts_the_version_then_the_champion_then_the_baselines():
    report = {
        "metric": "r2",
        "test_rows": 10,
        "model_version": 3,
        "version": {"version": 5, "metrics": {"mae": 0.2, "r2": 0.30}},
        "champion": {"mae": 0.1, "r2": 0.40},
        "linear_name": "ridge",
        "linear": {"mae": 0.15, "r2": 0.35},
        "baseline": {"mae": 0.3, "r2": 0.10},
        "oracle": {},
    }
    console = Console(record=True, width=200)
    console.print(evaluation_table("engagement", report))
    text = console.export_text().splitlines()
    header = next(line for line in text if "┃" in line)
    lines = [line for line in text if "│" in line]
    assert [c.strip() for c in header.split("┃") if c.strip()] == [
        "metric",
        "version 5",
        "champion v3",
        "ridge",
        "naive baseline",
        "oracle",
    ]
    first = [cell.strip() for cell in lines[0].split("│") if cell.strip()]
    assert first == ["r2", "0.3000", "0.4000", "0.3500", "0.1000", "nan"]
