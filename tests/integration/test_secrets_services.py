"""A whole services run with a password: it never lands in a file, the output, a log or the
database (the test server trusts local connections, so any password connects)."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from pipelines.cli import main

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
PASSWORD = "pw #N0t-[in]-any:file"


def _forms(secret: str) -> list[bytes]:
    """The password as written, and as it appears inside a URL."""
    return [form.encode() for form in {secret, quote(secret, safe=""), quote_plus(secret)}]


def _holding(data: bytes) -> bool:
    return any(form in data for form in _forms(PASSWORD))


def _files_holding(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and _holding(p.read_bytes())]


def test_services_run_never_writes_or_prints_the_password(
    services_settings, monkeypatch, capsys, caplog
):
    caplog.set_level(logging.DEBUG)
    for key, value in {
        "SMAP_PROFILE": "services",
        "SMAP_DATA_DIR": str(services_settings.data_dir),
        "SMAP_DATABASE": services_settings.postgres.database,
        "SMAP_FEAST__PROJECT": services_settings.feast.project,
        "SMAP_POSTGRES__PASSWORD": PASSWORD,
    }.items():
        monkeypatch.setenv(key, value)
    export, mapping = FIXTURES / "posts_export.csv", FIXTURES / "posts_mapping.yaml"

    for command in (
        ["ingest", "csv", str(export), "--mapping", str(mapping)],
        ["ingest"],
        ["features", "apply"],
        ["features", "materialize"],
        ["config", "show"],
    ):
        assert main(command) == 0, command

    captured = capsys.readouterr()
    assert not _holding((captured.out + captured.err + caplog.text).encode())
    assert (services_settings.feature_repo_dir / "feature_store.yaml").is_file()
    assert _files_holding(services_settings.root) == []
    dump = subprocess.run(
        ["pg_dump", "-h", "127.0.0.1", "-U", "postgres", services_settings.postgres.database],
        capture_output=True,
        timeout=120,
    )
    assert dump.returncode == 0 and b"content_posts" in dump.stdout
    assert not _holding(dump.stdout)
