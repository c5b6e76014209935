"""Soak: `smap serve` for minutes at a steady share of its measured maximum, through a Redis
restart and a PostgreSQL connection kill.

What it does (services profile, on infrastructure of its own):

1. A fresh PostgreSQL database `smap_soak_<random>` on the server of the services profile
   (dropped at the end with its `_mlflow` and `_optuna` companions) and a private
   `redis-server` on a free port that keeps nothing on disk (`--save '' --appendonly no`).
2. A quick simulated platform in them (simulate, ingest, apply, materialize) and an
   engagement champion (one trial of `--family`, linear by default).
3. `smap serve` (`--workers`, 1 by default) on a free loopback port.
4. The maximum throughput: a closed-loop burst of `--burst-clients` clients for
   `--burst-seconds` on `POST /predict_engagement` with one draft.
5. The soak: an open-loop load at `--rate-fraction` of that maximum for `--minutes`, from a
   separate process (`benchmarks/_load.py`): requests leave at a fixed rate whatever the
   answers, so an outage shows as errors and latency, not as a slower sender. Each request
   carries its own `x-request-id`; its planned send time, status and latency are recorded.
   - at 40% of the run, Redis is stopped, left down for `--outage-seconds`, started again on
     the same port (empty), and `smap features materialize` is run at once, as an operator
     would;
   - at 70%, every PostgreSQL connection to the soak's databases is terminated
     (`pg_terminate_backend`): the prediction log's, the Feast registry's and MLflow's.
   - every 5 s, the RSS of the service's worker processes (`/proc/<pid>/status` VmRSS of the
     `bentoml serve` process tree);
   - every 0.1 s, `GET /healthz` on a connection of its own, timed.
6. The server is stopped (its workers flush the prediction log), and the log's rows of the
   soak's request ids are matched against the requests answered 200.

What it reports, per minute and in total, against the goals:

- errors: only 503s during the outage windows, none after. A window runs from the fault to
  the recovery (Redis: until the materialize finished; PostgreSQL: the kill) plus
  `--grace-seconds`; a request is in a window when its lifetime overlaps it.
- p50 and p99 latency of the answered requests (from the planned send time);
- worker RSS: flat within 10% after the warm-up (`--warmup-seconds`);
- prediction-log completeness: every answered request logged;
- `/healthz`: under 50 ms throughout, the outage windows included.

Nothing here asserts: it measures. Everything it starts (server, Redis, load generator,
database, temporary folders) is removed in `finally`, also on Ctrl-C or SIGTERM.

    uv run python benchmarks/soak.py --json .smap/bench/soak.json
    uv run python benchmarks/soak.py --minutes 1 --outage-seconds 5   # a quick look
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

# run as a script, this file's folder comes first on sys.path and `benchmarks/serving.py`
# would shadow the `serving` package
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from benchmarks._load import (  # noqa: E402
    CONNECTION_ERROR,
    NOT_SENT,
    TIMEOUT,
    build_platform,
    check,
    percentile,
    run_load,
    smap_server,
    start_open_loop,
)
from configs.settings import PostgresSettings, load_settings, telemetry_env  # noqa: E402

os.environ.update(telemetry_env())  # before MLflow, BentoML or Feast are imported

out = Console(width=None if sys.stdout.isatty() else 140)  # a readable table in a log file
log = Console(stderr=True)
ENDPOINT = "/predict_engagement"
RSS_EVERY = 5.0  # seconds between samples of the workers' RSS
HEALTH_EVERY = 0.1  # seconds between /healthz probes
HEALTH_GOAL_MS = 50.0  # a liveness probe answers within this, whatever the dependencies do
WORKER_MARK = "_bentoml_impl.worker"  # in the command line of BentoML's worker processes
LOAD_BEFORE = os.getloadavg()  # the machine's load average when the script started


# ---- infrastructure of its own ---------------------------------------------------------------


@contextlib.contextmanager
def fresh_database(server: PostgresSettings):
    """`smap_soak_<random>` on `server`; dropped after, with its MLflow and Optuna companions."""
    import psycopg2

    name = f"smap_soak_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(server.dsn("postgres"))
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        yield name
    finally:
        with admin.cursor() as cur:
            for database in (name, f"{name}_mlflow", f"{name}_optuna"):
                cur.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.close()


def terminate_connections(server: PostgresSettings, database: str) -> dict[str, int]:
    """Terminate every connection to `database` and its companions; the count per database."""
    import psycopg2

    names = [database, f"{database}_mlflow", f"{database}_optuna"]
    admin = psycopg2.connect(server.dsn("postgres"))
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(
                "SELECT datname, pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = ANY(%s) AND pid <> pg_backend_pid()",
                (names,),
            )
            done = Counter(name for name, ok in cur.fetchall() if ok)
    finally:
        admin.close()
    return {name: done.get(name, 0) for name in names}


class PrivateRedis:
    """`redis-server` on a free loopback port, nothing on disk: a restart loses every key."""

    def __init__(self, folder: Path):
        from pipelines.serving import free_port

        self.binary = shutil.which("redis-server")
        if self.binary is None:
            raise RuntimeError("redis-server is not on PATH (apt-get install redis-server)")
        self.folder, self.port = folder, free_port()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 20) -> None:
        import redis

        cmd = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.folder),
            "--logfile",
            str(self.folder / "redis.log"),
        ]
        self.process = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL)
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"redis-server exited with code {self.process.returncode}")
                with contextlib.suppress(redis.exceptions.RedisError):
                    if client.ping():
                        return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"redis-server on port {self.port}: not up in {timeout}s")
                time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> PrivateRedis:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


# ---- the workers' memory ---------------------------------------------------------------------


def _descendants(root: int) -> list[int]:
    """Every process below `root`, from /proc (no psutil)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # after the command name, which may hold ")"
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _is_worker(pid: int) -> bool:
    try:
        return WORKER_MARK in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


