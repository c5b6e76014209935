"""The data directory every command writes to: usable, or one line saying what to change."""

from __future__ import annotations

import tempfile
from pathlib import Path

from configs.errors import SmapError

_CHANGE_IT = "set SMAP_DATA_DIR (or data_dir in the profile) to a folder you can write"


class DataDirError(SmapError):
    """The data directory is a file, sits under a file, or cannot be written."""


def require_data_dir(root: Path) -> Path:
    """Create the data directory if needed and prove it writable, before any stage starts (a
    stage failing half-way on it would end in a traceback, or after long work)."""
    if root.exists() and not root.is_dir():
        raise DataDirError(f"data directory {root} is a file, not a folder: {_CHANGE_IT}")
    blocker = next((p for p in root.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise DataDirError(
            f"data directory {root} cannot be created: {blocker} is a file; {_CHANGE_IT}"
        )
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise DataDirError(
            f"data directory {root} is not writable ({reason.lower()}): make it writable or "
            f"{_CHANGE_IT}"
        ) from None
    return root
