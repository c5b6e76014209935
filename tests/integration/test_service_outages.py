"""A service that holds through its dependencies' outages (docs/serving.md, "Outages").

One real `smap serve` on the services profile whose PostgreSQL and Redis are its own (started
here on free ports, never the shared servers), under steady traffic from two clients while a
prober times `/healthz` and `/livez`:

- Redis stopped, then hung (SIGSTOP): every prediction answers 503 naming Redis within a
  bound, the probes answer throughout; Redis back: 200 again, by itself.
- Redis emptied (FLUSHDB): readiness turns degraded within seconds, answers say so in
  `x-smap-degraded`; `smap features materialize` makes the service ready again, with the
  answers it gave before.
- PostgreSQL stopped (the warehouse, the Feast and MLflow registries and the prediction log):
  predictions keep answering 200; their log rows wait in memory and are written when it is
  back, the outage one warning line.

Bounds are generous (2 s a prediction, 1 s a probe: CI machines are busy); the latencies
measured are printed (`pytest -s`). The 250 ms goal of `serving.dependency_timeout_ms`
belongs to a benchmark, not to this test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field

import httpx
import psycopg2
import pytest
from test_champion_poll_outage import PrivatePostgres
from test_serving_services import PrivateRedis

from configs.settings import load_settings
from pipelines import flows
from pipelines.serving import free_port, start_service, stop_service, wait_ready
from pipelines.training import train

pytestmark = pytest.mark.integration
DRAFT = {
    "user_id": 1,
    "post_type": "image",
    "category": "food",
    "hashtags": ["#x"],
    "planned_at": "2026-06-01T12:00:00Z",
}
ANSWER_BOUND = 2.0  # seconds: a prediction during an outage answers 503 within this
PROBE_BOUND = 1.0  # seconds: /healthz and /livez, whatever the dependencies do
DEGRADED = "x-smap-degraded"


class OutageRedis(PrivateRedis):
    """A private redis-server that keeps its data over a stop (SHUTDOWN SAVE into its own
    folder), and can hang (SIGSTOP) and be emptied."""

    def freeze(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def flushdb(self) -> None:
        done = subprocess.run(["redis-cli", "-p", str(self.port), "flushdb"], capture_output=True)
        assert done.stdout.strip() == b"OK", done


@dataclass
class Answer:
    started: float  # monotonic
    seconds: float
    status: int | None  # None: the client gave up (30 s)
    degraded: str = ""
    value: float | None = None
    error: str = ""
    request_id: str = ""
    in_flight: bool = False  # a probe not answered yet: `seconds` so far

    @property
    def ended(self) -> float:
        return self.started + self.seconds


@dataclass
class Traffic:
    """Clients posting the same draft in a loop, and a prober of /healthz and /livez."""

    url: str
    clients: int = 2
    answers: list[Answer] = field(default_factory=list)
    probes: list[Answer] = field(default_factory=list)
    _probing: float | None = None  # when the probe under way started
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Traffic:
        targets = [self._client] * self.clients + [self._prober]
        self._threads = [threading.Thread(target=t, daemon=True) for t in targets]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def _client(self) -> None:
        with httpx.Client(timeout=30) as http:
            while not self._stop.is_set():
                request_id = uuid.uuid4().hex
                t0 = time.monotonic()
                try:
                    r = http.post(
                        f"{self.url}/predict_engagement",
                        json={"drafts": [DRAFT]},
                        headers={"x-request-id": request_id},
                    )
                except httpx.HTTPError as exc:
                    self.answers.append(Answer(t0, time.monotonic() - t0, None, error=str(exc)))
                    continue
                answer = Answer(t0, time.monotonic() - t0, r.status_code, request_id=request_id)
                answer.degraded = r.headers.get(DEGRADED, "")
                if r.status_code == 200:
                    answer.value = r.json()["predictions"][0]["engagement_rate"]
                else:
                    answer.error = r.text
                self.answers.append(answer)
                time.sleep(0.02)

    def _prober(self) -> None:
        with httpx.Client(timeout=30) as http:
            while not self._stop.is_set():
                for path in ("/healthz", "/livez"):
                    t0 = self._probing = time.monotonic()
                    try:
                        status = http.get(f"{self.url}{path}").status_code
                    except httpx.HTTPError:
                        status = None
                    self.probes.append(Answer(t0, time.monotonic() - t0, status, error=path))
                    self._probing = None
                time.sleep(0.05)

    def overlapping(self, after: float, until: float) -> list[Answer]:
        """Answers under way at some time between `after` and `until`."""
        return [a for a in list(self.answers) if a.started <= until and a.ended >= after]

    def answered(self, after: float, until: float | None = None) -> list[Answer]:
        until = time.monotonic() if until is None else until
        return [a for a in list(self.answers) if after <= a.started <= until]

    def probed(self, after: float, until: float) -> list[Answer]:
        """Probes under way at some time between `after` and `until` (one that hung across
        the whole window included)."""
        probes = list(self.probes) + self._in_flight()
        return [p for p in probes if p.started <= until and p.ended >= after]

    def _in_flight(self) -> list[Answer]:
        started = self._probing
        if started is None:
            return []
        return [Answer(started, time.monotonic() - started, None, in_flight=True)]

    def wait_for(self, condition, what: str, seconds: float = 30) -> Answer:
        """Until an answer started now or later meets `condition`; returns the first."""
        since = time.monotonic()
        deadline = since + seconds
        while time.monotonic() < deadline:
            found = [a for a in self.answered(since) if condition(a)]
            if found:
                return found[0]
            time.sleep(0.05)
        recent = [(a.status, a.error[:80]) for a in self.answered(since)][-3:]
        raise AssertionError(f"{what} within {seconds} s (last answers: {recent})")


def _percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    if not ordered:
        return "none"
    p50 = ordered[len(ordered) // 2]
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"n={len(ordered)} p50={p50 * 1000:.1f} ms p99={p99 * 1000:.1f} ms "
        f"max={ordered[-1] * 1000:.1f} ms"
    )


def _report(what: str, answers: list[Answer], probes: list[Answer]) -> None:
    print(f"\n{what}: answers under way {_percentiles([a.seconds for a in answers])}; "
          f"probes {_percentiles([p.seconds for p in probes])}")  # fmt: skip


def _probes_held(probes: list[Answer]) -> None:
    assert probes, "no probe in the window"
    bad = [
        (p.error, p.status, round(p.seconds, 2))
        for p in probes
        if p.seconds >= PROBE_BOUND or (p.status != 200 and not p.in_flight)
    ]
    assert not bad, f"{len(bad)} of {len(probes)} probes failed or slow: {bad[:5]}"


def _readyz(url: str) -> int:
    return httpx.get(f"{url}/readyz", timeout=30).status_code


def _wait_readyz(url: str, status: int, seconds: float = 30) -> float:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _readyz(url) == status:
            return time.monotonic()
        time.sleep(0.1)
    raise AssertionError(f"/readyz did not answer {status} within {seconds} s")


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    """Engagement trained on a private PostgreSQL, its features in a private Redis."""
    folder = tmp_path_factory.mktemp("outages")
    postgres, redis = PrivatePostgres(), OutageRedis(folder)
    try:
        postgres.start()
        redis.start()
        postgres.create_database("smap_outages")
        env = {
            "SMAP_PROFILE": "services",
            "SMAP_DATA_DIR": str(folder / "smap"),
            "SMAP_DATABASE": "smap_outages",
            "SMAP_POSTGRES__PORT": str(postgres.port),
            "SMAP_POSTGRES__CONNECT_TIMEOUT_SECONDS": "2",
            "SMAP_REDIS__PORT": str(redis.port),
            "SMAP_SERVING__LOG_FLUSH_SECONDS": "0.2",
        }
        settings = load_settings(env=env)
        flows.prepare_data(settings)
        train(settings, "engagement", trials=2, families=("linear",))
        yield settings, env, postgres, redis
    finally:
        if redis.process is not None and redis.process.poll() is None:
            redis.thaw()
            redis.process.terminate()
            redis.process.wait(10)
        postgres.remove()


@pytest.fixture(scope="module")
def service(platform, tmp_path_factory):
    """`smap serve` (one worker) on the platform; yields its URL and its log file."""
    settings, env, _postgres, _redis = platform
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    with open(log_path, "wb") as log_file:
        process = start_service(
            settings, "127.0.0.1", port, 1, env, stdout=log_file, stderr=subprocess.STDOUT
        )
        try:
            wait_ready(url, process, timeout=180)
            yield url, log_path
        finally:
            stop_service(process, timeout=60)


@pytest.fixture
def healthy(platform, service):
    """Each test starts on a running platform that the service finds ready."""
    _settings, _env, postgres, redis = platform
    if not postgres.running():
        postgres.start()
    if redis.process.poll() is not None:
        redis.start()
    _wait_readyz(service[0], 200, seconds=60)
    return service[0]


def test_redis_stopped_or_hung_is_a_quick_503_and_the_probes_answer(platform, healthy):
    _settings, _env, _postgres, redis = platform
    url = healthy
    where = f"Redis at 127.0.0.1:{redis.port}"
    with Traffic(url) as traffic:
        traffic.wait_for(lambda a: a.status == 200, "no answer before the outage")

        for outage, (stop, back) in {
            "stopped": (redis.stop, redis.start),
            "hung": (redis.freeze, redis.thaw),
        }.items():
            down = time.monotonic()
            stop()
            time.sleep(6)  # the incident: 10 s of Redis down
            up = time.monotonic()
            back()
            recovered = traffic.wait_for(
                lambda a: a.status == 200, f"no 200 after Redis {outage}", seconds=60
            )
            _report(f"Redis {outage}", traffic.overlapping(down, up), traffic.probed(down, up))
            # answers that started once the outage had settled in and ended before it did
            # (one under way when Redis went or came back may be a 200)
            during = traffic.answered(down + 0.5, up - 0.5)
            print(f"Redis {outage}: the 503s {_percentiles([a.seconds for a in during])}")
            assert len(during) >= 5, f"Redis {outage}: only {len(during)} answers in 5.5 s"
            wrong = [(a.status, a.error[:120]) for a in during if a.status != 503]
            assert not wrong, f"Redis {outage}: answers other than 503: {wrong[:5]}"
            assert all(where in a.error for a in during), during[0].error
            slow = [round(a.seconds, 2) for a in during if a.seconds >= ANSWER_BOUND]
            assert not slow, f"Redis {outage}: 503s slower than {ANSWER_BOUND} s: {slow}"
            _probes_held(traffic.probed(down, time.monotonic()))

            time.sleep(1)
            # from when the first 200 came back (answers started while it was under way may
            # still be told the store is down: one request a second tries it)
            after = traffic.answered(recovered.ended)
            assert after and all(a.status == 200 and not a.degraded for a in after), [
                (a.status, a.degraded) for a in after
            ]
            _wait_readyz(url, 200, seconds=10)


def test_an_emptied_redis_is_degraded_until_materialized(platform, healthy):
    settings, _env, _postgres, redis = platform
    url = healthy
    with Traffic(url) as traffic:
        traffic.wait_for(lambda a: a.status == 200, "no answer before the flush")
        time.sleep(0.5)
        before = {a.value for a in traffic.answered(0) if a.status == 200}
        assert len(before) == 1 and not any(a.degraded for a in traffic.answered(0))

        flushed = time.monotonic()
        redis.flushdb()
        noticed = _wait_readyz(url, 503, seconds=15)
        print(f"\nreadiness degraded {noticed - flushed:.1f} s after FLUSHDB")
        time.sleep(1)
        degraded = traffic.answered(noticed)
        assert degraded, "no answer while degraded"
        for answer in degraded:  # 200 saying it is degraded, or 503: never a silent default
            assert answer.status in (200, 503), (answer.status, answer.error[:120])
            assert "smap features materialize" in answer.degraded, answer
        assert {a.value for a in degraded if a.status == 200}.isdisjoint(before)
        meta = httpx.get(f"{url}/metadata", timeout=30).json()
        assert not meta["online_store_ok"]
        assert "smap features materialize" in meta["online_store_reason"]

        flows.materialize_features(settings)
        ready = _wait_readyz(url, 200, seconds=15)
        time.sleep(1)
        after = traffic.answered(ready + 0.1)
        assert after and all(a.status == 200 and not a.degraded for a in after), after[:3]
        assert {a.value for a in after} == before


def test_a_postgres_outage_keeps_answering_and_logs_the_rows_later(platform, healthy, service):
    settings, _env, postgres, _redis = platform
    url, log_path = healthy, service[1]
    lines_before = len(log_path.read_text(errors="replace").splitlines())
    with Traffic(url) as traffic:
        traffic.wait_for(lambda a: a.status == 200, "no answer before the outage")
        down = time.monotonic()
        postgres.stop()
        time.sleep(6)
        ready_during = _readyz(url)
        postgres.start()
        up = time.monotonic()
        during = traffic.answered(down, up)
        _report("PostgreSQL stopped", traffic.overlapping(down, up), traffic.probed(down, up))
        assert len(during) >= 5
        wrong = [(a.status, a.error[:120]) for a in during if a.status != 200]
        assert not wrong, f"answers other than 200 while PostgreSQL was down: {wrong[:5]}"
        assert max(a.seconds for a in during) < ANSWER_BOUND
        _probes_held(traffic.probed(down, up))
        assert ready_during == 200  # what answers needs (Redis, the champion) is there
    logged_during = {a.request_id for a in during}

    table = f"{settings.postgres.db_schema}.predictions"
    deadline = time.monotonic() + 30
    while True:  # written after the outage, by the flushing thread (every 0.2 s)
        with psycopg2.connect(settings.postgres.dsn()) as conn, conn.cursor() as cur:
            cur.execute(f"SELECT DISTINCT request_id FROM {table}")
            found = {row[0] for row in cur.fetchall()}
        conn.close()
        if logged_during <= found or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert logged_during <= found, f"{len(logged_during - found)} answers never logged"
    meta = httpx.get(f"{url}/metadata", timeout=30).json()
    assert meta["predictions_dropped"] == 0

    lines = log_path.read_text(errors="replace").splitlines()[lines_before:]
    ours = [line for line in lines if "prediction log" in line]
    warned = [line for line in ours if "prediction log: not written" in line]
    assert len(warned) == 1, ours[:10]  # one line for the outage, not one per flush
