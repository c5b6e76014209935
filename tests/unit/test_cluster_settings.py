"""The cluster profile's MLflow over HTTP and `smap cluster`'s checks that start nothing:
where the tracking server is, that its experiments keep no local artifact folder, which
port is taken, and the state file `down` and `status` read."""

from __future__ import annotations

import os
import socket

import pytest

from analytics.report import no_registry
from configs.settings import TRACKING_SERVER, load_settings
from pipelines import cluster
from pipelines.cli import main
from pipelines.demo import next_commands


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


def test_the_cluster_profile_tracks_over_http_with_the_servers_artifact_store(tmp_path):
    settings = load_settings(
        "cluster", env={"SMAP_DATA_DIR": str(tmp_path), "SMAP_CLUSTER__MLFLOW_PORT": "5123"}
    )
    assert settings.mlflow_tracking_uri == "http://127.0.0.1:5123"
    assert settings.mlflow_artifact_root is None  # experiments take the server's mlflow-artifacts:
    assert TRACKING_SERVER.server_database(settings) is None  # `smap cluster up` creates it
    assert "@127.0.0.1:5432/smap_mlflow?" in TRACKING_SERVER.store.url(settings)


def test_a_given_artifact_location_or_tracking_uri_wins(tmp_path):
    env = {"SMAP_DATA_DIR": str(tmp_path), "SMAP_MLFLOW__ARTIFACT_LOCATION": "s3://bucket/art"}
    assert load_settings("cluster", env=env).mlflow_artifact_root == "s3://bucket/art"
    env = {"SMAP_DATA_DIR": str(tmp_path), "SMAP_MLFLOW__TRACKING_URI": "http://mlflow:80"}
    assert load_settings("local", env=env).mlflow_artifact_root is None
    local = load_settings("local", env={"SMAP_DATA_DIR": str(tmp_path)})
    assert local.mlflow_artifact_root == (tmp_path.resolve() / "mlartifacts").as_uri()


def test_a_server_that_does_not_answer_has_no_registry(tmp_path):
    settings = load_settings(
        "cluster",
        env={"SMAP_DATA_DIR": str(tmp_path), "SMAP_CLUSTER__MLFLOW_PORT": str(closed_port())},
    )
    assert not TRACKING_SERVER.exists(settings, timeout_seconds=1)
    assert no_registry(settings)  # the report says so at once instead of retrying


def free_ports(*names: str) -> dict[str, str]:
    """SMAP_CLUSTER__<NAME> variables on free ports: the defaults may be a running cluster's."""
    from pipelines.serving import free_port

    return {f"SMAP_CLUSTER__{name}": str(free_port()) for name in names}


def test_a_taken_port_names_its_setting(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = load_settings(
            "cluster",
            env={
                "SMAP_DATA_DIR": str(tmp_path),
                **free_ports("SPARK_PORT", "MLFLOW_PORT"),  # a cluster up here: not 7077
                "SMAP_CLUSTER__SPARK_WEBUI_PORT": str(port),
            },
        )
        with pytest.raises(cluster.ClusterError, match=r"^cluster\.spark_webui_port: 127\.0\.0"):
            cluster.check_ports(settings)


def test_two_settings_on_one_port_are_refused(tmp_path):
    settings = load_settings(
        "cluster",
        env={
            "SMAP_DATA_DIR": str(tmp_path),
            **free_ports("SPARK_WEBUI_PORT"),
            "SMAP_CLUSTER__SPARK_PORT": "7177",
            "SMAP_CLUSTER__MLFLOW_PORT": "7177",
        },
    )
    with pytest.raises(cluster.ClusterError, match="cluster.mlflow_port: port 7177 is also "):
        cluster.check_ports(settings)


def test_the_state_file_round_trips_and_a_gone_pid_is_not_running():
    member = cluster.Member("mlflow", 2**22 + 1, "http://127.0.0.1:1", "/x.log", "mlflow")
    state = cluster.ClusterState("now", "spark://h:1", "http://h:2", "http://h:3", (member,))
    assert cluster.ClusterState.from_json(state.to_json()) == state
    assert not member.alive()


def test_a_pid_running_something_else_is_not_a_member():
    assert cluster.Member("x", os.getpid(), "", "", "pytest").alive()
    assert not cluster.Member("x", os.getpid(), "", "", "org.apache.spark.deploy").alive()


def test_down_and_status_without_a_cluster_say_it_is_not_up(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SMAP_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SMAP_CLUSTER__MLFLOW_PORT", str(closed_port()))
    assert main(["cluster", "down"]) == 0
    assert main(["cluster", "status"]) == 0
    assert capsys.readouterr().out.splitlines() == ["cluster is not up", "cluster is not up"]


def test_the_demo_points_at_the_servers_own_ui(tmp_path):
    settings = load_settings(
        "cluster", env={"SMAP_DATA_DIR": str(tmp_path), "SMAP_CLUSTER__MLFLOW_PORT": "5123"}
    )
    assert next_commands(settings)["mlflow ui"] == "open http://127.0.0.1:5123"
