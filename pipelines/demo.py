"""`smap demo`: the whole loop on a simulated platform whose behaviour changes part-way.

simulate (shift at day S) -> ingest -> apply -> materialize up to S -> train the tasks on the
days before S -> serve -> replay the posts of the days after S, chunk by chunk, as drafts over
HTTP (the online store advanced to each chunk's start, as a live one would be) -> after each
chunk, monitor: drift, and after `monitoring.consecutive` drift verdicts a retrain on the
newest days behind the champion gate -> the service swaps to the new champion through its
alias poll while requests keep coming -> a summary.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta
from urllib.parse import quote, quote_plus

import pandas as pd

from configs.settings import Settings, _secret_values
from feature_repo.store import materialize
from ingestion.simulator import PRESETS
from ingestion.warehouse import open_warehouse
from monitoring.checks import NotEnoughRows
from pipelines import flows
from pipelines.analytics import fill_dashboard
from pipelines.monitoring import monitor
from pipelines.progress import steps
from pipelines.serving import as_utc, ask_service, local_service, published_drafts, send_drafts
from training.dataset import DataWindow

QUICK_TASKS = ("engagement",)
LOOP_TASKS = ("engagement", "virality", "churn", "trend")
SERVED = {"engagement": "predict_engagement", "virality": "predict_virality"}
CHUNKS = 4
TREND_TRIALS = 3  # the largest training set of the four, and neither served nor monitored yet


def shift_day(settings: Settings, preset: str) -> int:
    """Default: the last third of the simulated days behave differently."""
    return PRESETS[preset].days * 2 // 3


def train_before(settings: Settings, tasks, until, trials: int) -> dict:
    window = DataWindow(until=until)
    trained = {}
    with steps(f"train before {until:%Y-%m-%d}", len(tasks)) as tick:
        for task in tasks:
            budget = min(trials, TREND_TRIALS) if task == "trend" else trials
            trained[task] = flows.train_task(settings, task, budget, window)
            tick(task)
    return trained


def replay_chunk(settings: Settings, url: str, tasks, since, until) -> dict:
    """Advance the online store to `since`, then ask the service about every post of
    [since, until) before it was published."""
    materialize(settings, end=since.to_pydatetime())
    drafts = published_drafts(settings, since, until)
    return {task: send_drafts(url, drafts, endpoint=SERVED[task]) for task in tasks}


def wait_logged(settings: Settings) -> None:
    """Give the service's log thread time to flush what it answered."""
    time.sleep(settings.serving.log_flush_seconds * 2 + 0.5)


def run_loop(
    settings: Settings,
    preset: str | None = None,
    shift_at: int | None = None,
    quick: bool = False,
    trials: int | None = None,
    shift: bool = True,
) -> dict:
    """The demo's loop on a simulated platform; returns the summary. `shift=False` replays
    the same days of a platform that did not change (the monitoring's control run)."""
    t0 = time.perf_counter()
    preset = preset or settings.simulator.preset
    shift_at = shift_day(settings, preset) if shift_at is None else shift_at
    tasks = QUICK_TASKS if quick else LOOP_TASKS
    trials = trials or (4 if quick else 6)
    start = pd.Timestamp(settings.simulator.start_date, tz="UTC")
    cut = start + pd.Timedelta(days=shift_at)
    summary: dict = {
        "preset": preset,
        "shift_day": shift_at if shift else None,
        "shift_date": str(cut.date()),
    }
    summary["simulate"] = flows.simulate(
        settings, preset=preset, shift_at=shift_at if shift else None
    )
    summary["ingest"] = flows.ingest(settings)
    summary["apply"] = flows.apply_features(settings)
    summary["materialize"] = flows.materialize_features(settings, end=cut.to_pydatetime())
    ready, skipped = flows.ready_tasks(settings, tasks)
    summary["skipped"] = skipped
    trained = train_before(settings, ready, cut, trials)
    summary["trained"] = {
        t: {"version": r.version, "test": r.test_metrics, "gate": r.decision.decision}
        for t, r in trained.items()
        if r.decision is not None
    }
    served = [t for t in SERVED if t in trained and trained[t].decision.champion_after]
    end = as_utc(newest_post(settings))
    step = (end - cut) / CHUNKS
    checks, replays = [], []
    poll = {"SMAP_SERVING__ALIAS_POLL_SECONDS": "2"}
    with local_service(settings, env=poll) as (url, _):
        with steps("replay and monitor", CHUNKS) as tick:
            for k in range(CHUNKS):
                since, until = cut + k * step, cut + (k + 1) * step
                replays.append(replay_chunk(settings, url, served, since, until))
                wait_logged(settings)
                for task in served:
                    try:
                        result = monitor(settings, task)
                    except NotEnoughRows:
                        continue
                    checks.append(result)
                tick(f"days {since:%m-%d}..{until:%m-%d}")
        summary["after_swap"] = confirm_swap(settings, url, served, end, checks)
        if "engagement" in served:  # what a user asks next, answered by today's champion
            summary["serve"] = ask_service(settings, url)
    summary["dashboard"] = fill_dashboard(settings)  # `smap report` finds every section full
    summary["replays"] = replays
    summary["checks"] = [c.as_json() for c in checks]
    summary["failed_requests"] = sum(r[t]["failed"] for r in replays for t in r)
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    summary["reports"] = str(settings.reports_dir / "monitoring")
    summary["commands"] = next_commands(settings)
    return summary


