"""Lifecycles: how fast each post type's engagement fades, and where each user is in theirs.

Half-life of a post type: the median delay, from publishing, of the engagements (comments and
shares; bot-like shares left out) that its posts received in their first LABEL_DAYS, over the
posts whose LABEL_DAYS have passed by the data's end (so no post is cut short). It is the age
by which half of a post's first-week engagement has arrived; for delays that fall off
exponentially it is ln 2 times their mean. Likes are left out: their recorded time is not tied
to a post's (the simulator samples one like per active day; an export usually has no like
times at all). A post type with no timed engagement has no half-life.

User stages, at the end of each PERIOD_DAYS period counted back from the data's last day, from
the days with any activity (a post, a like or a comment: `user_activity`, as the churn label):
- new: the account is younger than PERIOD_DAYS
- active: active in the last RECENT_DAYS
- at-risk: active in the last PERIOD_DAYS, not in the last RECENT_DAYS
- dormant: not active in the last PERIOD_DAYS, active in the PERIOD_DAYS before
- churned: not active in the last 2 * PERIOD_DAYS
The transition matrix counts users' stages at consecutive period ends (rates: per row). Risk per
stage: the churn label rate (share with no activity in the next CHURN_DAYS, the churn task's
target) over the period ends whose next CHURN_DAYS are in the data, and, when the registry
holds a churn champion, its mean probability over each stage's users at the newest period end
(analytics/churn_risk.py).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analytics.cascades import organic_shares
from analytics.churn_risk import ChurnScorer, stage_probabilities
from ingestion.etl import LABEL_DAYS
from ingestion.schema import LIFECYCLE_TABLES
from ingestion.warehouse import Warehouse

PERIOD_DAYS = 28
RECENT_DAYS = 7
CHURN_DAYS = 28  # as the churn task's label (training/labels.py)
STAGES = ("new", "active", "at-risk", "dormant", "churned")
HALF_LIFE = LIFECYCLE_TABLES["engagement_half_life"]
USER_STAGES = LIFECYCLE_TABLES["user_stages"]
TRANSITIONS = LIFECYCLE_TABLES["stage_transitions"]
SUMMARY = LIFECYCLE_TABLES["stage_summary"]


def half_lives(
    posts: pd.DataFrame, comments: pd.DataFrame, shares: pd.DataFrame | None
) -> pd.DataFrame:
    """Per post type and kind (comment, share, all): posts, events, half-life in hours."""
    window = pd.Timedelta(days=LABEL_DAYS)
    parts = [comments[["post_id", "created_at"]].assign(kind="comment")]
    if shares is not None and len(shares):
        parts.append(shares[["post_id", "created_at"]].assign(kind="share"))
    events = pd.concat(parts, ignore_index=True)
    end = max(posts.created_at.max(), events.created_at.max()) if len(events) else None
    matured = posts[posts.created_at <= end - window] if end is not None else posts.iloc[:0]
    events = events.merge(
        matured[["post_id", "post_type", "created_at"]].rename(columns={"created_at": "posted"}),
        on="post_id",
    )
    delay = (events.created_at - events.posted).dt.total_seconds() / 3600.0
    events = events.assign(hours=delay)[(delay >= 0) & (delay <= window.total_seconds() / 3600)]
    both = pd.concat([events, events.assign(kind="all")], ignore_index=True)
    out = (
        both.groupby(["post_type", "kind"])
        .agg(
            posts=("post_id", "nunique"),
            events=("hours", "size"),
            half_life_hours=("hours", "median"),
        )
        .reset_index()
    )
    return out[list(HALF_LIFE.columns)]


def _activity_matrix(
    users: pd.DataFrame, activity: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray, pd.Timestamp]:
    """(users x days activity counts' cumulative sums with a leading 0, signup day, first day)."""
    day = pd.to_datetime(activity.date).dt.normalize()
    first = day.min()
    n_days = (day.max() - first).days + 1
    ids = pd.Index(users.user_id)
    rows = ids.get_indexer(activity.user_id)
    known = rows >= 0
    active = np.zeros((len(ids), n_days), dtype=np.int32)
    np.add.at(active, (rows[known], (day[known] - first).dt.days.to_numpy()), 1)
    active = (active > 0).astype(np.int32)
    signup = (
        pd.to_datetime(users.created_at, utc=True).dt.tz_localize(None).dt.normalize() - first
    ).dt.days.to_numpy()
    return (
        np.concatenate([np.zeros((len(ids), 1), np.int32), active.cumsum(axis=1)], 1),
        signup,
        first,
    )


def _days_active(cum: np.ndarray, end: int, days: int) -> np.ndarray:
    """Active days in (end - days, end] (clipped to the data)."""
    return cum[:, end + 1] - cum[:, max(end + 1 - days, 0)]


def stages_at(cum: np.ndarray, signup: np.ndarray, end: int) -> np.ndarray:
    """Each user's stage at day index `end` ('' before the account exists)."""
    age = end - signup
    stage = np.select(
        [
            age < 0,
            age < PERIOD_DAYS,
            _days_active(cum, end, RECENT_DAYS) > 0,
            _days_active(cum, end, PERIOD_DAYS) > 0,
            _days_active(cum, end, 2 * PERIOD_DAYS) > 0,
        ],
        ["", "new", "active", "at-risk", "dormant"],
        default="churned",
    )
    return stage


def user_stages(
    users: pd.DataFrame, activity: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(each user's stage at each period end, the transition matrix, the stages' summary)."""
    if activity.empty or users.empty:
        return (
            pd.DataFrame(columns=list(USER_STAGES.columns)),
            pd.DataFrame(columns=list(TRANSITIONS.columns)),
            pd.DataFrame(columns=list(SUMMARY.columns)),
        )
    cum, signup, first = _activity_matrix(users, activity)
    last = cum.shape[1] - 2
    ends = [e for e in range(last, -1, -PERIOD_DAYS) if e - 2 * PERIOD_DAYS + 1 >= 0][::-1]
    ends = ends or [last]
    stage_at = {e: stages_at(cum, signup, e) for e in ends}
    ids = users.user_id.to_numpy(np.int64)
    rows = [
        pd.DataFrame({"user_id": ids, "date": first + pd.Timedelta(days=e), "stage": s})
        for e, s in stage_at.items()
    ]
    stages = pd.concat(rows, ignore_index=True)
    stages = stages[stages.stage != ""].reset_index(drop=True)

    pairs = [
        pd.DataFrame({"from_stage": stage_at[a], "to_stage": stage_at[b]})
        for a, b in zip(ends[:-1], ends[1:], strict=True)
    ]
    moved = (
        pd.concat(pairs, ignore_index=True)
        if pairs
        else pd.DataFrame(columns=["from_stage", "to_stage"])
    )
    moved = moved[(moved.from_stage != "") & (moved.to_stage != "")]
    grid = pd.MultiIndex.from_product([STAGES, STAGES], names=["from_stage", "to_stage"])
    counts = moved.groupby(["from_stage", "to_stage"]).size().reindex(grid, fill_value=0)
    totals = counts.groupby(level="from_stage").transform("sum")
    transitions = pd.DataFrame(
        {"users": counts.to_numpy(), "rate": (counts / totals.where(totals > 0)).to_numpy()},
        index=grid,
    ).reset_index()

    labelled = [e for e in ends if e + CHURN_DAYS <= last]
    quiet = [
        pd.DataFrame(
            {
                "stage": stage_at[e],
                "churned": cum[:, e + 1 + CHURN_DAYS] - cum[:, e + 1] == 0,
            }
        )
        for e in labelled
    ]
    risk = (
        pd.concat(quiet).query("stage != ''").groupby("stage").churned.mean()
        if quiet
        else pd.Series(dtype=float)
    )
    now = pd.Series(stage_at[ends[-1]])
    now = now[now != ""].value_counts().reindex(list(STAGES), fill_value=0)
    summary = pd.DataFrame(
        {
            "stage": list(STAGES),
            "users": now.to_numpy(),
            "share": (now / max(now.sum(), 1)).to_numpy(),
            "churn_rate": risk.reindex(list(STAGES)).to_numpy(float),
            "churn_probability": np.nan,
            "risk_source": f"churn label rate over {len(labelled)} period ends",
        }
    )
    return stages, transitions[list(TRANSITIONS.columns)], summary[list(SUMMARY.columns)]


def with_champion(
    summary: pd.DataFrame, stages: pd.DataFrame, metrics: pd.DataFrame, scorer: ChurnScorer
) -> pd.DataFrame:
    """`summary` with the churn champion's mean probability per stage at the newest period end
    (`metrics`: that day's `user_engagement_metrics` rows)."""
    now = stages[stages.date == stages.date.max()]
    mean = stage_probabilities(now[["user_id", "stage"]], metrics, scorer)
    day = now.date.max()
    return summary.assign(
        churn_probability=summary.stage.map(mean).astype(float),
        risk_source=f"churn champion v{scorer.version} on {day:%Y-%m-%d}; "
        + summary.risk_source.astype(str),
    )


def track_lifecycles(warehouse: Warehouse, churn: ChurnScorer | None = None) -> dict[str, int]:
    """Rewrite `engagement_half_life`, `user_stages`, `stage_transitions` and `stage_summary`
    (with the churn champion's probabilities when `churn` is given)."""
    read = warehouse.read
    posts = read("content_posts", columns=["post_id", "user_id", "created_at", "post_type"])
    comments = read("comments", columns=["post_id", "user_id", "created_at"])
    shares = None
    if warehouse.exists("share_events"):
        shares = read("share_events")
        if len(shares):
            shares = organic_shares(
                shares, posts, read("likes", columns=["post_id", "user_id", "created_at"]), comments
            )
    stages, transitions, summary = user_stages(
        read("users", columns=["user_id", "created_at"]),
        read("user_activity", columns=["user_id", "date"]),
    )
    if churn is not None and len(stages) and warehouse.exists("user_engagement_metrics"):
        day = stages.date.max()
        metrics = read(
            "user_engagement_metrics",
            columns=["user_id", "date", *churn.features],
            between=("date", day - pd.Timedelta(days=RECENT_DAYS), day),
        )  # each user's newest row: the metrics may end a day before the activity does
        newest = metrics.sort_values("date").drop_duplicates("user_id", keep="last")
        summary = with_champion(summary, stages, newest.drop(columns="date"), churn)
    return warehouse.write_many(
        [
            (HALF_LIFE, half_lives(posts, comments, shares)),
            (USER_STAGES, stages),
            (TRANSITIONS, transitions),
            (SUMMARY, summary),
        ]
    )
