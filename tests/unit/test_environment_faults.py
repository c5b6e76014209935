"""Environment problems (stray variables, bad options, broken data directories, leftovers of a
killed run) give one line that says what to do, never a traceback."""

import functools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from configs import settings as settings_module
from configs.data_dir import DataDirError, require_data_dir
from configs.settings import ConfigError, load_settings
from ingestion.schema import ALL_TABLES
from ingestion.warehouse import ParquetWarehouse
from pipelines.cli import main


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch):
    """Each test sees its own warnings (they are given once per process)."""
    monkeypatch.setattr(settings_module, "_warned_env", set())


def test_a_stray_smap_variable_warns_with_the_closest_setting(capsys, monkeypatch):
    monkeypatch.setenv("SMAP_REDIS__PORTT", "6390")
    monkeypatch.setenv("SMAP_FOO", "1")
    assert main(["config", "show"]) == 0
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert (
        "warning: SMAP_REDIS__PORTT is not a smap setting, ignored; did you mean SMAP_REDIS__PORT?"
        in lines
    )
    assert "warning: SMAP_FOO is not a smap setting, ignored" in lines
    assert "port: 6379" in captured.out  # the typo changed nothing


def test_known_non_setting_variables_are_not_warned_about(capsys):
    env = {"SMAP_API_KEY": "k", "SMAP_DATABASE": "x", "SMAP_PROFILE": "services"}
    settings = load_settings(env=env)
    assert settings.postgres.database == "x"  # the profile's own ${SMAP_DATABASE}
    assert capsys.readouterr().err == ""


def test_a_settings_typo_suggests_a_known_variable(capsys):
    load_settings("local", env={"SMAP_DATABSE": "x", "SMAP_TRAINNG__TRIALS": "3"})
    err = capsys.readouterr().err
    assert "SMAP_DATABSE is not a smap setting, ignored; did you mean SMAP_DATABASE?" in err
    assert "did you mean SMAP_TRAINING__TRIALS?" in err