class RssSampler(threading.Thread):
    """Every `every` seconds from `start_at` (monotonic): the RSS of each worker process of
    the server (BentoML's workers below `bentoml serve`; every process below it when none is
    recognised), as (seconds after start_at, {pid: kB})."""

    def __init__(self, server_pid: int, start_at: float, every: float = RSS_EVERY):
        super().__init__(name="rss-sampler", daemon=True)
        self.server_pid, self.start_at, self.every = server_pid, start_at, every
        self.samples: list[tuple[float, dict[int, int]]] = []
        self._stop_event = threading.Event()

    def sample(self) -> None:
        below = _descendants(self.server_pid)
        workers = [pid for pid in below if _is_worker(pid)] or below
        rss = {pid: kb for pid in workers if (kb := _rss_kb(pid)) is not None}
        if rss:
            self.samples.append((time.monotonic() - self.start_at, rss))

    def run(self) -> None:
        next_at = self.start_at
        while not self._stop_event.wait(max(0.0, next_at - time.monotonic())):
            self.sample()
            next_at += self.every

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)
        self.sample()  # the end of the run


class HealthProber(threading.Thread):
    """`GET /healthz` every `every` seconds from `start_at` (monotonic) on one keep-alive
    connection of its own: (seconds after start_at, milliseconds, status; 0 when the probe
    failed or took more than 5 s)."""

    def __init__(self, url: str, start_at: float, every: float = HEALTH_EVERY):
        super().__init__(name="health-prober", daemon=True)
        self.url, self.start_at, self.every = url + "/healthz", start_at, every
        self.probes: list[tuple[float, float, int]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        import httpx

        next_at = self.start_at
        with httpx.Client(timeout=5) as http:
            while not self._stop_event.wait(max(0.0, next_at - time.monotonic())):
                t0 = time.monotonic()
                try:
                    status = http.get(self.url).status_code
                except httpx.HTTPError:
                    status = 0
                self.probes.append((t0 - self.start_at, 1000 * (time.monotonic() - t0), status))
                next_at += self.every

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)


# ---- the soak --------------------------------------------------------------------------------


@dataclass
class Event:
    at: float  # seconds after the load's start
    what: str
    detail: str = ""


