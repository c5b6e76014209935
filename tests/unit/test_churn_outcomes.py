"""Churn answers get their matured label: no activity in the 28 days after the request's
snapshot day, as `churn_labels` defines it; then a churn check judges label drift and quality."""

from __future__ import annotations

import numpy as np
import pandas as pd

from configs.settings import DriftThresholds
from ingestion.schema import ALL_TABLES
from ingestion.warehouse import ParquetWarehouse
from monitoring.checks import DRIFT, quality, verdict
from monitoring.drift import run_drift
from monitoring.window import Window, matured_labels
from training.matured import churn_outcomes, snapshot_days
from training.reference import PREDICTION, TARGET, Reference, column_kinds, sketch
from training.tasks import get_task

D = pd.Timestamp("2026-03-01")  # the snapshot day: its metrics are stamped 2026-03-02 00:00


def day(n: int) -> pd.Timestamp:
    return D + pd.Timedelta(days=n)


def activity_warehouse(tmp_path, active: dict[int, list[int]]) -> ParquetWarehouse:
    """A warehouse whose `user_activity` holds one row per (user, day offset from D)."""
    rows = [(u, day(n)) for u, days in active.items() for n in days]
    frame = pd.DataFrame(rows, columns=["user_id", "date"]).assign(
        posts=1, likes_given=0, comments_given=0
    )
    warehouse = ParquetWarehouse(tmp_path)
    warehouse.write(ALL_TABLES["user_activity"], frame)
    return warehouse


def churn_window(users: list[int], logged_at: list[pd.Timestamp]) -> pd.DataFrame:
    return pd.DataFrame(
        {"key_user_id": users, "logged_at": pd.to_datetime(logged_at, utc=True)}
    ).assign(prediction=0.5)


def test_a_request_sees_the_metrics_of_the_day_before_it():
    stamps = pd.Series(pd.to_datetime(["2026-03-02 00:00", "2026-03-02 23:59"], utc=True))
    assert snapshot_days(stamps).tolist() == [D, D]


def test_churn_outcomes_count_the_28_days_after_the_snapshot_day(tmp_path):
    warehouse = activity_warehouse(
        tmp_path,
        {
            1: [0, 5],  # active on d+5: stayed
            2: [0, 29],  # active on d itself and on d+29 only: both outside the 28 days
            3: [28],  # active on the 28th day after: stayed
            4: [-3],  # silent from d+1 to d+28: churned
            5: [1],  # active on d+1, the day of the request: stayed
            6: [0, 2],  # its request is 10 days later: d+38 is not in the data yet
            7: [30],  # the data reaches d+30
        },
    )
    at = pd.Timestamp("2026-03-02 10:30", tz="UTC")  # snapshot day D
    frame = churn_window([1, 2, 3, 4, 5, 6, 8], [at] * 5 + [at + pd.Timedelta(days=10), at])
    labels = matured_labels(warehouse, get_task("churn"), frame)
    assert labels.tolist()[:5] == [0.0, 1.0, 0.0, 1.0, 0.0]
    assert np.isnan(labels[5])
    assert labels[6] == 1.0  # a user with no activity at all


def test_no_churn_outcome_matures_before_the_data_reaches_28_days():
    activity = pd.DataFrame({"user_id": [1, 1, 2], "date": [day(3), day(27), day(0)]})
    users, days = np.array([1, 2]), pd.Series([D, D])
    assert np.isnan(churn_outcomes(activity, users, days, day(27))).all()
    assert churn_outcomes(activity, users, days, day(28)).tolist() == [0.0, 1.0]
    assert np.isnan(churn_outcomes(activity.iloc[:0], users, days, None)).all()


def test_a_churn_check_with_matured_labels_judges_label_drift_and_quality():
    rng = np.random.default_rng(0)
    n = 4_000
    reference_data = pd.DataFrame(
        {
            "active_days_28d": rng.integers(1, 28, n).astype(float),
            PREDICTION: rng.uniform(0, 1, n),
            TARGET: (rng.random(n) < 0.1).astype(float),
        }
    )
    kinds = column_kinds(reference_data, list(reference_data.columns))
    reference_data[TARGET] = reference_data[TARGET].map({0.0: "0", 1.0: "1"})
    kinds[TARGET] = "categorical"
    reference = Reference(
        "churn", "run", sketch(reference_data, list(kinds)), kinds, n, "roc_auc", 0.9, {}
    )
    # the same inputs, but far more users churned, and the risk no longer ranks them
    label = (rng.random(n) < 0.5).astype(float)
    label[: n // 4] = np.nan  # not matured yet
    frame = pd.DataFrame(
        {
            "active_days_28d": rng.integers(1, 28, n).astype(float),
            "prediction": rng.uniform(0, 1, n),
            "label": label,
        }
    )
    window = Window("churn", 1, None, None, frame)
    limits = DriftThresholds()
    drift, _ = run_drift(reference, frame, limits, window.labelled)
    value = quality(get_task("churn"), window)
    said, reasons = verdict(get_task("churn"), drift, value, 0.9, window.labelled, limits)
    assert drift.label is not None and drift.label.drifted
    assert 0.4 < value < 0.6  # ROC-AUC of a risk that ranks nobody
    assert said == DRIFT
    assert any(r.startswith("label drift") for r in reasons)
    assert any(r.startswith("quality drift: roc_auc") for r in reasons)
