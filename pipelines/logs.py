"""Where the libraries' warnings and logs go: the terminal with `-v`, otherwise a log file.

Without `-v` the terminal shows only smap's own output (tables, progress, one-line errors);
library warnings and log records go to `<data_dir>/logs/smap.log`, kept across runs.
Records made before the data directory is known (import-time warnings) are buffered and
written there once it is.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_installed: list[logging.Handler] = []


def _replace_handlers(*handlers: logging.Handler) -> None:
    root = logging.getLogger()
    for handler in _installed:
        root.removeHandler(handler)
        handler.close()
    _installed[:] = handlers
    for handler in handlers:
        root.addHandler(handler)


def route_library_output(verbose: bool) -> None:
    """Before any library is imported: send warnings and logs to the terminal or a buffer."""
    # off then on: a second `main()` in one process (tests) finds warnings.showwarning reset by
    # whoever caught warnings in between, and `captureWarnings(True)` alone would not re-hook
    logging.captureWarnings(False)
    logging.captureWarnings(True)
    logging.getLogger().setLevel(logging.INFO)
    if verbose:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(logging.Formatter(FORMAT))
        _replace_handlers(stream)
        return
    # libraries that print on their own unless told otherwise (read when they are imported)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # tqdm on stderr
    _replace_handlers(logging.handlers.MemoryHandler(capacity=10_000, flushOnClose=False))


def log_to_data_dir(data_dir: Path) -> Path | None:
    """Once the data directory is known: write the buffered and later records to its log."""
    buffers = [h for h in _installed if isinstance(h, logging.handlers.MemoryHandler)]
    if not buffers:
        return None  # verbose, or not run from the CLI
    path = data_dir / "logs" / "smap.log"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        file = logging.FileHandler(path, encoding="utf-8")
    except OSError:
        return None  # an unwritable data directory is reported by the stage that writes there
    file.setFormatter(logging.Formatter(FORMAT))
    buffers[0].setTarget(file)
    buffers[0].flush()
    _replace_handlers(file)
    return path