@dataclass
class Window:
    name: str
    start: float
    end: float  # grace included


@dataclass
class Soak:
    """Everything measured, before it is summarised."""

    max_rps: float
    burst: dict
    rate: float
    seconds: float
    status: list[int]
    latency_ms: list[float]
    sender_late_ms: dict
    connections_opened: int
    events: list[Event]
    windows: list[Window]
    rss: list[tuple[float, dict[int, int]]]
    logged: Counter  # request index -> rows in the prediction log
    health: list[tuple[float, float, int]]  # /healthz probes: (s, ms, status)
    service_metadata: dict | None = None


def _until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


def restart_redis(redis: PrivateRedis, outage: float, env: dict, clock) -> list[Event]:
    """Stop Redis, wait `outage` seconds, start it again (empty), materialize at once."""
    events = [Event(clock(), "redis stopped", f"port {redis.port}")]
    redis.stop()
    _until(time.monotonic() + outage)
    redis.start()
    events.append(Event(clock(), "redis started", "empty: nothing kept on disk"))
    smap = Path(sys.executable).with_name("smap")
    started = clock()
    events.append(Event(started, "materialize started", "smap features materialize"))
    done = subprocess.run(
        [str(smap), "features", "materialize"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode == 0:
        detail = f"{clock() - started:.1f}s"
    else:
        detail = f"exit {done.returncode}: {(done.stderr or done.stdout).strip()[-300:]}"
    events.append(Event(clock(), "materialize finished", detail))
    return events


def logged_requests(settings, id_prefix: str) -> Counter:
    """Rows of the prediction log per soak request index (`<id_prefix><index>`)."""
    import psycopg2

    from serving.prediction_log import TABLE

    table = f"{settings.postgres.db_schema}.{TABLE}"
    rows: Counter = Counter()
    with contextlib.closing(psycopg2.connect(settings.postgres.dsn())) as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass(%s)", (table,))
            if cur.fetchone()[0] is None:
                return rows
            cur.execute(
                f"SELECT request_id, count(*) FROM {table} WHERE request_id LIKE %s GROUP BY 1",
                (id_prefix + "%",),  # the prefix is hex digits and dashes: no LIKE wildcard
            )
            for request_id, n in cur.fetchall():
                rows[int(request_id[len(id_prefix) :])] = n
    return rows


def service_metadata(url: str) -> dict | None:
    """The service's own view (of the worker that answers) before it stops: its online store
    and its prediction log's counters (rows written, rows dropped past the buffer)."""
    import httpx

    keys = ("online_store", "online_store_ok", "predictions_logged", "predictions_dropped")
    try:
        answer = httpx.get(f"{url}/metadata", timeout=10)
        if answer.status_code == 200:
            return {k: v for k, v in answer.json().items() if k in keys}
    except (httpx.HTTPError, ValueError):
        pass
    return None


def soak(args: argparse.Namespace, stack: contextlib.ExitStack) -> tuple[Soak, dict]:
    from pipelines.serving import demo_drafts

    root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="smap-soak-")))
    server = load_settings("services").postgres  # the PostgreSQL server the profile names
    database = stack.enter_context(fresh_database(server))
    redis = stack.enter_context(PrivateRedis(root / "redis"))
    log.print(f"database {database}, private redis on port {redis.port}, under {root}")
    overrides = {
        "SMAP_DATA_DIR": str(root / "smap"),
        "SMAP_DATABASE": database,
        "SMAP_REDIS__HOST": "127.0.0.1",
        "SMAP_REDIS__PORT": str(redis.port),
    }
    settings = load_settings("services", env={**os.environ, **overrides})
    settings, version = build_platform(settings.root, args.preset, args.family, settings)
    body = {"drafts": demo_drafts(settings, n=1)}
    # the service alone: no key required of the load (a caller's SMAP_API_KEY stays theirs)
    service_env = {**overrides, "SMAP_API_KEY": ""}
    operator_env = {**os.environ, **overrides, "SMAP_PROFILE": "services"}
    run_id = uuid.uuid4().hex[:8]
    id_prefix = f"soak-{run_id}-"

    with smap_server(settings, args.workers, env=service_env) as (url, process):
        check(url + ENDPOINT, body)
        log.print(
            f"maximum throughput: {args.burst_clients} clients, closed loop, "
            f"{args.burst_seconds:g}s"
        )
        burst = run_load(url + ENDPOINT, body, args.burst_clients, args.burst_seconds, 1.0)
        max_rps = burst["requests"] / burst["seconds"] if burst["seconds"] > 0 else 0.0
        if max_rps <= 0:
            raise RuntimeError(f"the burst got no answer: {burst}")
        rate = args.rate_fraction * max_rps
        seconds = args.minutes * 60
        log.print(
            f"max {max_rps:,.0f} req/s; soak at {rate:,.0f} req/s ({args.rate_fraction:.0%}) "
            f"for {seconds:g}s: Redis restart at {0.4 * seconds:.0f}s, PostgreSQL kill at "
            f"{0.7 * seconds:.0f}s"
        )
        start_at = time.monotonic() + 2.0  # the load generator's process starts meanwhile

        def clock() -> float:
            return time.monotonic() - start_at

        load = start_open_loop(
            url + ENDPOINT,
            body,
            rate,
            seconds,
            start_at,
            args.timeout,
            args.max_connections,
            id_prefix,
        )
        stack.callback(load.stop)
        sampler = RssSampler(process.pid, start_at)
        sampler.start()
        stack.callback(sampler.stop)
        prober = HealthProber(url, start_at)
        prober.start()
        stack.callback(prober.stop)
        events: list[Event] = [Event(0.0, "load started", f"{rate:,.0f} req/s")]

        _until(start_at + 0.4 * seconds)
        events += restart_redis(redis, args.outage_seconds, operator_env, clock)
        _until(start_at + 0.7 * seconds)
        killed = terminate_connections(server, database)
        detail = ", ".join(f"{n} on {name}" for name, n in killed.items() if n) or "none open"
        events.append(Event(clock(), "postgres connections killed", detail))

        records = load.result()
        events.append(Event(clock(), "load finished"))
        sampler.stop()
        prober.stop()
        metadata = service_metadata(url)
    # the server is stopped here: its workers have flushed the prediction log
    logged = logged_requests(settings, id_prefix)

    at = {e.what: e.at for e in events}
    grace = args.grace_seconds
    windows = [
        Window("redis down", at["redis stopped"], at["redis started"] + grace),
        Window("redis empty, refilling", at["redis started"], at["materialize finished"] + grace),
        Window(
            "postgres connections killed",
            at["postgres connections killed"],
            at["postgres connections killed"] + grace,
        ),
    ]
    measured = Soak(
        max_rps=max_rps,
        burst=burst,
        rate=rate,
        seconds=seconds,
        status=records["status"],
        latency_ms=records["latency_ms"],
        sender_late_ms=records["sender_late_ms"],
        connections_opened=records["connections_opened"],
        events=events,
        windows=windows,
        rss=sampler.samples,
        logged=logged,
        health=prober.probes,
        service_metadata=metadata,
    )
    setup = {"database": database, "redis_port": redis.port, "model_version": version}
    return measured, setup


