"""`smap cluster up | down | status` on real processes: the session's cluster has two alive
workers and lists the applications run on it; a second `up` is refused; a taken port names
its setting; `down` leaves no process behind and may be repeated."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.request import urlopen

import pytest
from cluster_fixtures import smap

from configs.settings import load_settings
from pipelines import cluster
from pipelines.serving import free_port

pytestmark = pytest.mark.integration

# a Spark application on the profile's master whose executors report their interpreter
APPLICATION = """
import json
from configs.settings import load_settings
from ingestion.spark import spark_session

session = spark_session(load_settings(), "lifecycle-check")
rdd = session.sparkContext.parallelize(range(8), 4)
print(json.dumps(sorted(set(rdd.map(lambda _: __import__("sys").executable).collect()))))
session.stop()
"""


def master_json(settings) -> dict:
    with urlopen(f"http://{settings.cluster.host}:{settings.cluster.spark_webui_port}/json/") as r:
        return json.loads(r.read())


def test_up_gives_two_alive_workers_that_run_an_application(cluster_settings, cluster_env):
    workers = [w for w in master_json(cluster_settings)["workers"] if w["state"] == "ALIVE"]
    assert len(workers) == 2
    assert {w["cores"] for w in workers} == {cluster_settings.cluster.worker_cores}

    ran = subprocess.run(
        [sys.executable, "-c", APPLICATION],
        env={**_base_env(), **cluster_env},
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    # executors run smap's interpreter, so Python on them has smap's environment
    assert json.loads(ran.stdout.strip().splitlines()[-1]) == [sys.executable]

    completed = {a["name"]: a["state"] for a in master_json(cluster_settings)["completedapps"]}
    assert completed.get("smap-lifecycle-check") == "FINISHED"
    found = cluster.status(cluster_settings)
    assert found.workers_alive == 2 and found.tracking_healthy
    assert all(found.alive.values()) and len(found.alive) == 4
    shown = smap("cluster", "status", env=cluster_env)
    assert shown.returncode == 0 and "smap-lifecycle-check" in shown.stdout


def test_up_twice_is_refused_and_leaves_the_cluster_running(cluster_settings, cluster_env):
    again = smap("cluster", "up", env=cluster_env)
    assert again.returncode == 1
    assert again.stderr.startswith("error: the cluster is already up")
    assert len(again.stderr.strip().splitlines()) == 1
    assert cluster.status(cluster_settings).workers_alive == 2


def test_a_taken_port_is_named_by_its_setting(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = {
            "SMAP_PROFILE": "cluster",
            "SMAP_DATA_DIR": str(tmp_path / "smap"),
            "SMAP_CLUSTER__SPARK_PORT": str(free_port()),
            "SMAP_CLUSTER__SPARK_WEBUI_PORT": str(free_port()),
            "SMAP_CLUSTER__MLFLOW_PORT": str(taken.getsockname()[1]),
        }
        refused = smap("cluster", "up", env=env)
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: cluster.mlflow_port: 127.0.0.1:")
    assert "SMAP_CLUSTER__MLFLOW_PORT" in refused.stderr
    assert not (tmp_path / "smap" / "cluster").exists()  # nothing was started


def one_worker_cluster(tmp_path: Path, database: str) -> dict[str, str]:
    """The environment of a cluster profile with one small worker on free ports."""
    return {
        "SMAP_PROFILE": "cluster",
        "SMAP_DATA_DIR": str(tmp_path / "smap"),
        "SMAP_DATABASE": database,
        "SMAP_CLUSTER__SPARK_PORT": str(free_port()),
        "SMAP_CLUSTER__SPARK_WEBUI_PORT": str(free_port()),
        "SMAP_CLUSTER__MLFLOW_PORT": str(free_port()),
        "SMAP_CLUSTER__WORKERS": "1",
        "SMAP_CLUSTER__WORKER_MEMORY": "512m",
    }


def test_down_leaves_no_process_and_can_be_repeated(tmp_path, pg_database):
    env = one_worker_cluster(tmp_path, pg_database)
    settings = load_settings("cluster", env=env)
    started = smap("cluster", "up", env=env)
    assert started.returncode == 0, started.stderr[-2000:]
    state = cluster.read_state(settings)
    assert state is not None
    groups = {m.pid for m in state.members}
    assert [m.name for m in state.members] == ["spark-master", "spark-worker-1", "mlflow"]
    assert all(m.alive() for m in state.members)

    stopped = smap("cluster", "down", env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped spark-master, spark-worker-1, mlflow" in stopped.stdout
    assert not _processes_in(groups)  # the members and their children (executors, web workers)
    assert cluster.read_state(settings) is None
    for port in (settings.cluster.spark_port, settings.cluster.mlflow_port):
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))  # free again
    again = smap("cluster", "down", env=env)
    assert again.returncode == 0 and "cluster is not up" in again.stdout


def _processes_in(groups: set[int]) -> list[int]:
    """Live (not zombie) processes whose process group is one of `groups`."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) in groups:
            found.append(int(stat.parent.name))
    return found


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SMAP_")}


def test_down_stops_what_a_killed_up_had_started(tmp_path, pg_database):
    env = one_worker_cluster(tmp_path, pg_database)
    settings = load_settings("cluster", env=env)
    starting = subprocess.Popen(
        [sys.executable, "-m", "pipelines", "cluster", "up"],
        env={**_base_env(), **env},
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and starting.poll() is None:
            state = cluster.read_state(settings)
            if state is not None and state.members:
                break  # the master is recorded: up is half-way
            time.sleep(0.2)
    finally:
        starting.kill()
        starting.wait()
    state = cluster.read_state(settings)
    assert state is not None and state.members[0].name == "spark-master"
    stopped = smap("cluster", "down", env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert not _processes_in({m.pid for m in state.members})
