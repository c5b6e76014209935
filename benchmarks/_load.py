"""What the serving benchmarks share: the load generators, the platform and the server.

The load generators run in a process of their own (this file as a script), so the load costs
the benchmark's process nothing and the server is measured from outside:

- `closed`: N clients, each one keep-alive connection sending its next request when the last
  one is answered, for a number of seconds (`run_load`: counts and latency percentiles).
- `open`: requests sent at a fixed rate whatever the answers (`start_open_loop`): each at its
  planned time on an idle keep-alive connection of a pool (a new one when none is idle), each
  with its own `x-request-id`; its send time, status and latency (from its planned time, so a
  stalled server shows as latency, not as a slower sender) are written to a JSON file.

Both use raw asyncio streams with the request bytes built once: an HTTP client library such
as httpx spends about as much CPU per request as the server on the same 2 cores.

The platform (`build_platform`) and the server (`smap_server`) import smap inside the
functions, so the load generator's process loads none of it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

# statuses the open loop records besides HTTP's own
CONNECTION_ERROR = 0  # refused, reset, or closed before a whole answer
TIMEOUT = -1  # no answer within the timeout (counted from the planned send time)
NOT_SENT = -2  # open loop: no connection of the pool came free within the timeout


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


class Connection:
    """One keep-alive HTTP/1.1 connection with the request bytes built once: the load
    generator must cost far less than the servers it measures (httpx spent about as much CPU
    per request as the server, on the same 2 cores, and capped every server alike)."""

    def __init__(self, url: str, body: bytes):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port or 80
        self.head = (
            f"POST {parts.path or '/'} HTTP/1.1\r\nhost: {parts.netloc}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
        ).encode()
        self.tail = b"\r\n" + body
        self.request = self.head + self.tail
        self.reader = self.writer = None

    async def post(self, request_id: str | None = None) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        if request_id is None:
            self.writer.write(self.request)
        else:
            self.writer.write(self.head + f"x-request-id: {request_id}\r\n".encode() + self.tail)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
        if "content-length" in headers:
            await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding") == "chunked":
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        if headers.get("connection") == "close":
            self.close()
        return status

    @property
    def usable(self) -> bool:
        """Open, and not closed by the server while it sat idle."""
        return self.writer is not None and not self.reader.at_eof()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


# ---- closed loop: N clients, each sending its next request when answered ---------------------


async def _client(url: str, body: bytes, until: float, warm: float, lat: list, err: list):
    connection = Connection(url, body)
    try:
        while (now := time.perf_counter()) < until:
            try:
                ok = await connection.post() == 200
            except (OSError, asyncio.IncompleteReadError, ValueError):
                connection.close()
                ok = False
            if now >= warm:  # requests started during the warm-up are not counted
                (lat if ok else err).append((time.perf_counter() - now) * 1000)
    finally:
        connection.close()


async def closed_loop(url: str, body: bytes, clients: int, seconds: float, warmup: float) -> dict:
    start = time.perf_counter()
    warm, until = start + warmup, start + warmup + seconds
    latencies: list[float] = []
    errors: list[float] = []
    await asyncio.gather(
        *(_client(url, body, until, warm, latencies, errors) for _ in range(clients))
    )
    elapsed = time.perf_counter() - warm
    return {
        "requests": len(latencies),
        "errors": len(errors),
        "seconds": elapsed,
        "p50_ms": percentile(latencies, 0.5),
        "p99_ms": percentile(latencies, 0.99),
    }


def _payload_file(body: dict) -> Path:
    handle, name = tempfile.mkstemp(suffix=".json", prefix="smap-load-")
    os.close(handle)
    path = Path(name)
    path.write_text(json.dumps(body))
    return path


def run_load(url: str, body: dict, clients: int, seconds: float, warmup: float) -> dict:
    """Drive `url` from a separate process (closed loop); returns its counts and latency
    percentiles of the answered (200) requests."""
    payload = _payload_file(body)
    try:
        cmd = [
            sys.executable,
            __file__,
            "closed",
            url,
            "--payload",
            str(payload),
            "--clients",
            str(clients),
            "--seconds",
            str(seconds),
            "--warmup",
            str(warmup),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + warmup + 120)
        if done.returncode != 0:
            raise RuntimeError(f"load generator failed: {done.stderr.strip()[-500:]}")
        return json.loads(done.stdout)
    finally:
        payload.unlink(missing_ok=True)


# ---- open loop: a fixed rate whatever the answers --------------------------------------------


async def open_loop(
    url: str,
    body: bytes,
    rate: float,
    seconds: float,
    start_at: float,
    timeout: float,
    max_connections: int,
    id_prefix: str,
) -> dict:
    """Request i is planned at `start_at + i / rate` (time.monotonic(), the same clock in
    every process of the machine) and carries `x-request-id: <id_prefix><i>`. It waits for an
    idle connection of the pool (at most `max_connections` open at once); its latency runs
    from its planned time to the end of its answer, and past `timeout` from the planned time
    it is given up (TIMEOUT, its connection closed; NOT_SENT when no connection came free
    before then)."""
    total = int(rate * seconds)
    status = [TIMEOUT] * total
    latency = [0.0] * total
    idle: list[tuple[Connection, float]] = []  # (connection, last used): newest last
    slots = asyncio.Semaphore(max_connections)
    stale_after = 4.0  # servers close idle keep-alive connections (uvicorn: after 5 s)
    late: list[float] = []  # how late the sender was at each send, ms (the generator's lag)
    opened = 0

    async def one(i: int, planned: float) -> None:
        nonlocal opened
        async with slots:
            left = timeout - (time.monotonic() - planned)
            if left <= 0:  # waited out its whole timeout for a connection: never sent
                status[i], latency[i] = NOT_SENT, (time.monotonic() - planned) * 1000
                return
            connection = None
            while idle:
                candidate, used = idle.pop()
                if candidate.usable and time.monotonic() - used < stale_after:
                    connection = candidate
                    break
                candidate.close()
            if connection is None:
                connection = Connection(url, body)
                opened += 1
            try:
                code = await asyncio.wait_for(connection.post(f"{id_prefix}{i}"), left)
            except TimeoutError:
                code = TIMEOUT
                connection.close()
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                code = CONNECTION_ERROR
                connection.close()
            now = time.monotonic()
            status[i], latency[i] = code, (now - planned) * 1000
            if connection.usable:
                idle.append((connection, now))

    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    tasks = set()
    i = 0
    while i < total:
        now = time.monotonic()
        while i < total and start_at + i / rate <= now:  # everything due, even if late
            planned = start_at + i / rate
            late.append((now - planned) * 1000)
            task = asyncio.create_task(one(i, planned))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            i += 1
        if i < total:
            await asyncio.sleep(max(0.0, start_at + i / rate - time.monotonic()))
    if tasks:
        await asyncio.wait(tasks)
    for connection, _ in idle:
        connection.close()
    return {
        "rate": rate,
        "status": status,
        "latency_ms": [round(v, 3) for v in latency],
        "sender_late_ms": {
            "p50": percentile(late, 0.5),
            "p99": percentile(late, 0.99),
            "max": max(late, default=None),
        },
        "connections_opened": opened,
    }


class OpenLoop:
    """An open-loop load generator running in its own process; `result()` waits for it."""

    def __init__(self, process: subprocess.Popen, errors, payload: Path, out: Path, deadline):
        self.process, self.errors, self.payload, self.out = process, errors, payload, out
        self.deadline = deadline  # time.monotonic() by which it must have finished

    def result(self) -> dict:
        try:
            self.process.wait(timeout=max(1.0, self.deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise RuntimeError("the open-loop load generator did not finish in time") from None
        if self.process.returncode != 0:
            self.errors.seek(0)
            tail = self.errors.read().decode(errors="replace").strip()[-500:]
            raise RuntimeError(f"open-loop load generator failed: {tail}")
        return json.loads(self.out.read_text())

    def stop(self) -> None:
        """Kill it if it still runs, remove its files (idempotent)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.errors.close()
        self.payload.unlink(missing_ok=True)
        self.out.unlink(missing_ok=True)


