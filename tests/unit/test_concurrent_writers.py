"""Writers of one warehouse at the same time (imports, the ETL, simulate) lose no rows."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from ingestion.csv_import import import_posts
from ingestion.warehouse import ParquetWarehouse

REPO = Path(__file__).resolve().parents[2]


def export(path: Path, account: str, rows: int) -> Path:
    """A post export of `rows` distinct posts by one account, in our own column names."""
    start = pd.Timestamp("2026-02-01", tz="UTC")
    frame = pd.DataFrame(
        {
            "account": account,
            "timestamp": [(start + pd.Timedelta(minutes=7 * i)).isoformat() for i in range(rows)],
            "type": "image",
            "category": "travel",
            "text": [f"{account} post {i} #tag{i % 5}" for i in range(rows)],
            "reach": 1000,
            "likes": 10,
            "comments": 1,
            "shares": 1,
        }
    )
    frame.to_csv(path, index=False)
    return path


def slow_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Widen the window between an import's read and its write, so unserialized imports
    would surely both read the warehouse before either writes."""
    read = ParquetWarehouse.read

    def slow(self, name, columns=None):
        frame = read(self, name, columns)
        time.sleep(0.3)
        return frame

    monkeypatch.setattr(ParquetWarehouse, "read", slow)


def test_imports_in_two_threads_keep_both_files(tmp_path, monkeypatch):
    first = export(tmp_path / "a.csv", "alpha", 40)
    second = export(tmp_path / "b.csv", "beta", 60)
    seed = export(tmp_path / "seed.csv", "seed", 1)
    import_posts(seed, None, ParquetWarehouse(tmp_path / "warehouse"), tmp_path / "rejects")
    slow_reads(monkeypatch)
    results, errors = {}, []

    def run(path: Path) -> None:
        try:  # each thread has its own warehouse object, as two processes would
            warehouse = ParquetWarehouse(tmp_path / "warehouse")
            results[path.name] = import_posts(path, None, warehouse, tmp_path / "rejects")
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(path,)) for path in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    assert results["a.csv"].rows_loaded == 40 and results["b.csv"].rows_loaded == 60
    posts = ParquetWarehouse(tmp_path / "warehouse").read("content_posts")
    users = ParquetWarehouse(tmp_path / "warehouse").read("users")
    assert len(posts) == 1 + 40 + 60 and posts.post_id.is_unique
    assert sorted(users.username) == ["alpha", "beta", "seed"] and users.user_id.is_unique
    assert set(posts.user_id) == set(users.user_id)


def _smap(args: list[str], data_dir: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMAP_")}
    env["SMAP_DATA_DIR"] = str(data_dir)
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_smap_ingest_csv_processes_at_once_keep_both_files(tmp_path):
    data_dir = tmp_path / "smap"
    files = [export(tmp_path / "a.csv", "alpha", 3000), export(tmp_path / "b.csv", "beta", 3000)]

    runs = [_smap(["ingest", "csv", str(path)], data_dir) for path in files]
    outcomes = [run.communicate(timeout=300) for run in runs]

    assert [run.returncode for run in runs] == [0, 0], outcomes
    posts = ParquetWarehouse(data_dir / "warehouse").read("content_posts")
    assert len(posts) == 6000 and posts.post_id.is_unique


def says_it_waits(run: subprocess.Popen) -> bool:
    """True once the process reports on stderr that it waits for the lock (bounded wait)."""
    seen = threading.Event()

    def watch() -> None:
        for line in run.stderr:
            if "waiting for another smap writer" in line:
                seen.set()
                return

    threading.Thread(target=watch, daemon=True).start()
    return seen.wait(timeout=120)


def test_a_writer_waits_for_the_lock_holder_and_says_so(tmp_path):
    data_dir = tmp_path / "smap"
    holder = ParquetWarehouse(data_dir / "warehouse")
    with holder.writing():
        run = _smap(["ingest", "csv", str(export(tmp_path / "a.csv", "alpha", 5))], data_dir)
        assert says_it_waits(run)
        assert not holder.exists("content_posts")  # nothing written while we hold the lock
    assert run.wait(timeout=120) == 0
    assert len(holder.read("content_posts")) == 5


def test_the_etl_waits_for_a_running_import(tmp_path):
    """`smap ingest` reads raw tables and writes analytics ones under the same lock."""
    data_dir = tmp_path / "smap"
    holder = ParquetWarehouse(data_dir / "warehouse")
    import_posts(export(tmp_path / "a.csv", "alpha", 30), None, holder, tmp_path / "rejects")
    with holder.writing():  # as an import in progress would
        run = _smap(["ingest"], data_dir)
        assert says_it_waits(run)
        assert not holder.exists("content_performance_metrics")
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, err
    assert len(holder.read("content_performance_metrics")) == 30


def test_a_killed_writer_leaves_no_lock_behind(tmp_path):
    """The kernel drops a SIGKILLed holder's lock: the next writer goes ahead."""
    root = tmp_path / "smap" / "warehouse"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; "
            "from ingestion.warehouse import ParquetWarehouse; "
            f"lock = ParquetWarehouse(Path({str(root)!r})).writing(); lock.__enter__(); "
            "print('locked', flush=True); time.sleep(600)",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    holder.kill()
    holder.wait(timeout=30)
    acquired = threading.Event()

    def write() -> None:
        with ParquetWarehouse(root).writing():
            acquired.set()

    threading.Thread(target=write, daemon=True).start()
    assert acquired.wait(timeout=60)
