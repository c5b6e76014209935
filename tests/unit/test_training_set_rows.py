"""The join's row guarantee: one row per entity row, whatever the offline store returned."""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.dataset import ROW_ID, complete_rows, missing_groups


def _entity_rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "post_id": [1, 2, 3],
            "user_id": [7, 7, 8],
            "event_timestamp": pd.to_datetime(["2026-01-02"] * 3, utc=True),
            ROW_ID: np.arange(3),
        }
    )


def test_dropped_rows_come_back_with_null_features_and_duplicates_go():
    """Given a store answer that collapsed row 1 and repeated row 0 (feast-dev/feast#6787),
    then every entity row is there once, in order, with nulls where nothing came back."""
    entity = _entity_rows()
    joined = pd.DataFrame(
        {
            "post_id": [1, 1, 3],
            "user_id": [7, 7, 8],
            "event_timestamp": entity.event_timestamp.iloc[[0, 0, 2]].to_numpy(),
            ROW_ID: [0, 0, 2],
            "followers": [10.0, 10.0, 20.0],
        }
    )
    frame, restored = complete_rows(entity, joined)
    assert restored == 1
    assert frame.post_id.tolist() == [1, 2, 3]
    assert frame.followers.isna().tolist() == [False, True, False]
    assert ROW_ID not in frame.columns
    assert missing_groups(frame, {"user_engagement": ["followers"]}) == {"user_engagement": 1}


def test_entity_values_are_the_callers_not_the_stores():
    entity = _entity_rows()
    joined = entity.assign(user_id=[0, 0, 0], followers=[1.0, 2.0, 3.0])
    frame, restored = complete_rows(entity, joined)
    assert restored == 0
    assert frame.user_id.tolist() == [7, 7, 8]


def test_a_complete_answer_in_any_order_lines_up_with_its_entity_rows():
    """Given every row back once but out of order (a store may return them so), then each
    entity row gets its own features, and the frame is the one a key merge would give."""
    entity = _entity_rows()
    joined = entity.assign(followers=[10.0, 20.0, 30.0]).iloc[[2, 0, 1]]
    frame, restored = complete_rows(entity, joined)
    assert restored == 0
    merged = entity.merge(joined[[ROW_ID, "followers"]], on=ROW_ID).drop(columns=ROW_ID)
    pd.testing.assert_frame_equal(frame, merged)
    assert frame.followers.tolist() == [10.0, 20.0, 30.0]