def test_a_value_that_is_not_yaml_is_one_line_naming_the_variable(capsys, monkeypatch):
    with pytest.raises(ConfigError, match=r"^config error: SMAP_TRAINING__TRIALS is not a valid"):
        load_settings("local", env={"SMAP_TRAINING__TRIALS": "[1"})
    monkeypatch.setenv("SMAP_TRAINING__TRIALS", "[1")
    assert main(["config", "show"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "SMAP_TRAINING__TRIALS" in err


@pytest.mark.parametrize("day", ["-5", "100000", "0", "180"])
def test_shift_at_outside_the_simulated_days_is_refused(day, capsys):
    assert main(["simulate", "--shift-at", day]) == 1
    err = capsys.readouterr().err
    assert (
        err
        == f"error: --shift-at: {day} is not a day of preset quick (180 days); choose 1 to 179\n"
    )


# --- a data directory that cannot be used ---


def test_a_data_directory_that_is_a_file_is_one_line(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "data"
    blocker.write_text("not a folder")
    monkeypatch.setenv("SMAP_DATA_DIR", str(blocker))
    assert main(["simulate"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"data directory {blocker} is a file, not a folder: set SMAP_DATA_DIR" in err
    assert main(["config", "show"]) == 0  # still shows where data_dir points


def test_a_data_directory_under_a_file_is_one_line(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "data"
    blocker.write_text("not a folder")
    monkeypatch.setenv("SMAP_DATA_DIR", str(blocker / "smap"))
    assert main(["features", "apply"]) == 1
    err = capsys.readouterr().err
    assert err == (
        f"error: data directory {blocker / 'smap'} cannot be created: {blocker} is a file; "
        "set SMAP_DATA_DIR (or data_dir in the profile) to a folder you can write\n"
    )


def _as_nobody(check) -> str:
    """Run `check()` in a child process that dropped root (root writes through chmod 555);
    returns the message of the DataDirError it raised, or '' if none."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        message = b""
        try:
            os.setgid(65534)
            os.setuid(65534)
            check()
        except DataDirError as exc:
            message = str(exc).encode()
        finally:
            os.write(write_end, message or b"-")
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        message = pipe.read().decode()
    os.waitpid(pid, 0)
    return "" if message == "-" else message


def test_a_read_only_data_directory_is_one_line():
    # /tmp, not tmp_path: pytest's folders are closed to other users
    read_only = Path(tempfile.mkdtemp(prefix="smap-ro-"))
    try:
        read_only.chmod(0o555)
        check = functools.partial(require_data_dir, read_only)
        if os.geteuid() == 0:
            message = _as_nobody(check)
        else:
            with pytest.raises(DataDirError) as err:
                check()
            message = str(err.value)
        assert message == (
            f"data directory {read_only} is not writable (permission denied): make it writable "
            "or set SMAP_DATA_DIR (or data_dir in the profile) to a folder you can write"
        )
    finally:
        read_only.chmod(0o755)
        shutil.rmtree(read_only)


# --- the Feast file registry: corrupt, empty ---


def _registry(monkeypatch, tmp_path, content: bytes) -> Path:
    data_dir = tmp_path / "smap"
    monkeypatch.setenv("SMAP_DATA_DIR", str(data_dir))
    path = data_dir / "feature_repo" / "registry.db"
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    return path


def test_a_corrupt_registry_says_to_apply_and_apply_rebuilds_it(tmp_path, monkeypatch, capsys):
    from feast.protos.feast.core.Registry_pb2 import Registry as RegistryProto

    path = _registry(monkeypatch, tmp_path, b"garbage\n")
    assert main(["features", "materialize"]) == 1
    err = capsys.readouterr().err
    assert err.endswith(
        f"error: the Feast registry {path} is corrupt: run `smap features apply` to rebuild it\n"
    )
    assert main(["features", "apply"]) == 0
    err = capsys.readouterr().err
    assert f"the Feast registry {path} was corrupt (kept as registry.db.corrupt-" in err
    (kept,) = path.parent.glob("registry.db.corrupt-*")
    assert kept.read_bytes() == b"garbage\n"  # nothing the user might want is deleted
    rebuilt = RegistryProto()
    rebuilt.ParseFromString(path.read_bytes())
    assert {v.spec.name for v in rebuilt.feature_views} >= {"user_engagement", "post_context"}


def test_an_empty_registry_says_nothing_is_registered(tmp_path, monkeypatch, capsys):
    _registry(monkeypatch, tmp_path, b"")
    assert main(["features", "materialize"]) == 1
    err = capsys.readouterr().err.splitlines()[-1]
    assert err == (
        "error: no feature views are registered in Feast project smap (run `smap features apply`)"
    )


# --- files a killed writer left in the Parquet warehouse ---


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def _tags(*names: str) -> pd.DataFrame:
    return pd.DataFrame({"hashtag_id": range(len(names)), "tag": list(names), "category": "news"})


def test_a_killed_writers_temporary_files_are_removed_by_the_next_write(tmp_path, capsys):
    warehouse = ParquetWarehouse(tmp_path / "warehouse")
    warehouse.write(ALL_TABLES["hashtags"], _tags("a"))
    dead, alive = _dead_pid(), os.getppid()
    stale = warehouse.root / f"hashtags.parquet.tmp-{dead}"
    running = warehouse.root / f"hashtags.parquet.tmp-{alive}"  # a live process's: kept
    stale.write_bytes(b"half a parquet file")
    running.write_bytes(b"being written")
    warehouse.write(ALL_TABLES["hashtags"], _tags("a", "b"))
    assert not stale.exists() and running.exists()
    assert list(warehouse.read("hashtags").tag) == ["a", "b"]
    assert "cleaned up after a killed smap writer: removed 1 temporary file(s)" in (
        capsys.readouterr().err
    )


def test_a_swap_a_killed_writer_left_half_done_is_undone(tmp_path, capsys):
    """Killed between renames of a multi-table write: the tables it already replaced are put
    back from its backups, so none of that write remains."""
    warehouse = ParquetWarehouse(tmp_path / "warehouse")
    warehouse.write(ALL_TABLES["hashtags"], _tags("old"))
    dead = _dead_pid()
    backup = warehouse.root / f"hashtags.parquet.bak-{dead}"
    os.link(warehouse.path("hashtags"), backup)  # what _swap_in does before each rename
    warehouse.path("hashtags").unlink()
    pd.DataFrame({"hashtag_id": [0], "tag": ["new"], "category": ["news"]}).to_parquet(
        warehouse.path("hashtags"), index=False
    )
    warehouse.write(ALL_TABLES["post_hashtags"], pd.DataFrame({"post_id": [1], "hashtag_id": [0]}))
    assert list(warehouse.read("hashtags").tag) == ["old"] and not backup.exists()
    assert "put back hashtags as they were" in capsys.readouterr().err
