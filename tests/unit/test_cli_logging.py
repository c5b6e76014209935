"""Library warnings and logs stay off the terminal (in <data_dir>/logs/smap.log) unless -v."""

import logging
import os
import warnings
from pathlib import Path

import pytest

from pipelines import flows, logs
from pipelines.cli import main


@pytest.fixture(autouse=True)
def _noisy_stage(monkeypatch):
    def simulate(*args, **kwargs):
        warnings.simplefilter("always")  # shown even if an earlier test already triggered it
        warnings.warn("a library deprecation notice", UserWarning, stacklevel=2)
        logging.getLogger("feast.infra").warning("a library log record")
        return {"content_posts": 1}

    monkeypatch.setattr(flows, "simulate", simulate)
    yield
    logs._replace_handlers()  # leave no handler on the root logger for other tests
    logging.captureWarnings(False)


def test_library_output_goes_to_the_log_file(capsys):
    assert main(["simulate"]) == 0
    captured = capsys.readouterr()
    assert "library" not in captured.err + captured.out
    assert "simulated" in captured.out
    log = (Path(os.environ["SMAP_DATA_DIR"]) / "logs" / "smap.log").read_text()
    assert "a library deprecation notice" in log and "a library log record" in log


def test_verbose_shows_library_output(capsys):
    assert main(["-v", "simulate"]) == 0
    err = capsys.readouterr().err
    assert "a library deprecation notice" in err and "a library log record" in err
