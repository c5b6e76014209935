"""smap's Dagster wiring without running it: the asset graph, the jobs, the schedules of the
shipped profiles, the retry policy, the instance's dagster.yaml (no password written)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from configs.settings import PROFILES, load_settings
from pipelines import orchestrate
from pipelines.cli import main


@pytest.fixture
def local(tmp_path):
    return load_settings("local", env={"SMAP_DATA_DIR": str(tmp_path / "smap")})


def test_the_assets_depend_on_the_stages_they_read(local):
    defs = orchestrate.definitions(local)
    graph = defs.resolve_asset_graph()
    upstream = {
        key.to_user_string(): {p.to_user_string() for p in graph.get(key).parent_keys}
        for key in graph.get_all_asset_keys()
    }
    assert upstream == {
        "warehouse_tables": set(),
        "online_features": {"warehouse_tables"},
        "analytics_tables": {"warehouse_tables"},
        "dashboard": {"analytics_tables"},
        "drift_checks": {"online_features"},
    }


def test_each_job_runs_its_stages_with_the_profile_retry_policy(tmp_path):
    settings = load_settings(
        "local",
        env={"SMAP_DATA_DIR": str(tmp_path), "SMAP_ORCHESTRATION__RETRIES": "4"},
    )
    defs = orchestrate.definitions(settings)
    for name, assets in orchestrate.JOBS.items():
        job = defs.resolve_job_def(name)
        assert {node.name for node in job.nodes} == set(assets)
        assert job.tags[orchestrate.TAG_JOB] == name
        for node in job.nodes:
            policy = node.definition.retry_policy
            assert policy.max_retries == 4
            assert policy.delay == settings.orchestration.retry_delay_seconds


@pytest.mark.parametrize("profile", PROFILES)
def test_a_day_of_the_shipped_schedules(profile, tmp_path):
    settings = load_settings(profile, env={"SMAP_DATA_DIR": str(tmp_path)})
    day = datetime(2026, 3, 1, tzinfo=UTC)
    ticks = orchestrate.ticks(settings, day, day + timedelta(days=1))
    jobs = [job for _, job in ticks]
    assert (jobs.count("materialize"), jobs.count("monitor"), jobs.count("analytics")) == (
        24,
        24,
        1,
    )
    assert [when for when, _ in ticks] == sorted(when for when, _ in ticks)
    assert (datetime(2026, 3, 1, 6, 15, tzinfo=UTC), "analytics") in ticks


def test_an_unscheduled_job_has_no_schedule(tmp_path):
    settings = load_settings(
        "local",
        env={"SMAP_DATA_DIR": str(tmp_path), "SMAP_ORCHESTRATION__SCHEDULES__ANALYTICS": "null"},
    )
    names = {s.name for s in orchestrate.definitions(settings).schedules}
    assert names == {"materialize_schedule", "monitor_schedule"}


def test_a_bad_cron_is_one_config_line(tmp_path):
    from configs.settings import ConfigError

    env = {"SMAP_DATA_DIR": str(tmp_path), "SMAP_ORCHESTRATION__SCHEDULES__MONITOR": "hourly"}
    with pytest.raises(ConfigError, match="orchestration.schedules.monitor"):
        load_settings("local", env=env)


def test_local_state_is_a_folder_and_one_run_per_job_at_a_time(local):
    config = yaml.safe_load((orchestrate.write_instance(local) / "dagster.yaml").read_text())
    assert "storage" not in config  # Dagster's SQLite files under DAGSTER_HOME
    assert config["telemetry"] == {"enabled": False}
    limits = [{"key": orchestrate.TAG_JOB, "value": {"applyLimitPerUniqueValue": True}, "limit": 1}]
    assert config["concurrency"]["runs"]["tag_concurrency_limits"] == limits
    # the queue the daemon dequeues by reads them from the instance
    queue = orchestrate.open_instance(local).get_concurrency_config().run_queue_config
    assert queue.tag_concurrency_limits == limits
    assert queue.max_concurrent_runs == local.orchestration.max_concurrent_runs


def test_services_state_is_postgres_and_the_password_is_never_written(tmp_path):
    env = {
        "SMAP_DATA_DIR": str(tmp_path),
        "SMAP_DATABASE": "teamdb",
        "SMAP_POSTGRES__PASSWORD": "s3cr#t pass",
    }
    settings = load_settings("services", env=env)
    config = orchestrate.instance_config(settings)
    db = config["storage"]["postgres"]["postgres_db"]
    assert db["db_name"] == "teamdb_dagster"
    assert db["password"] == {"env": "SMAP_POSTGRES__PASSWORD"}
    assert "s3cr#t" not in yaml.safe_dump(config)
    del env["SMAP_POSTGRES__PASSWORD"]
    without = orchestrate.instance_config(load_settings("services", env=env))
    assert "password" not in without["storage"]["postgres"]["postgres_db"]


def test_a_stage_another_run_holds_is_refused(local):
    from ingestion.warehouse import open_warehouse

    with open_warehouse(local).exclusive("orchestrate.dashboard") as held:
        assert held
        with pytest.raises(orchestrate.StageBusy, match="dashboard: another run"):
            with orchestrate.claimed(local, "dashboard"):
                pass
    with orchestrate.claimed(local, "dashboard"):  # free again
        pass


def test_an_unknown_job_is_one_line(capsys, tmp_path):
    assert main(["orchestrate", "run", "nightly"]) == 1
    assert capsys.readouterr().err.strip() == (
        "error: job: unknown job 'nightly' (choose materialize, analytics, monitor)"
    )


def test_the_cli_starts_without_dagster():
    code = "import sys, pipelines.cli; print('dagster' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
