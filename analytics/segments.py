"""Readable segment profiles from the segmentation model's output, and one user's segment.

`smap segment` writes `user_segments` (user -> segment, its label, the model version) and
`segment_profiles` (the features' means). Means are pulled by a few very active accounts, so
the profile people read states medians of the users' latest `user_engagement_metrics` row:
how much a typical member posts, how many days it is active, the engagement its posts earn.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from analytics.errors import AnalyticsError
from ingestion.schema import INSIGHT_TABLES
from ingestion.warehouse import Warehouse

TABLE = INSIGHT_TABLES["segment_summary"]
METRICS = [
    "posts_28d",
    "active_days_28d",
    "engagement_rate_28d",
    "followers",
    "likes_given_28d",
    "comments_given_28d",
]
NOT_SEGMENTED = "no user segments yet (run `smap segment`)"


@dataclass(frozen=True)
class UserSegment:
    """What the `user_segment` lookup answers."""

    user_id: int
    segment: int
    name: str
    model_version: int
    assigned_at: datetime
    description: str


def describe(row: pd.Series) -> str:
    """One sentence a marketer reads: size, then the typical member's activity and engagement."""
    rate = row.engagement_rate_28d_median
    engagement = f"{rate:.1%} engagement rate" if np.isfinite(rate) else "no engagement rate yet"
    return (
        f"{row['size']} users ({row.share:.0%}); a typical member posts "
        f"{row.posts_28d_median:.0f} times and is active {row.active_days_28d_median:.0f} days "
        f"in 28, gives {row.interactions_given_28d_median:.0f} likes and comments, has "
        f"{row.followers_median:.0f} followers and earns a {engagement}"
    )


def segment_summary(
    user_segments: pd.DataFrame, segment_profiles: pd.DataFrame, latest: pd.DataFrame
) -> pd.DataFrame:
    """Per segment: name, size, share and the medians of its members' latest metrics."""
    members = user_segments[["user_id", "segment", "model_version"]].merge(
        latest[["user_id", *METRICS]], on="user_id", how="left"
    )
    members["interactions_given_28d"] = members.likes_given_28d + members.comments_given_28d
    medians = members.groupby("segment")[
        ["posts_28d", "active_days_28d", "engagement_rate_28d", "followers"]
        + ["interactions_given_28d"]
    ].median()
    sizes = members.groupby("segment").size()
    out = pd.DataFrame(
        {
            "segment": sizes.index.astype(np.int64),
            "name": segment_profiles.set_index("segment").label.reindex(sizes.index).fillna(""),
            "size": sizes.to_numpy(),
            "share": sizes.to_numpy() / max(len(members), 1),
            **{f"{col}_median": medians[col].to_numpy(float) for col in medians.columns},
            "model_version": members.groupby("segment").model_version.max().to_numpy(),
        }
    ).reset_index(drop=True)
    out["description"] = [describe(row) for _, row in out.iterrows()]
    return out[list(TABLE.columns)]


def latest_metrics(warehouse: Warehouse) -> pd.DataFrame:
    """Every user's newest `user_engagement_metrics` row (the day segmentation snapshots)."""
    metrics = warehouse.read("user_engagement_metrics", columns=["user_id", "date", *METRICS])
    return metrics.sort_values("date").drop_duplicates("user_id", keep="last")


def profile_segments(warehouse: Warehouse) -> int | None:
    """Rewrite `segment_summary`; None when `smap segment` has not written segments yet."""
    if not (warehouse.exists("user_segments") and warehouse.exists("segment_profiles")):
        return None
    summary = segment_summary(
        warehouse.read("user_segments"),
        warehouse.read("segment_profiles"),
        latest_metrics(warehouse),
    )
    return warehouse.write(TABLE, summary)


def user_segment(warehouse: Warehouse, user_id: int) -> UserSegment:
    """The segment of one user, with its readable profile when the summary is current."""
    if not warehouse.exists("user_segments"):
        raise AnalyticsError(NOT_SEGMENTED)
    segments = warehouse.read("user_segments")
    row = segments[segments.user_id == int(user_id)]
    if row.empty:
        raise AnalyticsError(
            f"user_id: {user_id} has no segment (only users active in the 28 days before "
            f"the last `smap segment` are segmented)"
        )
    found = row.iloc[0]
    description = ""
    if warehouse.exists(TABLE.name):
        summary = warehouse.read(TABLE.name)
        same = summary[
            (summary.segment == found.segment) & (summary.model_version == found.model_version)
        ]
        description = str(same.description.iloc[0]) if len(same) else ""
    return UserSegment(
        user_id=int(found.user_id),
        segment=int(found.segment),
        name=str(found.segment_label),
        model_version=int(found.model_version),
        assigned_at=pd.Timestamp(found.assigned_at).to_pydatetime(),
        description=description,
    )
