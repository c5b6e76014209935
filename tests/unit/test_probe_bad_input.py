"""Bad input found by probing the newer surfaces: each gets a clear error naming the field,
never a traceback."""

from __future__ import annotations

import pytest

from analytics.ab import plan
from analytics.errors import AnalyticsError
from ingestion.csv_import import _reason_kinds


@pytest.mark.parametrize("lift", [1e-9, 1e-15, 1e-17])
def test_a_lift_too_small_to_detect_names_the_lift(lift):
    with pytest.raises(AnalyticsError, match="lift: .* too small"):
        plan(0.05, lift)


@pytest.mark.parametrize("value", ["'=evil()'", "'a)b'", '"it\'s (x)"', "'plain'"])
def test_a_rejected_value_holding_a_parenthesis_is_left_out_of_the_summary(value):
    reason = f"platform (column 'Platform'): must be a platform name (got {value})"
    assert _reason_kinds(reason) == ["platform (column 'Platform'): must be a platform name"]
