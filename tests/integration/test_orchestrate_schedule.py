"""smap's jobs on Dagster, on both profiles: a day of the schedules on a simulated platform
(time advanced, not waited for), the runs in the profile's instance (SQLite files locally,
PostgreSQL on services) and in Dagster's UI, a busy stage retried, then failed and shown."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from urllib.request import Request, urlopen

import pytest

from configs.settings import OrchestrationSchedules, Settings
from ingestion.simulator import Preset
from ingestion.warehouse import open_warehouse
from pipelines import flows, orchestrate

pytestmark = pytest.mark.integration

TINY = Preset(users=40, days=30, hashtags=12, post_rate=0.5, following=5)
DAY = datetime(2026, 1, 30, tzinfo=UTC)  # the simulated platform's last day


def scheduled(settings: Settings) -> Settings:
    """The profile with materialize and monitor every 12 hours (the shipped profiles:
    hourly), analytics daily, and short retry delays: a day is 5 runs."""
    twice_a_day = OrchestrationSchedules(
        materialize="0 */12 * * *", analytics="15 6 * * *", monitor="30 */12 * * *"
    )
    o = settings.orchestration.model_copy(
        update={"schedules": twice_a_day, "retries": 1, "retry_delay_seconds": 0.5}
    )
    return settings.model_copy(update={"orchestration": o})


def graphql(port: int, query: str) -> dict:
    request = Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"content-type": "application/json"},
    )
    with urlopen(request, timeout=60) as answer:
        return json.loads(answer.read())["data"]


def hold(settings: Settings, name: str, release: threading.Event) -> threading.Thread:
    """Hold the warehouse lock `name` in another thread (another run holding the stage) until
    `release` is set; returns that thread once it holds the lock."""
    held = threading.Event()

    def holder() -> None:
        with open_warehouse(settings).exclusive(name) as got:
            assert got
            held.set()
            release.wait(30)

    thread = threading.Thread(target=holder, daemon=True)
    thread.start()
    assert held.wait(10)
    return thread


def release_on_retry(instance, earlier_run: str, release: threading.Event) -> None:
    """Set `release` once the newest run (not `earlier_run`) has a step up for retry."""
    from dagster import DagsterEventType

    while not release.wait(0.05):
        newest = instance.get_run_records(limit=1)
        if not newest or newest[0].dagster_run.run_id == earlier_run:
            continue
        run_id = newest[0].dagster_run.run_id
        if instance.all_logs(run_id, of_type=DagsterEventType.STEP_UP_FOR_RETRY):
            release.set()


def test_a_day_of_schedules_runs_shows_in_the_ui_and_retries(any_settings, monkeypatch):
    from dagster import DagsterEventType

    settings = scheduled(any_settings)
    flows.simulate(settings, preset=TINY)  # type: ignore[arg-type]
    instance = orchestrate.open_instance(settings)

    runs = orchestrate.run_schedule(settings, DAY, DAY + timedelta(days=1), instance)

    # every tick of the day ran once, in order, and succeeded
    assert [(r.at.hour, r.at.minute, r.job) for r in runs] == [
        (0, 0, "materialize"), (0, 30, "monitor"), (6, 15, "analytics"),
        (12, 0, "materialize"), (12, 30, "monitor"),
    ]  # fmt: skip
    assert all(r.success for r in runs)
    # the stages wrote what they own
    warehouse = open_warehouse(settings)
    assert warehouse.exists("kpi_daily") and not warehouse.read("kpi_daily").empty
    assert (settings.reports_dir / "dashboard" / "index.html").is_file()
    # the instance keeps every run with its tick, on the profile's storage
    recorded = orchestrate.recent_runs(settings, 50, instance)
    assert sorted(r.at for r in recorded) == sorted(r.at.isoformat() for r in runs)
    assert {r.status for r in recorded} == {"SUCCESS"}
    storage = type(instance.run_storage).__name__
    assert (
        storage
        == {"sqlite": "SqliteRunStorage", "postgres": "PostgresRunStorage"}[
            settings.orchestration.storage
        ]
    )

    # Dagster's UI, started on the profile's instance, shows the runs and the schedules
    for key, value in {
        "SMAP_PROFILE": settings.profile,
        "SMAP_DATABASE": settings.postgres.database,
        "SMAP_FEAST__PROJECT": settings.feast.project,
        **{
            f"SMAP_ORCHESTRATION__SCHEDULES__{job.upper()}": cron
            for job, cron in settings.orchestration.schedules.model_dump().items()
        },
    }.items():
        monkeypatch.setenv(key, value)
    port = orchestrate.free_port()
    processes = orchestrate.start_ui(settings, port, daemon=False)
    try:
        orchestrate.wait_until_up(f"http://127.0.0.1:{port}/server_info", processes)
        shown = graphql(
            port, "{ runsOrError { ... on Runs { results { runId jobName status } } } }"
        )
        repos = graphql(
            port,
            "{ repositoriesOrError { ... on RepositoryConnection { nodes { schedules "
            "{ name cronSchedule scheduleState { status } } } } } }",
        )
    finally:
        orchestrate.stop(processes)
    results = shown["runsOrError"]["results"]
    assert {(r["runId"], r["jobName"]) for r in results} == {(r.run_id, r.job) for r in runs}
    assert {r["status"] for r in results} == {"SUCCESS"}
    schedules = repos["repositoriesOrError"]["nodes"][0]["schedules"]
    assert {s["name"]: s["cronSchedule"] for s in schedules} == {
        "materialize_schedule": "0 */12 * * *",
        "analytics_schedule": "15 6 * * *",
        "monitor_schedule": "30 */12 * * *",
    }
    assert {s["scheduleState"]["status"] for s in schedules} == {"RUNNING"}

    # another run holds the dashboard throughout: the step is retried once, then the run fails
    release = threading.Event()
    holder = hold(settings, "orchestrate.dashboard", release)
    busy = orchestrate.run_job(settings, "analytics", DAY, instance)
    release.set()
    holder.join(10)
    assert not busy.success
    retried = instance.all_logs(busy.run_id, of_type=DagsterEventType.STEP_UP_FOR_RETRY)
    assert [e.step_key for e in retried] == ["dashboard"]
    failed = instance.all_logs(busy.run_id, of_type=DagsterEventType.STEP_FAILURE)
    error = failed[0].dagster_event.event_specific_data.error
    assert "StageBusy: dashboard: another run is running it now" in error.to_string()
    assert busy.said[-1] == "dashboard failed: dashboard: another run is running it now"

    # the other run lets go while the retry waits: the retry succeeds
    release = threading.Event()
    holder = hold(settings, "orchestrate.dashboard", release)
    threading.Thread(target=release_on_retry, args=(instance, busy.run_id, release)).start()
    ok = orchestrate.run_job(settings, "analytics", DAY, instance)
    release.set()
    holder.join(10)
    assert ok.success
    retried = instance.all_logs(ok.run_id, of_type=DagsterEventType.STEP_UP_FOR_RETRY)
    assert [e.step_key for e in retried] == ["dashboard"]
    statuses = {r.run_id: r.status for r in orchestrate.recent_runs(settings, 2, instance)}
    assert statuses == {busy.run_id: "FAILURE", ok.run_id: "SUCCESS"}

    # `smap monitor --watch` is the monitor job in a loop: each round a run of the instance
    rounds: list[orchestrate.Ran] = []
    orchestrate.watch(settings, ["engagement"], 0.01, rounds.append, rounds=2)
    assert [r.success for r in rounds] == [True, True]
    assert rounds[0].said == (
        "engagement: waiting: engagement: no champion to monitor (run `smap train engagement`)",
    )
    newest = orchestrate.recent_runs(settings, 2, instance)
    assert {(r.run_id, r.job) for r in newest} == {(r.run_id, "monitor") for r in rounds}
