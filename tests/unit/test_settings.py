from pathlib import Path

import pytest
from pydantic import ValidationError

from configs.settings import CONFIG_DIR, PROFILES, ConfigError, expand_env, load_settings


@pytest.mark.parametrize("profile", PROFILES)
def test_every_shipped_profile_loads(profile):
    settings = load_settings(profile, env={})
    assert settings.profile == profile


def test_services_profile_points_every_store_at_servers():
    settings = load_settings("services", env={})
    assert settings.warehouse.type == "postgres"
    assert (settings.feast.offline_store, settings.feast.online_store) == ("postgres", "redis")
    assert settings.mlflow_tracking_uri.startswith("postgresql")
    assert settings.optuna_storage_url.startswith("postgresql")


def test_local_profile_keeps_everything_under_data_dir(tmp_path):
    settings = load_settings("local", env={"SMAP_DATA_DIR": str(tmp_path)})
    assert settings.root == tmp_path.resolve()
    assert str(tmp_path) in settings.mlflow_tracking_uri
    assert str(tmp_path) in settings.optuna_storage_url


def test_env_override_reaches_nested_keys():
    settings = load_settings(
        "local", env={"SMAP_REDIS__PORT": "6390", "SMAP_TRAINING__TRIALS": "3"}
    )
    assert settings.redis.port == 6390
    assert settings.training.trials == 3


def test_profile_chosen_by_environment():
    assert load_settings(env={"SMAP_PROFILE": "services"}).profile == "services"


def test_unknown_key_named_in_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("profile: local\nfeast:\n  onlin_store: sqlite\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path=bad, env={})
    assert "feast.onlin_store" in str(err.value)
    assert "\n" not in str(err.value)


def test_bad_value_named_with_what_was_given():
    with pytest.raises(ConfigError, match=r"feast.online_store.*'mongo'"):
        load_settings("local", env={"SMAP_FEAST__ONLINE_STORE": "mongo"})


def test_unknown_profile_rejected():
    with pytest.raises(ConfigError, match="not a profile"):
        load_settings(env={"SMAP_PROFILE": "prod"})


def test_password_never_read_from_yaml(tmp_path):
    bad = tmp_path / "secret.yaml"
    bad.write_text("postgres:\n  password: hunter2\n")
    with pytest.raises(ConfigError, match="secrets come only from the environment"):
        load_settings(path=bad, env={})


def test_password_from_environment_is_secret():
    settings = load_settings("services", env={"SMAP_POSTGRES__PASSWORD": "s3cret"})
    assert "s3cret" not in repr(settings)
    assert "password='s3cret'" in settings.postgres.dsn()


def test_env_expansion_with_default_and_missing():
    assert expand_env("a: ${X:-7}", {}) == "a: 7"
    assert expand_env("a: ${X:-7}", {"X": "9"}) == "a: 9"
    with pytest.raises(ConfigError, match=r"\$\{Y\}"):
        expand_env("a: ${Y}", {})


def test_settings_are_frozen():
    settings = load_settings("local", env={})
    with pytest.raises(ValidationError):
        settings.profile = "services"  # type: ignore[misc]


def test_profiles_directory_holds_exactly_the_known_profiles():
    assert {p.stem for p in Path(CONFIG_DIR).glob("*.yaml")} == set(PROFILES)
