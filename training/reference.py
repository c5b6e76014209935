"""The drift reference stored with every training run: what the model was fitted and tested
on, summarised once so a monitoring check never rescans the training set.

Each column is kept as a quantile sketch: its values sorted (nulls last) and read at evenly
spaced ranks, so a few thousand rows reproduce the column's distribution, its null share and
its category shares. Drift tests are per column, so a sketch stands in for the full frame;
the current window is sketched the same way (`monitoring/drift.py`), which keeps a check's
cost flat in the number of logged rows.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

SKETCH_ROWS = 2_000
PREDICTION = "prediction"
TARGET = "target"  # the labels the model was fitted and tested on: label drift compares them
ARTIFACT_DIR = "reference"


def sketch_column(values: pd.Series, rows: int = SKETCH_ROWS) -> pd.Series:
    """`rows` values at evenly spaced ranks of the sorted column (nulls sort last)."""
    n = len(values)
    if n == 0:
        return pd.Series([None] * rows, dtype=values.dtype)
    ordered = values.sort_values(kind="stable", na_position="last", ignore_index=True)
    ranks = np.floor((np.arange(rows) + 0.5) * n / rows).astype(np.int64)
    return ordered.iloc[np.minimum(ranks, n - 1)].reset_index(drop=True)


def sketch(frame: pd.DataFrame, columns: list[str], rows: int = SKETCH_ROWS) -> pd.DataFrame:
    """A `rows`-row frame whose every column has the distribution of `frame`'s column."""
    if len(frame) <= rows:
        return frame[columns].reset_index(drop=True)
    return pd.DataFrame({c: sketch_column(frame[c], rows) for c in columns})


def column_kinds(frame: pd.DataFrame, columns: list[str]) -> dict[str, str]:
    """numerical or categorical, as the drift tests treat them."""
    return {
        c: "numerical"
        if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
        else "categorical"
        for c in columns
    }


@dataclass(frozen=True)
class Reference:
    """A run's drift reference: the sketch and the figures a check compares against."""

    task: str
    run_id: str
    sketch: pd.DataFrame
    kinds: dict[str, str]  # feature and prediction columns -> numerical | categorical
    rows: int  # rows of the training set the sketch summarises
    metric: str
    test_value: float  # the model's test score: quality drift is measured against it
    window: dict[str, str]

    @property
    def features(self) -> list[str]:
        return [c for c in self.kinds if c not in (PREDICTION, TARGET)]


def log_reference(
    task,
    frame: pd.DataFrame,
    features: list[str],
    predictions,
    targets,
    test_value,
    window,
    binary_label: bool,
):
    """Sketch features, predictions and labels of the training set; log them to the active
    run. A `binary_label` is compared by class shares."""
    import mlflow

    data = frame[features].copy()
    data[PREDICTION] = np.asarray(predictions, dtype=float)
    data[TARGET] = np.asarray(targets, dtype=float)
    columns = [*features, PREDICTION, TARGET]
    kinds = column_kinds(data, columns)
    if binary_label:
        data[TARGET] = data[TARGET].map({0.0: "0", 1.0: "1"})
        kinds[TARGET] = "categorical"
    meta = {
        "task": task.name,
        "kinds": kinds,
        "rows": len(data),
        "metric": task.metric,
        "test_value": float(test_value),
        "window": window,
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sketch(data, columns).to_parquet(folder / "sketch.parquet", index=False)
        (folder / "reference.json").write_text(json.dumps(meta, indent=2))
        mlflow.log_artifacts(str(folder), ARTIFACT_DIR)


def load_reference(client, run_id: str) -> Reference | None:
    """The reference logged with `run_id`, or None when that run has none."""
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = Path(client.download_artifacts(run_id, ARTIFACT_DIR, tmp))
        except (MlflowException, OSError):
            return None
        if not (local / "reference.json").is_file() or not (local / "sketch.parquet").is_file():
            return None
        meta = json.loads((local / "reference.json").read_text())
        frame = pd.read_parquet(local / "sketch.parquet")
    return Reference(
        meta["task"],
        run_id,
        frame,
        meta["kinds"],
        int(meta["rows"]),
        meta["metric"],
        float(meta["test_value"]),
        meta["window"],
    )
