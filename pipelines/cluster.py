"""`smap cluster up | down | status`: a Spark standalone master with its workers and an MLflow
tracking server on this machine, started from the installed packages' own launchers
(pyspark's `bin/spark-class`, `mlflow server`), so the cluster profile runs on real servers.

Each process leads a session of its own: its children (Spark's executors, MLflow's web
workers) share its process group and stop with it. Pids, ports and logs are written to
`<data_dir>/cluster/state.json`, which `down` and `status` read.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

from configs.errors import SmapError
from configs.settings import TRACKING_SERVER, Settings, telemetry_env
from ingestion.warehouse import ensure_server_database

# the processes `up` started in this process, to tell at once when one exits while starting
_CHILDREN: dict[int, subprocess.Popen] = {}
MLFLOW_WORKERS = 2  # the server's web workers; MLflow's default of 4 crowds a 2-core machine
POLL_SECONDS = 0.5


class ClusterError(SmapError, RuntimeError):
    """The cluster cannot start, or is in a state the command cannot act on."""


@dataclass(frozen=True)
class Member:
    """One process `up` started."""

    name: str  # spark-master, spark-worker-1, ..., mlflow
    pid: int
    url: str  # where it answers (the master's spark:// URL, a web UI, the server)
    log: str
    marker: str  # a word of its command line: a recycled pid is never taken for it

    def alive(self) -> bool:
        return _running(self.pid, self.marker)


@dataclass(frozen=True)
class ClusterState:
    started_at: str
    master: str  # spark://host:port, what SparkSettings.master names
    master_ui: str
    tracking_uri: str
    members: tuple[Member, ...]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> ClusterState:
        data = json.loads(text)
        members = tuple(Member(**m) for m in data.pop("members"))
        return cls(members=members, **data)


@dataclass(frozen=True)
class ClusterStatus:
    state: ClusterState | None
    alive: dict[str, bool]  # member name -> running
    workers_alive: int | None  # as the master says; None when it does not answer
    applications: list[dict]  # the master's running then completed applications
    tracking_healthy: bool


def cluster_dir(settings: Settings) -> Path:
    return settings.root / "cluster"


def state_path(settings: Settings) -> Path:
    return cluster_dir(settings) / "state.json"


def read_state(settings: Settings) -> ClusterState | None:
    path = state_path(settings)
    return ClusterState.from_json(path.read_text()) if path.is_file() else None


def spark_home() -> Path:
    """The Spark that ships inside the pyspark package (jars and `bin/spark-class`)."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        raise ClusterError("pyspark is not installed in smap's environment")
    return Path(spec.origin).parent


def up(settings: Settings, timeout: float = 180) -> ClusterState:
    """Start the master, the workers and the tracking server; wait until each answers."""
    running = read_state(settings)
    if running is not None and any(m.alive() for m in running.members):
        raise ClusterError(
            f"the cluster is already up ({running.master}, MLflow {running.tracking_uri}); "
            "`smap cluster down` stops it"
        )
    c = settings.cluster
    check_ports(settings)
    ensure_server_database(TRACKING_SERVER.store.server_database(settings))
    logs = cluster_dir(settings) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    master = f"spark://{c.host}:{c.spark_port}"
    state = ClusterState(
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        master=master,
        master_ui=f"http://{c.host}:{c.spark_webui_port}",
        tracking_uri=TRACKING_SERVER.url(settings),
        members=(),
    )
    spark_class = str(spark_home() / "bin" / "spark-class")
    env = _spark_env(settings)
    started: list[Member] = []

    def record(member: Member) -> None:
        """Written as each starts: a `smap cluster up` killed half-way leaves what `down` needs."""
        started.append(member)
        path = state_path(settings)
        partial = path.with_suffix(".tmp")
        partial.write_text(replace(state, members=tuple(started)).to_json())
        partial.replace(path)  # whole or not at all: `down` may read it any time

    try:
        record(
            _start(
                "spark-master",
                [spark_class, "org.apache.spark.deploy.master.Master", "--host", c.host,
                 "--port", str(c.spark_port), "--webui-port", str(c.spark_webui_port)],
                env, logs, master, "org.apache.spark.deploy.master.Master",
            )
        )  # fmt: skip
        _wait(lambda: _master_json(state.master_ui) is not None, started, timeout, "master")
        for n in range(1, c.workers + 1):
            work = cluster_dir(settings) / "work" / f"worker-{n}"
            work.mkdir(parents=True, exist_ok=True)
            record(
                _start(
                    f"spark-worker-{n}",
                    [spark_class, "org.apache.spark.deploy.worker.Worker", "--host", c.host,
                     "--cores", str(c.worker_cores), "--memory", c.worker_memory,
                     "--webui-port", "0", "--work-dir", str(work), master],
                    env, logs, master, "org.apache.spark.deploy.worker.Worker",
                )
            )  # fmt: skip
        record(_start_mlflow(settings, logs))
        _wait(lambda: _alive_workers(state.master_ui) >= c.workers, started, timeout, "workers")
        _wait(lambda: TRACKING_SERVER.exists(settings, 2.0), started, timeout, "MLflow server")
    except BaseException:
        _stop(started)
        state_path(settings).unlink(missing_ok=True)
        raise
    return replace(state, members=tuple(started))


def down(settings: Settings, grace: float = 15) -> list[Member]:
    """Stop every member (SIGTERM to its process group, SIGKILL after `grace`); the members
    that were still running. Nothing running is not an error."""
    state = read_state(settings)
    if state is None:
        return []
    stopped = [m for m in state.members if m.alive()]
    _stop(list(state.members), grace)
    state_path(settings).unlink(missing_ok=True)
    return stopped


