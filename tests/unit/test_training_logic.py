"""Pure training logic: splits, fingerprints, metrics, encoders and the gate's comparison."""

import re

import numpy as np
import pandas as pd
import pytest

from training.dataset import fingerprint, time_split
from training.families import FeatureEncoder
from training.metrics import best_f1_threshold, forecast_report, relative_mae
from training.registry import beats
from training.search import history_columns
from training.tasks import TASKS, TaskError, get_task


def test_time_split_keeps_label_window_gaps_and_order():
    ts = pd.Series(pd.date_range("2026-01-01", periods=200, freq="12h", tz="UTC"))
    split = time_split(ts, gap_days=7)
    train, val, test = (ts.iloc[p] for p in (split.train, split.validation, split.test))
    assert train.max() + pd.Timedelta(days=7) < val.min()
    assert val.max() + pd.Timedelta(days=7) < test.min()
    assert len(train) > len(val) > 0 and len(test) > 0


def test_time_split_too_short_leaves_validation_empty():
    ts = pd.Series(pd.date_range("2026-01-01", periods=10, freq="D", tz="UTC"))
    split = time_split(ts, gap_days=28)
    assert len(split.validation) == 0 and len(split.test) == 0


def test_time_split_shares_rows_not_time_on_a_sparse_export():
    # 300 posts in the first 10 days, then one every 2 days for 200 days (plus a busy tail)
    dense = pd.date_range("2026-01-01", periods=300, freq="48min", tz="UTC")
    sparse = pd.date_range("2026-01-11", periods=100, freq="2D", tz="UTC")
    tail = pd.date_range("2026-07-31", periods=200, freq="1h", tz="UTC")
    ts = pd.Series(dense.append(sparse).append(tail))
    split = time_split(ts, gap_days=7)

    kept = len(split.train) + len(split.validation) + len(split.test)
    shares = [len(p) / kept for p in (split.train, split.validation, split.test)]
    assert shares == pytest.approx([0.6, 0.2, 0.2], abs=0.03)
    train, val, test = (ts.iloc[p] for p in (split.train, split.validation, split.test))
    assert train.max() + pd.Timedelta(days=7) < val.min()
    assert val.max() + pd.Timedelta(days=7) < test.min()


def test_time_split_returns_positions_of_unsorted_rows():
    ts = pd.Series(pd.date_range("2026-01-01", periods=100, freq="D", tz="UTC")[::-1])
    split = time_split(ts, gap_days=1)
    assert ts.iloc[split.test].min() > ts.iloc[split.train].max()
    assert list(split.train) == sorted(split.train)


def test_fingerprint_changes_with_content_and_schema():
    frame = pd.DataFrame({"a": [1, 2], "b": [0.5, 0.25]})
    assert fingerprint(frame) == fingerprint(frame.copy())
    assert fingerprint(frame) != fingerprint(frame.assign(b=[0.5, 0.3]))
    assert fingerprint(frame) != fingerprint(frame.astype({"a": "float64"}))


def test_relative_mae_is_one_for_the_naive_forecast_itself():
    y, naive = np.array([1.0, 3, 5]), np.array([2.0, 2, 2])
    assert relative_mae(y, naive, naive) == 1.0
    assert relative_mae(y, y, naive) == 0.0
    report = forecast_report(y, y, naive, np.array([7, 7, 30]))
    assert report == {"mase": 0.0, "mase_7": 0.0, "mase_30": 0.0}


def test_best_f1_threshold_separates_clean_classes():
    y = np.array([0, 0, 0, 1, 1])
    threshold, f1 = best_f1_threshold(y, np.array([0.1, 0.2, 0.3, 0.8, 0.9]))
    assert 0.3 < threshold <= 0.8 and f1 == pytest.approx(1.0)


def test_gate_comparison_respects_direction_and_margin():
    engagement, trend = get_task("engagement"), get_task("trend")
    assert beats(engagement, 0.52, 0.50, margin=0.01)
    assert not beats(engagement, 0.505, 0.50, margin=0.01)
    assert beats(trend, 0.80, 0.90, margin=0.05)
    assert not beats(trend, 0.95, 0.90, margin=0.0)
    assert not beats(engagement, float("nan"), 0.1, margin=0.0)


def test_encoder_one_hot_and_scaling_are_learned_on_train_only():
    train = pd.DataFrame({"x": [1.0, np.nan, 3.0], "kind": ["a", "b", "a"]})
    enc = FeatureEncoder.fit(train, ["x", "kind"], ["kind"], scale=True)
    out = enc.transform(pd.DataFrame({"x": [np.nan], "kind": ["zzz"]}))
    assert enc.names == ["x", "kind=a", "kind=b"]
    assert out.shape == (1, 3) and np.isfinite(out).all()
    assert out[0, 1] < 0 and out[0, 2] < 0  # an unseen category is all zeros before scaling


def test_history_columns_are_oldest_first():
    names = ["horizon", "lag_1", "lag_3", "lag_2", "lag_x"]
    assert history_columns(names) == (2, 3, 1)


def test_task_table_rows_are_complete():
    for task in TASKS.values():
        assert task.direction in ("maximize", "minimize") and task.families
        assert re.fullmatch(rf"{task.name}_v\d+", task.feature_service)  # one versioned service
    with pytest.raises(TaskError, match="unknown task 'nope'"):
        get_task("nope")
