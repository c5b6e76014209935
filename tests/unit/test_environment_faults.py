"""Environment problems (stray variables, bad options, broken data directories, leftovers of a
killed run) give one line that says what to do, never a traceback."""

import pytest

from configs import settings as settings_module
from configs.settings import ConfigError, load_settings
from pipelines.cli import main


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch):
    """Each test sees its own warnings (they are given once per process)."""
    monkeypatch.setattr(settings_module, "_warned_env", set())


def test_a_stray_smap_variable_warns_with_the_closest_setting(capsys, monkeypatch):
    monkeypatch.setenv("SMAP_REDIS__PORTT", "6390")
    monkeypatch.setenv("SMAP_FOO", "1")
    assert main(["config", "show"]) == 0
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert (
        "warning: SMAP_REDIS__PORTT is not a smap setting, ignored; did you mean SMAP_REDIS__PORT?"
        in lines
    )
    assert "warning: SMAP_FOO is not a smap setting, ignored" in lines
    assert "port: 6379" in captured.out  # the typo changed nothing


def test_known_non_setting_variables_are_not_warned_about(capsys):
    env = {"SMAP_API_KEY": "k", "SMAP_DATABASE": "x", "SMAP_PROFILE": "services"}
    settings = load_settings(env=env)
    assert settings.postgres.database == "x"  # the profile's own ${SMAP_DATABASE}
    assert capsys.readouterr().err == ""


def test_a_settings_typo_suggests_a_known_variable(capsys):
    load_settings("local", env={"SMAP_DATABSE": "x", "SMAP_TRAINNG__TRIALS": "3"})
    err = capsys.readouterr().err
    assert "SMAP_DATABSE is not a smap setting, ignored; did you mean SMAP_DATABASE?" in err
    assert "did you mean SMAP_TRAINING__TRIALS?" in err


def test_a_value_that_is_not_yaml_is_one_line_naming_the_variable(capsys, monkeypatch):
    with pytest.raises(ConfigError, match=r"^config error: SMAP_TRAINING__TRIALS is not a valid"):
        load_settings("local", env={"SMAP_TRAINING__TRIALS": "[1"})
    monkeypatch.setenv("SMAP_TRAINING__TRIALS", "[1")
    assert main(["config", "show"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "SMAP_TRAINING__TRIALS" in err


@pytest.mark.parametrize("day", ["-5", "100000", "0", "180"])
def test_shift_at_outside_the_simulated_days_is_refused(day, capsys):
    assert main(["simulate", "--shift-at", day]) == 1
    err = capsys.readouterr().err
    assert (
        err
        == f"error: --shift-at: {day} is not a day of preset quick (180 days); choose 1 to 179\n"
    )
