"""Writers of one PostgreSQL warehouse at the same time lose no rows (advisory write lock)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from configs.settings import load_settings
from ingestion.csv_import import import_posts
from ingestion.warehouse import PostgresWarehouse, WarehouseError, open_warehouse

pytestmark = pytest.mark.integration


def _export(path: Path, account: str, rows: int) -> Path:
    lines = ["account,timestamp,type,category,text,reach,likes,comments,shares"]
    lines += [
        f"{account},2026-02-{1 + i % 28:02d}T{i % 24:02d}:00:00Z,image,travel,"
        f"{account} post {i},1000,10,1,1"
        for i in range(rows)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_imports_in_two_threads_keep_both_files(pg_database, tmp_path, monkeypatch):
    settings = load_settings(
        "services", env={"SMAP_DATABASE": pg_database, "SMAP_DATA_DIR": str(tmp_path)}
    )
    read = PostgresWarehouse.read

    def slow(self, name, columns=None):  # both imports would read before either writes
        frame = read(self, name, columns)
        time.sleep(0.3)
        return frame

    monkeypatch.setattr(PostgresWarehouse, "read", slow)
    files = [_export(tmp_path / "a.csv", "alpha", 30), _export(tmp_path / "b.csv", "beta", 50)]
    errors: list[Exception] = []

    def run(path: Path) -> None:
        try:  # one warehouse object per thread, as two processes would have
            import_posts(path, None, open_warehouse(settings), tmp_path / "rejects")
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(path,)) for path in files]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    posts = open_warehouse(settings).read("content_posts")
    users = open_warehouse(settings).read("users")
    assert len(posts) == 80 and posts.post_id.is_unique
    assert sorted(users.username) == ["alpha", "beta"] and users.user_id.is_unique


def test_postgres_gone_mid_call_is_one_line_naming_it(pg_database, tmp_path, monkeypatch):
    """The server ends our session (as a restart or failover would) while a write holds it."""
    import psycopg2

    settings = load_settings(
        "services", env={"SMAP_DATABASE": pg_database, "SMAP_DATA_DIR": str(tmp_path)}
    )
    warehouse = open_warehouse(settings)
    admin = psycopg2.connect(settings.postgres.dsn("postgres"))
    admin.autocommit = True
    connect = PostgresWarehouse.connect

    def connect_then_lose(self):
        conn = connect(self)
        with admin.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", (conn.get_backend_pid(),))
        return conn

    monkeypatch.setattr(PostgresWarehouse, "connect", connect_then_lose)
    with pytest.raises(WarehouseError) as err:
        warehouse.exists("content_posts")
    admin.close()
    assert str(err.value).startswith("PostgreSQL at 127.0.0.1:5432 failed: ")
    assert "\n" not in str(err.value) and err.value.__cause__ is None