def start_open_loop(
    url: str,
    body: dict,
    rate: float,
    seconds: float,
    start_at: float,
    timeout: float = 30.0,
    max_connections: int = 256,
    id_prefix: str = "load-",
) -> OpenLoop:
    """Start the open loop in a separate process (its own session: a Ctrl-C reaches the
    benchmark, which stops it); the first request is planned at `start_at` (monotonic)."""
    payload = _payload_file(body)
    out = payload.with_suffix(".out.json")
    cmd = [
        sys.executable,
        __file__,
        "open",
        url,
        "--payload",
        str(payload),
        "--out",
        str(out),
        "--rate",
        repr(rate),
        "--seconds",
        repr(seconds),
        "--start-at",
        repr(start_at),
        "--timeout",
        repr(timeout),
        "--max-connections",
        str(max_connections),
        "--id-prefix",
        id_prefix,
    ]
    errors = tempfile.TemporaryFile()  # its last lines explain a failure
    process = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=errors, start_new_session=True
    )
    return OpenLoop(process, errors, payload, out, start_at + seconds + timeout + 120)


# ---- the platform and the server -------------------------------------------------------------


@contextlib.contextmanager
def quiet():
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


def build_platform(root: Path, preset: str, family: str = "linear", settings=None):
    """A simulated platform with an engagement champion on engagement_v2 (one trial of
    `family`); returns (settings, its version). `settings` (default: the local profile under
    `root`) say where: a services profile builds in its database and Redis."""
    from rich.console import Console

    from configs.settings import load_settings
    from pipelines import flows
    from pipelines.training import train

    if settings is None:
        settings = load_settings("local", env={**os.environ, "SMAP_DATA_DIR": str(root)})
    Console(stderr=True).print(
        f"building a {preset} platform ({settings.profile} profile) under {settings.root} "
        "(simulate, ETL, Feast, one trial)"
    )
    with quiet():
        flows.prepare_data(settings, preset=preset)
        trained = train(settings, "engagement", trials=1, families=(family,))
    return settings, int(trained.version)