def status(settings: Settings) -> ClusterStatus:
    """What runs, the master's workers and applications, and whether MLflow answers."""
    state = read_state(settings)
    if state is None:
        return ClusterStatus(None, {}, None, [], TRACKING_SERVER.exists(settings, 2.0))
    info = _master_json(state.master_ui)
    applications = []
    if info is not None:
        for kind in ("activeapps", "completedapps"):
            applications += info.get(kind, [])
    return ClusterStatus(
        state=state,
        alive={m.name: m.alive() for m in state.members},
        workers_alive=None if info is None else _count_alive(info),
        applications=applications,
        tracking_healthy=TRACKING_SERVER.exists(settings, 2.0),
    )


def check_ports(settings: Settings) -> None:
    """Each port `up` binds is free on cluster.host; the error names the setting."""
    c = settings.cluster
    ports = {
        "cluster.spark_port": c.spark_port,
        "cluster.spark_webui_port": c.spark_webui_port,
        "cluster.mlflow_port": c.mlflow_port,
    }
    seen: dict[int, str] = {}
    for setting, port in ports.items():
        if port in seen:
            raise ClusterError(f"{setting}: port {port} is also {seen[port]}")
        seen[port] = setting
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
            try:
                sock.bind((c.host, port))
            except OSError as exc:
                raise ClusterError(
                    f"{setting}: {c.host}:{port} is not free ({exc.strerror}); choose another "
                    f"port (SMAP_{setting.upper().replace('.', '__')})"
                ) from None


def _spark_env(settings: Settings) -> dict[str, str]:
    """Spark binds to cluster.host; executors run smap's interpreter, so Python on them
    (Feast's compute engine, UDFs) has smap's environment."""
    env = dict(os.environ)
    env.update(telemetry_env(settings.telemetry))
    env["SPARK_LOCAL_IP"] = settings.cluster.host
    # the master's REST submission server would take the fixed port 6066: smap submits
    # through sessions, never through it
    env["SPARK_MASTER_OPTS"] = "-Dspark.master.rest.enabled=false"
    env["PYSPARK_PYTHON"] = sys.executable
    env["PYSPARK_DRIVER_PYTHON"] = sys.executable
    return env


def _start_mlflow(settings: Settings, logs: Path) -> Member:
    c = settings.cluster
    artifacts = settings.root / "mlartifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(telemetry_env(settings.telemetry))
    # through the environment: the URL may hold the password, and a command line is public
    env["MLFLOW_BACKEND_STORE_URI"] = TRACKING_SERVER.store.url(settings)
    # its job runner (GenAI jobs, 8 processes) has no work from smap
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    mlflow = Path(sys.executable).with_name("mlflow")
    command = [str(mlflow), "server", "--host", c.host, "--port", str(c.mlflow_port),
               "--workers", str(MLFLOW_WORKERS), "--serve-artifacts",
               "--artifacts-destination", str(artifacts)]  # fmt: skip
    return _start("mlflow", command, env, logs, TRACKING_SERVER.url(settings), "mlflow")


def _start(
    name: str, command: list[str], env: dict[str, str], logs: Path, url: str, marker: str
) -> Member:
    """Start one member in a session of its own, its output appended to its log."""
    log = logs / f"{name}.log"
    with log.open("ab") as sink:
        process = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: `down` stops its children too
            cwd=logs.parent,
        )
    _CHILDREN[process.pid] = process
    return Member(name, process.pid, url, str(log), marker)


def _wait(ready, started: list[Member], timeout: float, what: str) -> None:
    """Poll `ready` until true; a member that exits meanwhile fails at once with its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for member in started:
            if _CHILDREN[member.pid].poll() is not None:
                raise ClusterError(
                    f"{member.name} exited while starting: {_last_line(member.log)} "
                    f"(log: {member.log})"
                )
        if ready():
            return
        time.sleep(POLL_SECONDS)
    raise ClusterError(
        f"the {what} did not answer within {timeout:.0f} s (logs: {started[-1].log})"
    )


def _stop(members: list[Member], grace: float = 15) -> None:
    """SIGTERM to each member's process group, then SIGKILL to what is left after `grace`."""
    running = [m for m in members if _is_running(m)]
    for member in running:
        _signal_group(member.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(_is_running(m) for m in running) and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
    for member in running:
        _signal_group(member.pid, signal.SIGKILL)  # the group too: an executor left behind
        _reap(member.pid)


def _is_running(member: Member) -> bool:
    """A member started by this process is asked directly (it may not have exec'd yet)."""
    process = _CHILDREN.get(member.pid)
    return process.poll() is None if process is not None else member.alive()


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)  # started with start_new_session: its group id is its pid
    except (ProcessLookupError, PermissionError):
        pass


def _reap(pid: int) -> None:
    """Collect a child of this process (a member `up` started here) so it leaves no zombie."""
    process = _CHILDREN.pop(pid, None)
    if process is not None:
        process.wait()


def _running(pid: int, marker: str) -> bool:
    """True when `pid` runs and its command line holds `marker` (not a recycled pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    zombie = stat.rsplit(")", 1)[-1].split()[0] == "Z"
    return not zombie and marker.encode() in cmdline


def _master_json(ui: str) -> dict | None:
    try:
        with urlopen(f"{ui}/json/", timeout=2) as answer:
            return json.loads(answer.read())
    except (URLError, OSError, ValueError):
        return None


def _count_alive(info: dict) -> int:
    return sum(1 for worker in info.get("workers", []) if worker.get("state") == "ALIVE")


def _alive_workers(ui: str) -> int:
    info = _master_json(ui)
    return 0 if info is None else _count_alive(info)


def _last_line(log: str) -> str:
    try:
        lines = [line for line in Path(log).read_text(errors="replace").splitlines() if line]
    except OSError:
        return "no log"
    return lines[-1].strip() if lines else "no output"
