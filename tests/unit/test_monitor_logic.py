"""Monitoring logic without a platform: sketches, drift verdicts, the debounce, the log window."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from configs.settings import DriftThresholds
from monitoring.checks import DRIFT, OK, verdict
from monitoring.drift import run_drift
from monitoring.trigger import drift_streak
from monitoring.window import WindowError, parse
from training.reference import PREDICTION, Reference, column_kinds, sketch, sketch_column
from training.tasks import get_task


def frame(seed: int, shift: float = 0.0, n: int = 6_000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = {f"num_{i}": rng.normal(shift if i < 6 else 0.0, 1.0, n) for i in range(10)}
    data["kind"] = rng.choice(["video", "image", "text"], n, p=[0.3, 0.5, 0.2])
    data["account_age_days"] = rng.uniform(0, 100, n) + 60 * (shift != 0)
    data[PREDICTION] = rng.normal(0.05 + 0.05 * shift, 0.02, n)
    return pd.DataFrame(data)


def reference_of(data: pd.DataFrame) -> Reference:
    columns = list(data.columns)
    return Reference("engagement", "run", sketch(data, columns), column_kinds(data, columns),
                     len(data), "r2", 0.5, {})  # fmt: skip


def test_a_sketch_keeps_quantiles_null_share_and_category_shares():
    rng = np.random.default_rng(0)
    values = pd.Series(np.where(rng.random(100_000) < 0.1, np.nan, rng.exponential(2, 100_000)))
    small = sketch_column(values, 2000)
    assert len(small) == 2000
    assert small.isna().mean() == pytest.approx(0.1, abs=0.01)
    for q in (0.1, 0.5, 0.9):
        assert small.quantile(q) == pytest.approx(values.quantile(q), rel=0.05)
    cats = pd.Series(rng.choice(["a", "b", "c"], 50_000, p=[0.6, 0.3, 0.1]))
    shares = sketch_column(cats, 1000).value_counts(normalize=True)
    assert shares["c"] == pytest.approx(0.1, abs=0.01)


def test_a_planted_shift_drifts_and_a_fresh_sample_does_not():
    reference = reference_of(frame(1))
    limits = DriftThresholds()
    same, _ = run_drift(reference, frame(2), limits)
    moved, snapshot = run_drift(reference, frame(3, shift=1.0), limits)
    assert same.drifted_share < limits.drift_share and not same.prediction.drifted
    assert moved.drifted_share >= limits.drift_share and moved.prediction.drifted
    assert {c.column for c in moved.drifted_columns} == {f"num_{i}" for i in range(6)}
    # a feature that grows by nature is reported but never counted
    assert "account_age_days" not in {c.column for c in moved.columns}
    assert [c.column for c in moved.trending] == ["account_age_days"]
    assert moved.trending[0].drifted
    assert "num_0" in snapshot.get_html_str(as_iframe=False)


def test_the_verdict_names_each_reason_and_judges_quality_only_with_enough_labels():
    reference = reference_of(frame(1))
    limits = DriftThresholds(min_labelled=100)
    calm, _ = run_drift(reference, frame(2), limits)
    task = get_task("engagement")
    assert verdict(task, calm, 0.45, 0.5, 500, limits)[0] == OK
    said, reasons = verdict(task, calm, 0.30, 0.5, 500, limits)
    assert said == DRIFT and reasons[0].startswith("quality drift: r2 0.300")
    assert verdict(task, calm, 0.30, 0.5, 50, limits)[0] == OK  # too few labels to judge


def test_the_streak_counts_drift_in_a_row_since_the_last_retrain():
    past = pd.DataFrame(
        {
            "version": [1, 1, 1, 1, 2],
            "verdict": ["drift", "drift", "ok", "drift", "drift"],
            "retrain": ["", "", "", "", ""],
        }
    )
    assert drift_streak(past, 1) == 1
    past.loc[2, "verdict"] = "drift"
    assert drift_streak(past, 1) == 4
    past.loc[1, "retrain"] = json.dumps({"decision": "kept_champion"})
    assert drift_streak(past, 1) == 2
    assert drift_streak(past, 3) == 0


def log_rows(entities: list[dict], features: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "entity": [json.dumps(e) for e in entities],
            "features": features,
            "prediction": [0.1] * len(entities),
            "logged_at": pd.Timestamp("2026-01-01", tz="UTC"),
        }
    )


def test_candidate_hours_are_not_part_of_a_window():
    rows = log_rows(
        [{"user_id": 1, "planned_at": "2026-05-01T12:00:00+00:00"},
         {"user_id": 1, "planned_at": "2026-05-01T13:00:00+00:00", "candidate": True}],
        ['{"a": 1.0}', '{"a": 2.0}'],
    )  # fmt: skip
    parsed = parse(rows)
    assert parsed.a.tolist() == [1.0] and parsed.key_user_id.tolist() == [1]


def test_a_malformed_log_row_is_one_clear_error():
    with pytest.raises(WindowError, match="features is not a JSON object"):
        parse(log_rows([{"user_id": 1}], ["{not json"]))


def test_matured_labels_that_moved_are_label_drift():
    reference_data = frame(1).assign(target=np.random.default_rng(1).normal(0.05, 0.02, 6_000))
    reference = reference_of(reference_data)
    limits = DriftThresholds(min_labelled=100)
    current = frame(2).assign(label=np.random.default_rng(2).normal(0.07, 0.02, 6_000))
    current.loc[:2_999, "label"] = np.nan  # half not matured yet
    moved, _ = run_drift(reference, current, limits, labelled=3_000)
    assert moved.label is not None and moved.label.drifted
    said, reasons = verdict(get_task("engagement"), moved, float("nan"), 0.5, 3_000, limits)
    assert said == DRIFT and any(r.startswith("label drift") for r in reasons)
    same = frame(3).assign(label=np.random.default_rng(3).normal(0.05, 0.02, 6_000))
    calm, _ = run_drift(reference, same, limits, labelled=6_000)
    assert not calm.label.drifted
    few, _ = run_drift(reference, current, limits, labelled=50)
    assert few.label is None  # too few labels: not judged


def test_a_data_window_keeps_rows_of_its_span_only():
    from training.dataset import DataWindow

    rows = pd.DataFrame({"event_timestamp": pd.date_range("2026-01-01", periods=10, freq="D")})
    kept = DataWindow(since=pd.Timestamp("2026-01-03"), until=pd.Timestamp("2026-01-06", tz="UTC"))
    assert kept.select(rows).event_timestamp.dt.day.tolist() == [3, 4, 5]
    assert len(DataWindow().select(rows)) == 10
    assert DataWindow().key() != kept.key()
