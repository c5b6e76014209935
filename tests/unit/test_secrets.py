"""The PostgreSQL password is taken verbatim from the environment and never printed or written."""

from __future__ import annotations

import stat

import pytest
from sqlalchemy.engine import make_url

from configs.settings import ConfigError, load_settings
from pipelines.cli import main

AWKWARD = ["abc #def", "123456", "[s3cr3t", "it's a \\ p@ss/w+rd:%20", "true", "null", "{x: 1}"]


@pytest.mark.parametrize("password", AWKWARD)
def test_password_is_taken_verbatim_and_reaches_every_client_intact(password):
    import psycopg2.extensions

    settings = load_settings("services", env={"SMAP_POSTGRES__PASSWORD": password})

    assert settings.postgres.password.get_secret_value() == password
    assert psycopg2.extensions.parse_dsn(settings.postgres.dsn())["password"] == password
    assert make_url(settings.postgres.sqlalchemy_url()).password == password
    assert password not in repr(settings) and password not in str(settings.model_dump())


def test_a_bad_setting_beside_a_password_never_prints_the_password():
    env = {"SMAP_POSTGRES__PASSWORD": "hunter2", "SMAP_POSTGRES__PORT": "hunter2"}
    with pytest.raises(ConfigError) as err:
        load_settings("services", env=env)
    assert "postgres.port" in str(err.value)
    assert "hunter2" not in str(err.value)


def test_a_variable_below_the_password_is_ignored_without_echoing_it(capsys):
    # no setting lives below a secret: the stray variable is warned about, the password kept
    env = {"SMAP_POSTGRES__PASSWORD": "hunter2", "SMAP_POSTGRES__PASSWORD__X": "1"}
    settings = load_settings("services", env=env)
    assert settings.postgres.password.get_secret_value() == "hunter2"
    err = capsys.readouterr().err
    assert "SMAP_POSTGRES__PASSWORD__X is not a smap setting" in err and "hunter2" not in err


def test_an_env_value_that_is_not_valid_yaml_is_one_line_naming_the_variable():
    with pytest.raises(ConfigError, match="SMAP_TRAINING__TRIALS") as err:
        load_settings("local", env={"SMAP_TRAINING__TRIALS": "[1"})
    assert "\n" not in str(err.value)


def test_feature_store_yaml_holds_a_reference_not_the_password(tmp_path, monkeypatch):
    from feast.repo_config import load_repo_config

    from feature_repo.store import write_feature_store_yaml

    password = "s3cr3t #with@odd/chars"
    settings = load_settings(
        "services",
        env={"SMAP_POSTGRES__PASSWORD": password, "SMAP_DATA_DIR": str(tmp_path)},
    )

    path = write_feature_store_yaml(settings)

    assert password not in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    monkeypatch.setenv("SMAP_POSTGRES__PASSWORD", password)
    config = load_repo_config(path.parent, path)  # what the `feast` CLI does with the file
    assert config.offline_store.password == password
    assert config.registry.sqlalchemy_config_kwargs["connect_args"]["password"] == password
    assert make_url(config.registry.path).password is None


def test_config_show_masks_the_password(capsys, monkeypatch):
    monkeypatch.setenv("SMAP_POSTGRES__PASSWORD", "s3cr3t-value")
    assert main(["config", "show", "--profile", "services"]) == 0
    captured = capsys.readouterr()
    assert "s3cr3t-value" not in captured.out + captured.err


def test_text_settings_are_taken_verbatim_and_typed_ones_parsed():
    settings = load_settings(
        "local",
        env={
            "SMAP_MLFLOW__TRACKING_URI": "http://mlflow.internal/#team a",
            "SMAP_FEAST__PROJECT": "p123",
            "SMAP_TRAINING__FAMILIES": "[linear, xgboost]",
            "SMAP_TRAINING__TIMEOUT_SECONDS": "null",
        },
    )
    assert settings.mlflow.tracking_uri == "http://mlflow.internal/#team a"
    assert settings.feast.project == "p123"
    assert settings.training.families == ("linear", "xgboost")
    assert settings.training.timeout_seconds is None
