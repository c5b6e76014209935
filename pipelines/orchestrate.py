"""smap's scheduled jobs on Dagster: the stages as software-defined assets with their
dependencies, three jobs on the profile's schedules, retries, and a Dagster instance whose
state lives beside the profile's other state (a folder locally, PostgreSQL on `services`).

Assets (upstream first): `warehouse_tables` (the ETL) -> `online_features` (Feast
materialize); `warehouse_tables` -> `analytics_tables` -> `dashboard` (report and exports);
`drift_checks` (the monitoring checks; persistent drift retrains behind the champion gate in
the same step, under the monitoring locks, so the retrain is recorded with its check).
Dagster is imported inside the functions: the CLI imports this module at start-up.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.request import urlopen

import yaml

from analytics.report import write_report
from configs.errors import SmapError
from configs.settings import PostgresSettings, Settings
from ingestion.warehouse import ensure_database, open_warehouse
from pipelines import analytics as analytics_flow
from pipelines import flows
from pipelines import monitoring as monitor_flow

# job -> the assets it materializes, upstream first
JOBS: dict[str, tuple[str, ...]] = {
    "materialize": ("warehouse_tables", "online_features"),
    "analytics": ("analytics_tables", "dashboard"),
    "monitor": ("drift_checks",),
}
TAG_JOB = "smap/job"  # the run queue admits one run per value at a time
TAG_AT = "smap/at"  # the schedule's tick: the clock the run's stages read
# a run in this process says only warnings on the console; the instance (and so the UI) keeps
# every event of it
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
LOCATION = "pipelines.orchestrate_location"  # the code location the UI and daemon load


class StageBusy(SmapError):
    """Another run (of this or another Dagster instance) is running the stage now."""


class UnknownJob(SmapError):
    """A job name that is not one of JOBS."""


@dataclass(frozen=True)
class Ran:
    """One run of a job: when its tick was, its Dagster run id, whether it succeeded, and
    what its stages said (a line per item of their metadata, or the failure)."""

    at: datetime
    job: str
    run_id: str
    success: bool
    said: tuple[str, ...] = ()


def instance_dir(settings: Settings) -> Path:
    """DAGSTER_HOME of the profile: dagster.yaml, and locally the runs' SQLite storage."""
    return settings.root / "dagster"


def _sqlite_storage(settings: Settings) -> dict[str, Any]:
    return {}  # Dagster's default: SQLite files under DAGSTER_HOME


def _postgres_storage(settings: Settings) -> dict[str, Any]:
    """Runs, events and schedule ticks in `<database>_dagster`; the password is named, never
    written: Dagster reads it from the environment."""
    pg = settings.postgres.companion("dagster")
    db: dict[str, Any] = {
        "username": pg.user,
        "hostname": pg.host,
        "port": pg.port,
        "db_name": pg.database,
        "params": {"sslmode": pg.sslmode, "connect_timeout": pg.connect_timeout_seconds},
        # SQLAlchemy 2.1 picks psycopg 3 for `postgresql://`, whose server-side parameters
        # break dagster-postgres' `NOTIFY run_events, %(id)s`; psycopg2 binds it client-side
        "scheme": "postgresql+psycopg2",
    }
    if pg.password.get_secret_value():
        db["password"] = {"env": "SMAP_POSTGRES__PASSWORD"}
    return {"storage": {"postgres": {"postgres_db": db}}}


@dataclass(frozen=True)
class InstanceStorage:
    """Where an instance keeps runs, events and ticks: its dagster.yaml section, and the
    PostgreSQL database to create before first use (None: Dagster creates its files)."""

    config: Callable[[Settings], dict[str, Any]]
    server_database: Callable[[Settings], PostgresSettings | None]


INSTANCE_STORAGES: dict[str, InstanceStorage] = {
    "sqlite": InstanceStorage(_sqlite_storage, lambda settings: None),
    "postgres": InstanceStorage(
        _postgres_storage, lambda settings: settings.postgres.companion("dagster")
    ),
}


