"""What a user installs: the built wheel in a clean virtual environment, run from elsewhere.

An editable install hides packaging bugs (a package left out of the wheel still imports from
the checkout), so this builds the wheel, installs it with the locked dependencies into a new
environment and runs `smap` from a folder that is not the checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def _uv() -> str:
    found = os.environ.get("UV") or shutil.which("uv")
    if not found:
        pytest.fail("uv is needed to build and install the wheel (make install provides it)")
    return found


def _run(*command: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, f"{' '.join(command)}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_wheel_installs_and_runs_from_another_folder(tmp_path: Path):
    uv = _uv()
    dist, venv, elsewhere = tmp_path / "dist", tmp_path / "venv", tmp_path / "elsewhere"
    elsewhere.mkdir()
    _run(uv, "build", "--wheel", "--out-dir", str(dist), "--quiet", cwd=ROOT)
    (wheel,) = dist.glob("smap-*.whl")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(
        _run(uv, "export", "--frozen", "--no-dev", "--no-hashes", "--no-emit-project", cwd=ROOT)
    )
    _run(uv, "venv", "--quiet", "--python", "3.11", str(venv), cwd=elsewhere)
    python = str(venv / "bin" / "python")
    _run(uv, "pip", "install", "--quiet", "--python", python, "-r", str(requirements), cwd=ROOT)
    _run(uv, "pip", "install", "--quiet", "--python", python, "--no-deps", str(wheel), cwd=ROOT)

    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "SMAP_DATA_DIR": str(elsewhere / "data"),
        "DO_NOT_TRACK": "true",
    }
    smap = str(venv / "bin" / "smap")
    assert "simulate" in _run(smap, "--help", cwd=elsewhere, env=env)
    shown = _run(smap, "config", "show", cwd=elsewhere, env=env)
    assert "profile: local" in shown and str(elsewhere / "data") in shown
    _run(smap, "config", "show", "--profile", "services", cwd=elsewhere, env=env)
    # the ingestion package ships too: a tiny simulation writes its tables from the wheel
    _run(smap, "simulate", "--preset", "quick", cwd=elsewhere, env=env)
    assert (elsewhere / "data" / "warehouse" / "content_posts.parquet").is_file()
    site = _run(python, "-c", "import pipelines, sys; print(pipelines.__file__)", cwd=elsewhere)
    assert str(ROOT) not in site
