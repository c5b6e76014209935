"""Strict JSON from evaluate, the shared naive baseline, and the early check of a task's inputs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ingestion.schema import RAW_TABLES
from ingestion.warehouse import ParquetWarehouse
from training.baseline import naive_prediction
from training.evaluate import report_json
from training.readiness import missing_input
from training.tasks import get_task


def strict(text: str):
    def refuse(constant: str):
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_report_json_has_null_where_a_figure_is_not_a_number():
    report = {
        "oracle_value": float("nan"),
        "oracle": {},
        "champion": {"r2": np.float64(0.5), "mae": np.float32("inf")},
        "rows": np.int64(3),
        "window": {"start": pd.Timestamp("2026-01-01", tz="UTC")},
    }
    parsed = strict(report_json(report))
    assert parsed["oracle_value"] is None and parsed["champion"] == {"r2": 0.5, "mae": None}
    assert parsed["rows"] == 3 and parsed["window"]["start"].startswith("2026-01-01")
    with pytest.raises(ValueError, match="not JSON: NaN"):
        strict(json.dumps({"x": float("nan")}))  # what the old output did


def test_engagement_baseline_fills_authors_without_history_from_known_rates():
    frame = pd.DataFrame({"engagement_rate_28d": [0.1, np.nan, 0.3]})
    assert naive_prediction(get_task("engagement"), frame).tolist() == pytest.approx(
        [0.1, 0.2, 0.3]
    )
    assert naive_prediction(get_task("virality"), frame).tolist() == pytest.approx([0.1, 0, 0.3])


def test_trend_without_hashtags_is_refused_before_any_training_set(tmp_path):
    warehouse = ParquetWarehouse(tmp_path / "w")
    table = RAW_TABLES["hashtags"]
    warehouse.write(table, table.conform(pd.DataFrame({c: [] for c in table.columns})))

    reason = missing_input("trend", warehouse)
    assert reason == "trend: the data has no hashtag usage to forecast (import a hashtags column)"
    assert missing_input("engagement", warehouse) is None
    tags = pd.DataFrame({"hashtag_id": [0], "tag": ["coffee"], "category": ["food"]})
    warehouse.write(table, table.conform(tags))
    assert missing_input("trend", warehouse) is None