def instance_config(settings: Settings) -> dict[str, Any]:
    """dagster.yaml of the profile: storage, no telemetry, one run per job at a time."""
    o = settings.orchestration
    return {
        **INSTANCE_STORAGES[o.storage].config(settings),
        "telemetry": {"enabled": settings.telemetry},
        "concurrency": {
            "runs": {
                "max_concurrent_runs": o.max_concurrent_runs,
                "tag_concurrency_limits": [
                    {"key": TAG_JOB, "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
                ],
            }
        },
    }


def write_instance(settings: Settings) -> Path:
    """Write the profile's dagster.yaml (and create its PostgreSQL database); returns the
    folder to use as DAGSTER_HOME."""
    folder = instance_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    database = INSTANCE_STORAGES[settings.orchestration.storage].server_database(settings)
    if database is not None:
        ensure_database(database)
    (folder / "dagster.yaml").write_text(yaml.safe_dump(instance_config(settings)))
    return folder


def open_instance(settings: Settings):
    """The profile's persistent Dagster instance."""
    import dagster as dg

    return dg.DagsterInstance.from_config(str(write_instance(settings)))


@contextmanager
def claimed(settings: Settings, stage: str) -> Iterator[None]:
    """Run `stage` only if no other run holds it: the warehouse's named lock
    `orchestrate.<stage>` (a file lock locally, an advisory lock on PostgreSQL), so two
    schedulers, even on two Dagster instances, never run one stage twice at once."""
    with open_warehouse(settings).exclusive(f"orchestrate.{stage}") as held:
        if not held:
            raise StageBusy(f"{stage}: another run is running it now")
        yield


def _at(context) -> datetime:
    """The run's clock: its schedule tick, else now."""
    tag = context.run.tags.get(TAG_AT)
    return datetime.fromisoformat(tag) if tag else datetime.now(UTC)


def _counts(counts: dict) -> dict[str, Any]:
    return {str(k): v if isinstance(v, int | float) else str(v) for k, v in counts.items()}


def definitions(settings: Settings):
    """The Dagster Definitions of `settings`: assets, jobs, schedules."""
    import dagster as dg

    o = settings.orchestration
    retry = dg.RetryPolicy(
        max_retries=o.retries, delay=o.retry_delay_seconds, backoff=dg.Backoff.EXPONENTIAL
    )

    @dg.asset(
        retry_policy=retry,
        group_name="smap",
        description="The ETL: raw tables -> analytics tables (`smap ingest`).",
    )
    def warehouse_tables(context):
        with claimed(settings, "warehouse_tables"):
            return dg.MaterializeResult(metadata=_counts(flows.ingest(settings)))

    @dg.asset(
        retry_policy=retry,
        group_name="smap",
        deps=[warehouse_tables],
        description="Feast definitions applied, online store materialized up to the tick.",
    )
    def online_features(context):
        with claimed(settings, "online_features"):
            flows.apply_features(settings)
            keys = flows.materialize_features(settings, end=_at(context))
            return dg.MaterializeResult(metadata=_counts(keys))

    @dg.asset(
        retry_policy=retry,
        group_name="smap",
        deps=[warehouse_tables],
        description="Influencers, trends, velocity, alerts, KPIs, segment profiles.",
    )
    def analytics_tables(context):
        with claimed(settings, "analytics_tables"):
            done = analytics_flow.run(settings, now=_at(context))
            return dg.MaterializeResult(metadata=_counts(done))

    @dg.asset(
        retry_policy=retry,
        group_name="smap",
        deps=[analytics_tables],
        description="The HTML dashboard and CSV/Parquet exports (`smap report`).",
    )
    def dashboard(context):
        with claimed(settings, "dashboard"):
            done = write_report(settings, None)
            return dg.MaterializeResult(
                metadata={"page": str(done.path), "exports": len(done.exports)}
            )

    @dg.asset(
        retry_policy=retry,
        group_name="smap",
        deps=[online_features],
        description="Drift checks of every monitored champion; persistent drift retrains.",
    )
    def drift_checks(context):
        with claimed(settings, "drift_checks"):
            return dg.MaterializeResult(metadata=_monitor(settings, context.log))

    assets = [warehouse_tables, online_features, analytics_tables, dashboard, drift_checks]
    jobs = {
        name: dg.define_asset_job(
            name, selection=dg.AssetSelection.assets(*keys), tags={TAG_JOB: name}
        )
        for name, keys in JOBS.items()
    }
    schedules = [
        _schedule(dg, jobs[name], cron, o.timezone)
        for name, cron in o.schedules.model_dump().items()
        if cron is not None
    ]
    return dg.Definitions(assets=assets, jobs=list(jobs.values()), schedules=schedules)


def _schedule(dg, job, cron: str, timezone: str):
    """A schedule that stamps its tick on the run (`smap/at`), so the stages read the
    schedule's clock: a replayed day runs as it would have."""

    @dg.schedule(
        name=f"{job.name}_schedule",
        cron_schedule=cron,
        job=job,
        execution_timezone=timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
    def tick(context):
        when = context.scheduled_execution_time or datetime.now(UTC)
        return dg.RunRequest(tags={TAG_AT: when.isoformat()})

    return tick


def _monitor(settings: Settings, log) -> dict[str, Any]:
    """Check every monitored task (`smap monitor --all`); tasks that cannot be judged yet wait
    (metadata), a failed check fails the step after the others ran (so it is retried)."""
    results, problems, failures = monitor_flow.monitor_all(settings, settings.monitoring.retrain)
    metadata: dict[str, Any] = {}
    for result in results:
        retrain = result.retrain
        what = result.verdict
        if retrain:
            what += f"; retrain: {retrain.get('decision') or next(iter(retrain), '')}"
        metadata[result.task] = f"v{result.version} {what} ({result.rows} answers)"
    for task, why in problems.items():
        log.info(why)
        metadata[task] = f"waiting: {why}"
    if failures:
        raise SmapError("; ".join(failures.values()))
    return metadata


def require_job(name: str) -> str:
    if name not in JOBS:
        raise UnknownJob(f"job: unknown job {name!r} (choose {', '.join(JOBS)})")
    return name


def run_job(settings: Settings, job: str, at: datetime | None = None, instance=None) -> Ran:
    """Run `job` now, in this process, recorded in the profile's instance (its UI shows it);
    `at` is the clock its stages read (default now)."""
    require_job(job)
    instance = instance or open_instance(settings)
    when = at or datetime.now(UTC)
    result = (
        definitions(settings)
        .resolve_job_def(job)
        .execute_in_process(
            instance=instance,
            tags={TAG_JOB: job, TAG_AT: when.isoformat()},
            run_config=QUIET,
            raise_on_error=False,
        )
    )
    return Ran(when, job, result.run_id, result.success, _said(result))


def _said(result) -> tuple[str, ...]:
    """The stages' metadata as `key: value` lines, then each failed step's error."""
    lines = [
        f"{key}: {getattr(value, 'value', value)}"
        for event in result.get_asset_materialization_events()
        for key, value in event.step_materialization_data.materialization.metadata.items()
    ]
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error
        while error is not None and error.cause is not None:  # past "Exceeded max_retries"
            error = error.cause
        text = error.message.strip().splitlines()[0] if error else "failed"
        lines.append(f"{event.step_key} failed: {text.split(': ', 1)[-1]}")
    return tuple(lines)


def watch(
    settings: Settings,
    tasks: list[str],
    interval: float,
    on_run: Callable[[Ran], None],
    rounds: int | None = None,
) -> None:
    """`smap monitor --watch`: the Dagster `monitor` job on `tasks`, every `interval` seconds
    (forever, or `rounds` times), in this process; each round is a run of the profile's
    instance, retried and shown in its UI like a scheduled one."""
    instance = open_instance(settings)
    monitored = settings.monitoring.model_copy(update={"tasks": tuple(tasks)})
    scoped = settings.model_copy(update={"monitoring": monitored})
    done = 0
    while rounds is None or done < rounds:
        on_run(run_job(scoped, "monitor", instance=instance))
        done += 1
        if rounds is None or done < rounds:
            time.sleep(interval)


def ticks(settings: Settings, start: datetime, end: datetime) -> list[tuple[datetime, str]]:
    """Every scheduled tick in [start, end), oldest first: (time, job)."""
    # Dagster's own cron iterator (the one its scheduler daemon uses); no public equivalent
    from dagster._utils.schedules import cron_string_iterator

    o = settings.orchestration
    found = []
    for job, cron in o.schedules.model_dump().items():
        if cron is None:
            continue
        for when in cron_string_iterator(start.timestamp(), cron, o.timezone):
            if when >= end:
                break
            found.append((when, job))
    return sorted(found, key=lambda tick: (tick[0], list(JOBS).index(tick[1])))


MAX_REPLAY_DAYS = 31  # a day of the shipped schedules is 49 runs, a few minutes each
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)  # ticks a replay may name (cron iterates in
LATEST = datetime(2100, 1, 1, tzinfo=UTC)  # local time, which overflows near years 1 and 9999)


def check_replay_window(start: datetime, end: datetime) -> None:
    """A replay runs every tick in process, one after another: a mistyped year would start
    thousands of runs, and a time near year 1 or 9999 overflows the cron iterator."""
    for option, when in (("--from", start), ("--to", end)):
        if not EARLIEST <= when <= LATEST:
            raise SmapError(
                f"{option}: {when.date().isoformat()} is not between 2000-01-01 and 2100-01-01"
            )
    if end <= start:
        raise SmapError("--to: must be after --from")
    if end - start > timedelta(days=MAX_REPLAY_DAYS):
        raise SmapError(
            f"--to: the window is {(end - start).days} days; replay at most {MAX_REPLAY_DAYS} "
            "days at a time"
        )


def run_schedule(
    settings: Settings,
    start: datetime,
    end: datetime,
    instance=None,
    on_run: Callable[[Ran], None] | None = None,
) -> list[Ran]:
    """Replay the schedules from `start` to `end` with time advanced, not waited for: each
    tick is evaluated by its schedule (`build_schedule_context`) and its run request executed
    in this process, in tick order, recorded in the instance like a daemon's runs."""
    import dagster as dg

    check_replay_window(start, end)
    instance = instance or open_instance(settings)
    defs = definitions(settings)
    done = []
    for when, job in ticks(settings, start, end):
        schedule = defs.resolve_schedule_def(f"{job}_schedule")
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=when)
        for request in schedule.evaluate_tick(context).run_requests or []:
            result = defs.resolve_job_def(job).execute_in_process(
                instance=instance,
                tags={**schedule.tags, **request.tags, TAG_JOB: job},
                run_config={**QUIET, **request.run_config},
                raise_on_error=False,
            )
            ran = Ran(when, job, result.run_id, result.success)
            done.append(ran)
            if on_run:
                on_run(ran)
    return done