PASSWORD_ENV = "SMAP_POSTGRES__PASSWORD"


def secrets(settings: Settings) -> list[str]:
    """Every secret this process knows (the profile's PostgreSQL password and any secret set in
    the environment), as written and as it appears inside a URL."""
    values = {settings.postgres.password.get_secret_value(), *_secret_values(dict(os.environ))}
    forms = {form for v in values if v for form in (v, quote(v, safe=""), quote_plus(v))}
    return sorted(forms, key=len, reverse=True)  # the longest first: no half-replaced secret


def scrub(settings: Settings, value):
    """`value` (text, or a summary of dicts and lists) with every secret of `secrets` in its
    text replaced by ***: an error message a check recorded may quote a connection string."""
    if isinstance(value, str):
        for secret in secrets(settings):
            value = value.replace(secret, "***")
        return value
    if isinstance(value, dict):
        return {key: scrub(settings, item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(settings, item) for item in value]
    return value


def shown_uri(settings: Settings, uri: str) -> str:
    """A database URI fit for a terminal or a file: the profile's PostgreSQL password becomes
    `${SMAP_POSTGRES__PASSWORD}` (a shell fills it in; as `training.tracking._masked` does for
    error lines, any other password becomes ***), and no secret is left anywhere in it."""
    from sqlalchemy.engine import make_url  # not for `smap --help`
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(uri)
    except ArgumentError:
        return scrub(settings, uri)
    if not url.password:
        return scrub(settings, uri)
    password = settings.postgres.password.get_secret_value()
    # the variable holds the password as it is: a shell can put it in the URL only when it
    # needs no %-encoding there
    reference = (
        f"${{{PASSWORD_ENV}}}" if password == url.password == quote(password, safe="") else "***"
    )
    hidden = url.render_as_string(hide_password=True)
    return scrub(settings, hidden.replace(":***@", f":{reference}@", 1))


def next_commands(settings: Settings) -> dict[str, str]:
    """What to run next, printed and written in the summary: never with a secret in it."""
    uri = shown_uri(settings, settings.mlflow_tracking_uri)
    # a tracking server is its own UI
    server = uri.startswith(("http://", "https://"))
    return {
        "mlflow ui": f"open {uri}" if server else f'uv run mlflow ui --backend-store-uri "{uri}"',
        "drift reports": "uv run smap monitor ui",
        "recent checks": "uv run smap monitor --summary",
        "look at everything (MLflow, drift reviews, dashboard)": "uv run smap ui",
    }


def newest_post(settings: Settings):
    return open_warehouse(settings).read("post_features", ["event_timestamp"]).event_timestamp.max()


def confirm_swap(settings: Settings, url: str, served, end, checks) -> dict:
    """After a promotion, ask again until the service answers with the new version (its alias
    poll), counting any failed request on the way."""
    promoted = {
        c.task: c.retrain["version"] for c in checks if c.retrain.get("decision") == "promoted"
    }
    out = {}
    drafts = published_drafts(settings, end - timedelta(days=2), None)[:100]
    for task, version in promoted.items():
        deadline, seen, failed = time.monotonic() + 60, {}, 0
        while time.monotonic() < deadline:
            answer = send_drafts(url, drafts, endpoint=SERVED[task])
            failed += answer["failed"]
            seen = answer["versions"]
            if version in seen:
                break
            time.sleep(1)
        out[task] = {"new_version": version, "answered_by": sorted(seen), "failed": failed}
    return out
