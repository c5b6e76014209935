"""Bad input found by probing the newer surfaces: each gets a clear error naming the field,
never a traceback."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from analytics.ab import plan
from analytics.errors import AnalyticsError
from configs.errors import SmapError
from ingestion.csv_import import _reason_kinds
from pipelines.orchestrate import check_replay_window


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