@dataclass(frozen=True)
class RunRow:
    run_id: str
    job: str
    status: str
    at: str  # the tick it ran for
    started: datetime | None
    seconds: float | None


def recent_runs(settings: Settings, limit: int = 20, instance=None) -> list[RunRow]:
    """The newest runs of the profile's instance, newest first."""
    instance = instance or open_instance(settings)
    rows = []
    for record in instance.get_run_records(limit=limit):
        run = record.dagster_run
        start, end = record.start_time, record.end_time
        rows.append(
            RunRow(
                run_id=run.run_id,
                job=run.job_name,
                status=run.status.value,
                at=run.tags.get(TAG_AT, ""),
                started=datetime.fromtimestamp(start, UTC) if start else None,
                seconds=round(end - start, 1) if start and end else None,
            )
        )
    return rows


def ui_commands(settings: Settings, port: int, daemon: bool = True) -> list[list[str]]:
    """The Dagster webserver on 127.0.0.1:`port` (and the daemon that runs the schedules)."""
    location = ["-m", LOCATION]
    webserver = [sys.executable, "-m", "dagster_webserver", "-h", "127.0.0.1", "-p", str(port)]
    commands = [webserver + location]
    if daemon:
        commands.append([sys.executable, "-m", "dagster._daemon", "run", *location])
    return commands