# ---- the figures -----------------------------------------------------------------------------


def _kind(status: int) -> str:
    if status == CONNECTION_ERROR:
        return "connection error"
    if status == TIMEOUT:
        return "timeout"
    if status == NOT_SENT:
        return "not sent"  # every connection of the pool busy for the whole timeout
    return str(status)


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _longest_silence(s: Soak) -> dict:
    """The longest stretch of the run in which no answer (of any HTTP status) came back: a
    stalled service shows here even when every request ends up answered 200."""
    ends = sorted(
        i / s.rate + s.latency_ms[i] / 1000 for i in range(len(s.status)) if s.status[i] > 0
    )
    marks = [0.0, *ends]
    best = max(
        ((b - a, a) for a, b in zip(marks, marks[1:], strict=False)), default=(s.seconds, 0.0)
    )
    return {"seconds": round(best[0], 2), "from_s": round(best[1], 2)}


def _health(s: Soak) -> dict:
    """The /healthz probes: how many, failed, over the goal; p50, p99 and max over the run and
    within the outage windows."""

    def figures(probes: list[tuple[float, float, int]]) -> dict:
        ms = [p[1] for p in probes if p[2] == 200]
        return {
            "probes": len(probes),
            "failed": sum(1 for p in probes if p[2] != 200),
            "over_goal": sum(1 for p in probes if p[2] != 200 or p[1] >= HEALTH_GOAL_MS),
            "p50_ms": _ms(percentile(ms, 0.5)),
            "p99_ms": _ms(percentile(ms, 0.99)),
            "max_ms": _ms(max(ms, default=None)),
        }

    inside = [p for p in s.health if any(w.start <= p[0] <= w.end for w in s.windows)]
    return {"goal_ms": HEALTH_GOAL_MS, "run": figures(s.health), "windows": figures(inside)}


