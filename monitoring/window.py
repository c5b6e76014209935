"""The current window of a check: what the service really answered, from the prediction log,
with the labels that have matured since.

A window holds the rows one champion version answered after the task's previous check (at
most `monitoring.max_rows`, the newest). Rows `best_posting_time` scored as candidate hours
are left out: they are what-ifs, not posts anyone made.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd

from configs.errors import SmapError
from configs.settings import Settings
from serving.prediction_log import COLUMNS, TABLE
from training.tasks import Task


class WindowError(SmapError):
    """The prediction log cannot give a window to judge (unreadable, or malformed rows)."""


@dataclass(frozen=True)
class Window:
    task: str
    version: int
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    frame: pd.DataFrame  # features, `prediction`, entity keys, `logged_at`, `label`

    @property
    def labelled(self) -> int:
        return int(self.frame["label"].notna().sum()) if len(self.frame) else 0


def _parquet_rows(folder: Path, task: str, version: int, after) -> pd.DataFrame:
    import pyarrow.parquet as pq

    parts = sorted(folder.glob("part-*.parquet"))
    if after is not None:  # a part is named by its flush time: older parts hold older rows
        stamp = pd.Timestamp(after).tz_convert("UTC").strftime("%Y%m%dT%H%M%S%f")
        parts = [p for p in parts if p.name[len("part-") : len("part-") + len(stamp)] >= stamp]
    frames = []
    for part in parts:
        try:
            table = pq.read_table(
                part, filters=[("task", "=", task), ("model_version", "=", version)]
            )
        except Exception as exc:  # noqa: BLE001 - any unreadable part is the same problem
            raise WindowError(f"prediction log: {part.name} cannot be read ({exc})") from None
        frames.append(table.to_pandas())
    if not frames:
        return pd.DataFrame(columns=list(COLUMNS))
    return pd.concat(frames, ignore_index=True)


def _postgres_rows(settings: Settings, task: str, version: int, after, limit: int):
    import psycopg2

    table = f"{settings.postgres.db_schema}.{TABLE}"
    with psycopg2.connect(settings.postgres.dsn()) as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s)", (table,))
        if cur.fetchone()[0] is None:
            return pd.DataFrame(columns=list(COLUMNS))
        cur.execute(
            f"SELECT {', '.join(COLUMNS)} FROM {table} WHERE task = %s AND model_version = %s"
            " AND logged_at > %s ORDER BY logged_at DESC LIMIT %s",
            (task, version, after or datetime(1970, 1, 1), limit),
        )
        rows = cur.fetchall()
    return pd.DataFrame(rows, columns=list(COLUMNS))


def logged_rows(settings: Settings, task: str, version: int, after=None) -> pd.DataFrame:
    """Raw log rows of `task` answered by `version`, logged after `after`, newest kept."""
    limit = settings.monitoring.max_rows
    if settings.warehouse.type == "postgres":
        rows = _postgres_rows(settings, task, version, after, limit)
    else:
        rows = _parquet_rows(settings.root / TABLE, task, version, after)
    if rows.empty:
        return rows
    rows["logged_at"] = pd.to_datetime(rows["logged_at"], utc=True)
    if after is not None:
        rows = rows[rows.logged_at > pd.Timestamp(after)]
    return rows.sort_values("logged_at", kind="stable").tail(limit).reset_index(drop=True)


def _objects(texts: pd.Series, column: str) -> pd.DataFrame:
    try:
        return pd.DataFrame.from_records([json.loads(t) for t in texts], index=texts.index)
    except (TypeError, ValueError) as exc:
        raise WindowError(
            f"prediction log: a row's {column} is not a JSON object ({exc})"
        ) from None


def parse(rows: pd.DataFrame) -> pd.DataFrame:
    """Feature vectors and entity keys out of their JSON text, beside the prediction."""
    if rows.empty:
        return pd.DataFrame(columns=["logged_at", "prediction"])
    features = _objects(rows["features"], "features")
    entities = _objects(rows["entity"], "entity").add_prefix("key_")
    frame = pd.concat([features, entities], axis=1)
    frame["prediction"] = pd.to_numeric(rows["prediction"], errors="coerce")
    frame["logged_at"] = rows["logged_at"]
    if "key_candidate" in frame:
        frame = frame[frame["key_candidate"].isna()].drop(columns="key_candidate")
    return frame.reset_index(drop=True)


def matured_labels(warehouse, task: Task, frame: pd.DataFrame) -> pd.Series:
    """The actual outcome of each logged row where it is known by now, else NaN."""
    if frame.empty or task.matured_labels is None:
        return pd.Series(float("nan"), index=frame.index)
    return task.matured_labels(warehouse, task, frame)


def current_window(settings: Settings, warehouse, task: Task, version: int, after=None) -> Window:
    """The rows `version` answered since `after`, parsed and labelled where possible."""
    frame = parse(logged_rows(settings, task.name, version, after))
    frame["label"] = matured_labels(warehouse, task, frame)
    start = frame.logged_at.min() if len(frame) else None
    end = frame.logged_at.max() if len(frame) else None
    return Window(task.name, version, start, end, frame)