def ui_env(settings: Settings) -> dict[str, str]:
    """What the UI's processes need beyond the environment: the instance, the profile."""
    return {"DAGSTER_HOME": str(write_instance(settings)), "SMAP_PROFILE": settings.profile}


def start_ui(settings: Settings, port: int, daemon: bool = True, log: Path | None = None):
    """Start the webserver (and daemon) in the background; returns their processes."""

    env = {**os.environ, **ui_env(settings)}
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - the children own it
    return [
        subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        for command in ui_commands(settings, port, daemon)
    ]


def stop(processes, timeout: float = 10.0) -> None:
    """Stop processes `start_ui` started: terminate, then kill what is left."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_up(url: str, processes, timeout: float = 90.0) -> None:
    """Wait until the webserver answers `url`; one line if it exits or never answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in processes):
            raise SmapError("the Dagster UI stopped while starting (see its log)")
        try:
            with urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except (URLError, OSError):
            pass
        time.sleep(0.5)
    raise SmapError(f"the Dagster UI did not answer at {url} within {timeout:g} s")


def serve_ui(settings: Settings, port: int, daemon: bool, show: Callable[[str], None]) -> None:
    """`smap orchestrate ui`: the webserver on 127.0.0.1 (and the daemon, which runs the
    schedules and the run queue) until Ctrl-C or SIGTERM; both are stopped on the way out."""
    port = port or free_port()
    log = instance_dir(settings) / "ui.log"
    stopping = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    processes = start_ui(settings, port, daemon, log)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(f"{url}/server_info", processes)
        show(url)
        while not stopping.wait(0.5):
            if any(p.poll() is not None for p in processes):
                raise SmapError(f"a Dagster process stopped (log: {log})")
    except KeyboardInterrupt:
        pass
    finally:
        stop(processes)
        signal.signal(signal.SIGTERM, previous)
