"""`smap build` packs the service with smap's code: the Bento serves from any directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from pipelines.cli import main
from pipelines.serving import free_port, stop_service, wait_ready

pytestmark = pytest.mark.integration


def test_a_built_bento_serves_from_another_directory(tmp_path, monkeypatch, capsys):
    home = tmp_path / "bentoml"
    monkeypatch.setenv("BENTOML_HOME", str(home))
    assert main(["build"]) == 0
    said = capsys.readouterr().out
    tag = said.split()[1].rstrip(";")
    assert tag.startswith("smap:")
    bento_src = next(home.glob("bentos/smap/*/src"))
    assert (bento_src / "serving" / "service.py").is_file()
    assert (bento_src / "configs" / "local.yaml").is_file()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(BENTOML_HOME=str(home), SMAP_DATA_DIR=str(tmp_path / "data"), PYTHONPATH="")
    port = free_port()
    bentoml = Path(sys.executable).with_name("bentoml")
    process = subprocess.Popen(
        [str(bentoml), "serve", tag, "--host", "127.0.0.1", "--port", str(port)],
        cwd=elsewhere, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, process, timeout=120, probe="/healthz")
        meta = httpx.get(f"{url}/metadata", timeout=10).json()
        engagement = next(t for t in meta["tasks"] if t["task"] == "engagement")
        assert engagement["serving"] is False and "champion" in engagement["reason"]
        answer = httpx.post(f"{url}/predict_churn", json={"user_ids": [1]}, timeout=10)
        assert answer.status_code == 503 and "churn" in answer.json()["error"]
    finally:
        stop_service(process)
