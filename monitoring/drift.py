"""Evidently drift of a window of logged inputs and predictions against a run's reference.

Both sides are quantile sketches (`training/reference.py`), so the check costs the same for
ten thousand or a million logged rows. Columns are compared with distances (Wasserstein,
normed, for numbers; Jensen-Shannon for categories). Results are read from the snapshot by
the identity of the metric objects the report ran, never by position.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from configs.settings import DriftThresholds
from training.reference import PREDICTION, TARGET, Reference, sketch

NUM_METHOD, CAT_METHOD = "wasserstein", "jensenshannon"


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    method: str
    score: float
    threshold: float

    @property
    def drifted(self) -> bool:
        return self.score >= self.threshold


@dataclass(frozen=True)
class DriftResult:
    columns: tuple[ColumnDrift, ...]  # one per feature the drift share counts
    drifted_share: float  # as Evidently's DriftedColumnsCount reports it
    prediction: ColumnDrift
    trending: tuple[ColumnDrift, ...] = ()  # features expected to grow: shown, not counted
    label: ColumnDrift | None = None  # matured labels against the training labels

    @property
    def drifted_columns(self) -> list[ColumnDrift]:
        return sorted((c for c in self.columns if c.drifted), key=lambda c: -c.score)


def current_frame(window: pd.DataFrame, reference: Reference) -> pd.DataFrame:
    """Logged feature vectors with the reference's column kinds (numbers as float, categories
    as text, as the model read them); the matured label, where known, as `target`."""
    out = pd.DataFrame(index=window.index)
    for column, kind in reference.kinds.items():
        source = "label" if column == TARGET else column
        values = window[source] if source in window else pd.Series(None, index=window.index)
        if column == TARGET and kind == "categorical":
            out[column] = pd.to_numeric(values, errors="coerce").map({0.0: "0", 1.0: "1"})
        elif kind == "numerical":
            out[column] = pd.to_numeric(values, errors="coerce").astype(float)
        else:
            out[column] = values.astype(str)
    return out


def _shuffled(frame: pd.DataFrame) -> pd.DataFrame:
    """A sketch is sorted per column; the tests ignore order, but the report's by-index plots
    would draw a rising curve, so rows are put in a fixed random order."""
    return frame.sample(frac=1.0, random_state=0).reset_index(drop=True)


def run_drift(
    reference: Reference, current: pd.DataFrame, thresholds: DriftThresholds, labelled: int = 0
):
    """Data drift on every feature, prediction drift, and label drift when `labelled` reaches
    the task's `min_labelled`; returns (result, Evidently snapshot)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import DriftedColumnsCount, ValueDrift
    from evidently.presets import DataDriftPreset

    columns = list(reference.kinds)
    features = [c for c in reference.features if c not in thresholds.trending]
    trending = [c for c in reference.features if c in thresholds.trending]
    kinds = reference.kinds
    definition = DataDefinition(
        numerical_columns=[c for c in columns if kinds[c] == "numerical"],
        categorical_columns=[c for c in columns if kinds[c] == "categorical"],
    )
    data = current_frame(current, reference)
    now = (
        sketch(data, columns, len(reference.sketch)) if len(data) > len(reference.sketch) else data
    )
    preset = DataDriftPreset(
        columns=features,
        num_method=NUM_METHOD,
        cat_method=CAT_METHOD,
        num_threshold=thresholds.column,
        cat_threshold=thresholds.column,
        drift_share=thresholds.drift_share,
    )
    prediction = ValueDrift(column=PREDICTION, method=NUM_METHOD, threshold=thresholds.prediction)
    shown = [  # trending features: in the report, not in the drift share
        ValueDrift(
            column=c,
            method=NUM_METHOD if kinds[c] == "numerical" else CAT_METHOD,
            threshold=thresholds.column,
        )  # fmt: skip
        for c in trending
    ]
    judged = TARGET in kinds and labelled >= thresholds.min_labelled
    label = (
        ValueDrift(
            column=TARGET,
            method=NUM_METHOD if kinds[TARGET] == "numerical" else CAT_METHOD,
            threshold=thresholds.label,
        )  # fmt: skip
        if judged
        else None
    )
    snapshot = Report([preset, prediction, *shown, *([label] if label else [])]).run(
        Dataset.from_pandas(_shuffled(now), data_definition=definition),
        Dataset.from_pandas(_shuffled(reference.sketch[columns]), data_definition=definition),
    )
    results = snapshot.metric_results
    per_column, share = [], float("nan")
    for metric in preset.generate_metrics(snapshot.context):
        if isinstance(metric, DriftedColumnsCount):
            share = float(results[metric.metric_id].share.value)
        elif isinstance(metric, ValueDrift):
            per_column.append(
                ColumnDrift(
                    metric.column,
                    str(metric.method),
                    float(results[metric.metric_id].value),
                    float(metric.threshold),
                )
            )
    predicted = ColumnDrift(
        PREDICTION, NUM_METHOD, float(results[prediction.metric_id].value), thresholds.prediction
    )
    expected = tuple(
        ColumnDrift(m.column, str(m.method), float(results[m.metric_id].value), m.threshold)
        for m in shown
    )
    labels = (
        ColumnDrift(
            TARGET, str(label.method), float(results[label.metric_id].value), label.threshold
        )
        if label
        else None
    )
    return DriftResult(tuple(per_column), share, predicted, expected, labels), snapshot
