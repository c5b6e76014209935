"""Bad input found by probing the newer surfaces: each gets a clear error naming the field,
never a traceback."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from analytics.ab import plan
from analytics.errors import AnalyticsError
from analytics.experiments_dashboard import experiments_parts
from configs.errors import SmapError
from configs.settings import SimulatorSettings
from ingestion.csv_comments import import_comments
from ingestion.csv_import import CsvImportError, _reason_kinds, import_posts
from ingestion.warehouse import ParquetWarehouse
from pipelines import cli
from pipelines.cli import main
from pipelines.orchestrate import check_replay_window

FIXTURES = Path(__file__).parents[1] / "fixtures"


@pytest.mark.parametrize("lift", [1e-9, 1e-15, 1e-17])
def test_a_lift_too_small_to_detect_names_the_lift(lift):
    with pytest.raises(AnalyticsError, match="lift: .* too small"):
        plan(0.05, lift)


@pytest.mark.parametrize("value", ["'=evil()'", "'a)b'", '"it\'s (x)"', "'plain'"])
def test_a_rejected_value_holding_a_parenthesis_is_left_out_of_the_summary(value):
    reason = f"platform (column 'Platform'): must be a platform name (got {value})"
    assert _reason_kinds(reason) == ["platform (column 'Platform'): must be a platform name"]


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC), "--to: .*365 days"),
        (datetime(1, 1, 1, tzinfo=UTC), datetime(1, 1, 2, tzinfo=UTC), "--from: .*2000"),
        (datetime(9999, 12, 30, tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC), "--from"),
        (datetime(2026, 1, 2, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC), "--to: must be"),
    ],
)
def test_a_replay_window_out_of_bounds_is_refused_before_any_run(start, end, message):
    with pytest.raises(SmapError, match=message):
        check_replay_window(start, end)


def test_a_month_of_ticks_may_be_replayed():
    check_replay_window(datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 7, 1, tzinfo=UTC))


def _posts(tmp_path: Path) -> ParquetWarehouse:
    warehouse = ParquetWarehouse(tmp_path / "warehouse")
    mapping = tmp_path / "posts.yaml"  # post ids mapped, as a comments import needs
    text = (FIXTURES / "posts_mapping.yaml").read_text()
    mapping.write_text(text.replace("columns:\n", 'columns:\n  post_id: "Post ID"\n', 1))
    import_posts(FIXTURES / "posts_export.csv", mapping, warehouse, tmp_path / "rejects")
    return warehouse


@pytest.mark.parametrize("text", ["", "\n\n"])
def test_an_empty_comments_file_is_one_error_naming_the_file(tmp_path, text):
    export = tmp_path / "comments.csv"
    export.write_text(text)  # no line to guess the delimiter from
    with pytest.raises(CsvImportError, match="comments.csv: "):
        import_comments(export, None, ParquetWarehouse(tmp_path / "warehouse"))


def test_null_cells_of_a_parquet_comments_export_are_blank_not_the_text_none(tmp_path):
    warehouse = _posts(tmp_path)
    export = tmp_path / "comments.parquet"
    pd.DataFrame(
        {
            "post_id": ["17900000", "17900000", "17900000"],
            "post_account": ["acme_travel"] * 3,
            "author": ["ann", "bob", "cy"],
            "timestamp": ["2026-03-01T09:00:00Z"] * 3,
            "text": [None, "love it", "not great"],
            "label": ["negative", None, "negative"],
        }
    ).to_parquet(export)

    done = import_comments(export, None, warehouse)

    assert (done.comments_loaded, done.labelled) == (2, 1)
    assert done.rejects_by_reason == {"text: blank": 1}
    assert sorted(warehouse.read("comments").text) == ["love it", "not great"]


def test_a_negative_simulator_seed_is_refused_before_anything_runs(capsys):
    assert main(["simulate", "--seed", "-1"]) == 2
    assert "--seed" in capsys.readouterr().err
    with pytest.raises(ValidationError, match="seed"):
        SimulatorSettings(seed=-1)


class _Analysis:
    def as_dict(self) -> dict:  # a fresh experiment: no labelled answer yet
        return {"arms": [{"metric": {"value": math.nan, "low": -math.inf}}], "p": (math.nan,)}


def test_experiment_status_json_is_strict_json_without_nan(monkeypatch, capsys):
    flow = SimpleNamespace(status=lambda settings, task: [_Analysis()])
    monkeypatch.setattr(cli, "experiments", lambda: flow)
    monkeypatch.setattr(cli, "settings_for", lambda profile, writes=True: None)

    assert main(["experiment", "status", "--json"]) == 0

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    data = json.loads(capsys.readouterr().out, parse_constant=refuse)
    assert data == [{"arms": [{"metric": {"value": None, "low": None}}], "p": [None]}]


def test_an_experiment_too_small_to_read_leaves_the_dashboard_section_standing():
    rng = np.random.default_rng(0)
    n = 40
    posts = pd.DataFrame(
        {
            "post_id": range(n),
            "user_id": rng.integers(0, 10, n),
            "created_at": pd.date_range("2026-03-01", periods=n, freq="h", tz="UTC"),
            "reach": 100,
            "engagement_rate": rng.uniform(0.01, 0.1, n),
            "experiment": ["big"] * 30 + ["=tiny"] * 2 + [None] * 8,
            "variant": ["A", "B"] * 15 + ["=ctl", "+treat"] + [None] * 8,
        }
    )

    parts = experiments_parts(posts, None)

    assert set(parts.exports["content_experiments"].experiment) == {"big"}
    assert "Not shown yet: experiment '=tiny'" in parts.note


@pytest.mark.parametrize("rates", [[0.05], [0.05, 0.05], [0.0, 0.0]])
def test_the_sample_size_guide_of_posts_without_spread_is_blank_not_an_error(rates):
    n = len(rates)
    posts = pd.DataFrame(
        {
            "post_id": range(n),
            "user_id": 1,
            "created_at": pd.date_range("2026-03-01", periods=n, freq="h", tz="UTC"),
            "reach": 100,
            "engagement_rate": rates,
            "experiment": None,
            "variant": None,
        }
    )

    guide = experiments_parts(posts, None).shown

    assert guide.posts_per_variant.isna().all() and len(guide) > 0