def summarise(s: Soak, args: argparse.Namespace) -> dict:
    """The per-minute rows, the windows and the goals, as plain data (the JSON)."""
    n = len(s.status)
    planned = [i / s.rate for i in range(n)]
    ended = [planned[i] + s.latency_ms[i] / 1000 for i in range(n)]

    def in_window(i: int) -> str | None:
        for w in s.windows:
            if planned[i] <= w.end and ended[i] >= w.start:
                return w.name
        return None

    warmup = args.warmup_seconds if args.warmup_seconds is not None else min(60, 0.2 * s.seconds)
    bucket = args.bucket_seconds
    minutes = []
    for b in range(max(1, int(-(-s.seconds // bucket)))):
        lo, hi = b * bucket, min((b + 1) * bucket, s.seconds)
        members = [i for i in range(n) if lo <= planned[i] < hi]
        kinds = Counter(_kind(s.status[i]) for i in members)
        answered = [s.latency_ms[i] for i in members if s.status[i] == 200]
        rss = [sum(r.values()) for t, r in s.rss if lo <= t < hi]
        minutes.append(
            {
                "from_s": lo,
                "to_s": hi,
                "sent": len(members),
                "ok": kinds.pop("200", 0),
                "unavailable_503": kinds.pop("503", 0),
                "other_errors": dict(kinds.most_common()),
                "p50_ms": _ms(percentile(answered, 0.5)),
                "p99_ms": _ms(percentile(answered, 0.99)),
                "worker_rss_mb_max": round(max(rss) / 1024, 1) if rss else None,
                "events": [e.what for e in s.events if lo <= e.at < hi],
            }
        )

    outside: Counter = Counter()
    inside: dict[str, Counter] = {w.name: Counter() for w in s.windows}
    latency_in: dict[str, list[float]] = {w.name: [] for w in s.windows}
    latency_out: list[float] = []
    for i in range(n):
        kind = _kind(s.status[i])
        window = in_window(i)
        if window is not None:
            inside[window][kind] += 1
            if kind == "200":
                latency_in[window].append(s.latency_ms[i])
        elif kind == "200":
            latency_out.append(s.latency_ms[i])
        else:
            outside[kind] += 1
    not_503_inside = Counter()
    for counts in inside.values():
        not_503_inside.update({k: v for k, v in counts.items() if k not in ("200", "503")})

    totals = [(t, sum(r.values())) for t, r in s.rss]
    after = [(t, kb) for t, kb in totals if t >= warmup]
    rss = {"samples": [{"at_s": round(t, 1), "kb": r} for t, r in s.rss], "warmup_s": warmup}
    if after:
        base = after[0][1]
        top = max(kb for _, kb in after)
        rss.update(
            baseline_mb=round(base / 1024, 1),
            max_after_warmup_mb=round(top / 1024, 1),
            last_mb=round(after[-1][1] / 1024, 1),
            max_growth_pct=round(100 * (top - base) / base, 1),
        )
    worker_pids = sorted({pid for _, r in s.rss for pid in r})

    health = _health(s)

    answered = {i for i in range(n) if s.status[i] == 200}
    logged = set(s.logged)
    completeness = {
        "answered": len(answered),
        "logged": len(answered & logged),
        "missing": len(answered - logged),
        "logged_not_answered": len(logged - answered),  # e.g. answered after the client gave up
        "duplicated": sum(1 for v in s.logged.values() if v > 1),
        "pct": round(100 * len(answered & logged) / len(answered), 3) if answered else None,
    }
    return {
        "max_throughput": {
            "requests_per_second": round(s.max_rps, 1),
            "clients": args.burst_clients,
            "seconds": args.burst_seconds,
            "p50_ms": _ms(s.burst["p50_ms"]),
            "p99_ms": _ms(s.burst["p99_ms"]),
            "errors": s.burst["errors"],
        },
        "rate": {"fraction": args.rate_fraction, "requests_per_second": round(s.rate, 1)},
        "seconds": s.seconds,
        "requests": n,
        "minutes": minutes,
        "events": [{"at_s": round(e.at, 2), "what": e.what, "detail": e.detail} for e in s.events],
        "windows": [
            {
                "name": w.name,
                "from_s": round(w.start, 2),
                "to_s": round(w.end, 2),
                "requests": dict(inside[w.name].most_common()),
                "p99_ms": _ms(percentile(latency_in[w.name], 0.99)),
            }
            for w in s.windows
        ],
        "outside_windows": {
            "p50_ms": _ms(percentile(latency_out, 0.5)),
            "p99_ms": _ms(percentile(latency_out, 0.99)),
        },
        "longest_without_answer": _longest_silence(s),
        "goals": {
            "errors_outside_windows": dict(outside.most_common()),
            "non_503_errors_in_windows": dict(not_503_inside.most_common()),
            "rss": rss,
            "completeness": completeness,
            "health": health,
        },
        "worker_pids": worker_pids,
        "load_generator": {
            "sender_late_ms": {k: _ms(v) for k, v in s.sender_late_ms.items()},
            "connections_opened": s.connections_opened,
        },
        "service_metadata": s.service_metadata,
    }


def write_records(s: Soak, path: Path) -> None:
    """One line per request: when it was planned, its status (0: connection error, -1:
    timeout, -2: not sent, no free connection), its latency and its rows in the prediction
    log."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["request", "planned_s", "status", "latency_ms", "logged_rows"])
        for i, (status, latency) in enumerate(zip(s.status, s.latency_ms, strict=True)):
            writer.writerow([i, f"{i / s.rate:.4f}", status, latency, s.logged.get(i, 0)])


def _counts(counts: dict) -> str:
    return ", ".join(f"{k} ×{v:,}" for k, v in counts.items()) or "0"


def _met(ok: bool | None) -> str:
    return "" if ok is None else ("[green]yes[/]" if ok else "[red]no[/]")


def render(report: dict, args: argparse.Namespace) -> None:
    m, r = report["max_throughput"], report["rate"]
    table = Table(
        title=(
            f"smap soak: {report['seconds']:g}s at {r['requests_per_second']:,.0f} req/s "
            f"({r['fraction']:.0%} of {m['requests_per_second']:,.0f}), one draft per request, "
            f"workers={args.workers}, preset={args.preset}, {args.family}"
        ),
        caption=(
            "rows by planned send time; latency of the 200s, from the planned send time; "
            "worker RSS: the highest 5 s sample, summed over the workers"
        ),
    )
    table.add_column("minute" if args.bucket_seconds == 60 else "from s", justify="right")
    for name in ("sent", "200", "503"):
        table.add_column(name, justify="right")
    table.add_column("other errors")
    for name in ("p50 ms", "p99 ms", "worker RSS MB"):
        table.add_column(name, justify="right")
    table.add_column("events")

    def ms(v):
        return "" if v is None else f"{v:,.2f}"

    for k, row in enumerate(report["minutes"]):
        label = str(k + 1) if args.bucket_seconds == 60 else f"{row['from_s']:g}"
        table.add_row(
            label,
            f"{row['sent']:,}",
            f"{row['ok']:,}",
            f"{row['unavailable_503']:,}",
            _counts(row["other_errors"]),
            ms(row["p50_ms"]),
            ms(row["p99_ms"]),
            "" if row["worker_rss_mb_max"] is None else f"{row['worker_rss_mb_max']:.1f}",
            ", ".join(row["events"]),
        )
    out.print(table)

    timeline = Table(title="events and outage windows (seconds after the load's start)")
    timeline.add_column("at s", justify="right")
    timeline.add_column("what")
    timeline.add_column("detail")
    for e in report["events"]:
        timeline.add_row(f"{e['at_s']:.1f}", e["what"], e["detail"])
    for w in report["windows"]:
        timeline.add_row(
            f"{w['from_s']:.1f}–{w['to_s']:.1f}",
            f"window: {w['name']}",
            f"requests overlapping: {_counts(w['requests'])}"
            + ("" if w["p99_ms"] is None else f"; p99 of the 200s {ms(w['p99_ms'])} ms"),
        )
    out.print(timeline)

    g = report["goals"]
    summary = Table(title="summary")
    for name in ("figure", "value", "goal", "met"):
        summary.add_column(name)
    outside = sum(g["errors_outside_windows"].values())
    inside = sum(g["non_503_errors_in_windows"].values())
    summary.add_row(
        "errors outside the outage windows",
        _counts(g["errors_outside_windows"]),
        "0",
        _met(outside == 0),
    )
    summary.add_row(
        "errors other than 503 in the windows",
        _counts(g["non_503_errors_in_windows"]),
        "0",
        _met(inside == 0),
    )
    rss = g["rss"]
    if "max_growth_pct" in rss:
        summary.add_row(
            f"worker RSS growth after the warm-up ({rss['warmup_s']:g}s)",
            f"{rss['max_growth_pct']:+.1f}% ({rss['baseline_mb']:.0f} → max "
            f"{rss['max_after_warmup_mb']:.0f} MB, last {rss['last_mb']:.0f} MB)",
            "within 10%",
            _met(abs(rss["max_growth_pct"]) <= 10),
        )
    else:
        summary.add_row("worker RSS growth after the warm-up", "no sample after it", "", "")
    c = g["completeness"]
    extra = f"; {c['missing']:,} missing" if c["missing"] else ""
    extra += f"; {c['duplicated']:,} logged twice" if c["duplicated"] else ""
    extra += (
        f"; {c['logged_not_answered']:,} logged, not answered in time"
        if c["logged_not_answered"]
        else ""
    )
    dropped = (report["service_metadata"] or {}).get("predictions_dropped")
    extra += f"; the answering worker dropped {dropped:,}" if dropped else ""
    summary.add_row(
        "prediction log completeness (logged ÷ answered 200)",
        f"{c['logged']:,} / {c['answered']:,} = {c['pct']}%{extra}",
        "100%",
        _met(c["answered"] > 0 and c["missing"] == 0),
    )
    h = g["health"]
    run, win = h["run"], h["windows"]
    summary.add_row(
        "/healthz every 0.1 s: p50, p99, max (in the outage windows)",
        f"{ms(run['p50_ms'])}, {ms(run['p99_ms'])}, {ms(run['max_ms'])} ms "
        f"({ms(win['p50_ms'])}, {ms(win['p99_ms'])}, {ms(win['max_ms'])} ms); "
        f"{run['over_goal']:,} of {run['probes']:,} failed or over {h['goal_ms']:g} ms "
        f"({win['over_goal']:,} of {win['probes']:,} in the windows)",
        f"all under {h['goal_ms']:g} ms",
        _met(run["probes"] > 0 and run["over_goal"] == 0),
    )
    summary.add_row(
        "maximum throughput (closed loop)",
        f"{m['requests_per_second']:,.0f} req/s ({m['clients']} clients, {m['seconds']:g}s, "
        f"p99 {ms(m['p99_ms'])} ms, {m['errors']} errors)",
        "",
        "",
    )
    lag = report["load_generator"]["sender_late_ms"]
    summary.add_row(
        "rate used (open loop)",
        f"{r['requests_per_second']:,.0f} req/s = {r['fraction']:.0%}; {report['requests']:,} "
        f"requests; sender late p99 {ms(lag['p99'])} ms, max {ms(lag['max'])} ms",
        "",
        "",
    )
    o, gap = report["outside_windows"], report["longest_without_answer"]
    summary.add_row(
        "latency of the 200s outside the windows",
        f"p50 {ms(o['p50_ms'])} ms, p99 {ms(o['p99_ms'])} ms",
        "",
        "",
    )
    summary.add_row(
        "longest time without any answer",
        f"{gap['seconds']:.1f}s from {gap['from_s']:.1f}s",
        "",
        "",
    )
    pids = report["worker_pids"]
    if len(pids) > args.workers:
        summary.add_row("worker processes seen", f"{len(pids)} (restarted?)", str(args.workers), "")
    out.print(summary)


def metadata(args: argparse.Namespace, setup: dict) -> dict:
    import bentoml
    import feast
    import mlflow

    return {
        "preset": args.preset,
        "family": args.family,
        "workers": args.workers,
        "minutes": args.minutes,
        "rate_fraction": args.rate_fraction,
        "outage_seconds": args.outage_seconds,
        "grace_seconds": args.grace_seconds,
        "timeout_seconds": args.timeout,
        "endpoint": ENDPOINT,
        **setup,
        "cores": os.cpu_count(),
        "load_average_before": list(LOAD_BEFORE),
        "python": platform.python_version(),
        "bentoml": bentoml.__version__,
        "mlflow": mlflow.__version__,
        "feast": feast.__version__,
        "platform": platform.platform(),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="length of the soak")
    parser.add_argument(
        "--rate-fraction", type=float, default=0.8, help="share of the measured maximum"
    )
    parser.add_argument(
        "--outage-seconds", type=float, default=10.0, help="how long Redis stays down"
    )
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument("--preset", default="quick", choices=("quick", "small", "default"))
    parser.add_argument(
        "--family",
        default="linear",
        choices=("linear", "lightgbm", "xgboost", "forest"),
        help="the champion's model family (one trial)",
    )
    parser.add_argument("--burst-clients", type=int, default=16, help="clients of the burst")
    parser.add_argument("--burst-seconds", type=float, default=10.0, help="length of the burst")
    parser.add_argument(
        "--grace-seconds",
        type=float,
        default=5.0,
        help="added to each outage window, after the recovery",
    )
    parser.add_argument(
        "--warmup-seconds",
        type=float,
        help="RSS before this is warm-up (default: 60, or 20%% of a shorter run)",
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds a request may take (from its plan)"
    )
    parser.add_argument(
        "--max-connections", type=int, default=256, help="open connections of the load at most"
    )
    parser.add_argument(
        "--bucket-seconds", type=float, default=60.0, help="rows of the table (60: per minute)"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument(
        "--records",
        type=Path,
        help="also write every request (planned s, status, latency ms, log rows) to this CSV",
    )
    args = parser.parse_args(argv)
    if args.minutes <= 0 or not 0 < args.rate_fraction <= 1.5 or args.outage_seconds < 0:
        parser.error("--minutes > 0, 0 < --rate-fraction <= 1.5, --outage-seconds >= 0")
    if args.workers < 1 or args.burst_clients < 1 or args.bucket_seconds <= 0:
        parser.error("--workers, --burst-clients and --bucket-seconds must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def terminate(_signum, _frame):  # SIGTERM cleans up like Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    try:
        with contextlib.ExitStack() as stack:
            measured, setup = soak(args, stack)
            log.print("cleaning up (server stopped; dropping the database, stopping redis)")
    except KeyboardInterrupt:
        log.print("interrupted: everything the soak started is stopped and removed")
        return 130
    report = {"metadata": metadata(args, setup), **summarise(measured, args)}
    render(report, args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        log.print(f"wrote {args.json}")
    if args.records:
        write_records(measured, args.records)
        log.print(f"wrote {args.records}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