@contextlib.contextmanager
def smap_server(settings, workers: int, env: dict[str, str] | None = None):
    """`smap serve` of `settings` on a free loopback port, ready; yields (url, process).
    `env`: variables for the service alone (e.g. SMAP_DATABASE of a services profile)."""
    from pipelines.serving import local_service

    with local_service(settings, workers, env, timeout=180) as (url, process):
        yield url, process


def check(url: str, body: dict) -> None:
    """One request before the clock: a wrong payload fails here, not as a table of errors."""
    import httpx

    answer = httpx.post(url, json=body, timeout=60)
    if answer.status_code != 200:
        raise RuntimeError(f"{url}: {answer.status_code} {answer.text[:300]}")


# ---- the load generator's process ------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="smap benchmarks' load generator")
    parser.add_argument("mode", choices=("closed", "open"))
    parser.add_argument("url")
    parser.add_argument("--payload", type=Path, required=True, help="the JSON body")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--clients", type=int, default=1, help="closed: concurrent clients")
    parser.add_argument("--warmup", type=float, default=1.0, help="closed: unmeasured seconds")
    parser.add_argument("--rate", type=float, help="open: requests per second")
    parser.add_argument("--start-at", type=float, help="open: time.monotonic() of the first")
    parser.add_argument("--timeout", type=float, default=30.0, help="open: seconds per request")
    parser.add_argument("--max-connections", type=int, default=256)
    parser.add_argument("--id-prefix", default="load-")
    parser.add_argument("--out", type=Path, help="open: where the records go (JSON)")
    args = parser.parse_args(argv)
    body = args.payload.read_bytes()
    if args.mode == "closed":
        result = closed_loop(args.url, body, args.clients, args.seconds, args.warmup)
        print(json.dumps(asyncio.run(result)))
        return 0
    if args.rate is None or args.out is None:
        parser.error("open: --rate and --out are required")
    start_at = time.monotonic() if args.start_at is None else args.start_at
    result = open_loop(
        args.url,
        body,
        args.rate,
        args.seconds,
        start_at,
        args.timeout,
        args.max_connections,
        args.id_prefix,
    )
    records = asyncio.run(result)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(records))
    tmp.rename(args.out)  # the benchmark never reads half a file
    return 0


if __name__ == "__main__":
    sys.exit(main())
