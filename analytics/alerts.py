"""Anomaly alerts on account engagement: robust z-scores against the account's own history.

The series is one value per account and posting day: the interactions its posts of that day
received, and their engagement rate (interactions / reach). A day is scored against the
account's posting days in the `alert_window_days` before it: robust z = 0.6745 * (value -
median) / MAD (Iglewicz and Hoaglin's modified z-score; a MAD of 0 falls back to 1.2533 *
the mean absolute deviation, and a history with no spread at all scores nothing). Days
within `alert_recent_days` of the newest data with |z| above `alert_threshold` become rows
of `alerts`; an alert already in the table keeps its first detection and notification time.
A day counts the interactions the warehouse holds so far: on an export, the newest posts are
still collecting theirs, so a drop on the last days may be a post that is not finished yet.

`smap alerts` lists the alerts not yet notified; `--post` sends them as JSON to
`analytics.alert_webhook_url` and stamps them notified once the webhook accepted them.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

from analytics.errors import AnalyticsError
from configs.settings import AnalyticsSettings
from ingestion.etl import interactions
from ingestion.schema import INSIGHT_TABLES
from ingestion.warehouse import Warehouse

TABLE = INSIGHT_TABLES["alerts"]
METRICS = ("interactions", "engagement_rate")
COUNTS = ("interactions",)
MIN_HISTORY = 5  # posting days in the window before a day can be scored
MAD_SCALE = 0.6745  # MAD of a normal distribution in standard deviations
MEAN_AD_SCALE = 1.2533  # mean absolute deviation of a normal distribution, likewise


def account_series(posts: pd.DataFrame) -> pd.DataFrame:
    """One row per account and posting day: interactions, reach and engagement rate."""
    day = posts.created_at.dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize()
    daily = (
        posts.assign(date=day, interactions=interactions(posts))
        .groupby(["user_id", "date"], as_index=False)[["interactions", "reach"]]
        .sum()
    )
    daily["interactions"] = daily.interactions.astype(float)
    daily["engagement_rate"] = np.where(
        daily.reach > 0, daily.interactions / daily.reach.clip(lower=1), np.nan
    )
    return daily


def robust_scores(
    series: pd.DataFrame, metric: str, since: pd.Timestamp, window_days: int
) -> pd.DataFrame:
    """Robust z of `metric` on every day from `since`, against the account's days in the
    `window_days` before it; rows with too little or flat history are left out."""
    values = series[["user_id", "date", metric]].dropna()
    scored = values[values.date >= since]
    window = values[values.date >= since - pd.Timedelta(days=window_days)]
    history = scored[["user_id", "date"]].merge(
        window.rename(columns={"date": "past", metric: "past_value"}), on="user_id"
    )
    history = history[
        (history.past < history.date)
        & (history.past >= history.date - pd.Timedelta(days=window_days))
    ]
    keys = ["user_id", "date"]
    grouped = history.groupby(keys).past_value
    stats = pd.DataFrame({"median": grouped.median(), "count": grouped.size()})
    history = history.join(stats["median"], on=keys)
    deviation = (
        (history.past_value - history["median"]).abs().groupby([history.user_id, history.date])
    )
    stats["mad"], stats["mean_ad"] = deviation.median(), deviation.mean()
    out = scored.join(stats, on=keys, how="inner").rename(columns={metric: "value"})
    out = out[out["count"] >= MIN_HISTORY]
    scale = np.where(
        out.mad > 0, out.mad / MAD_SCALE, np.where(out.mean_ad > 0, MEAN_AD_SCALE * out.mean_ad, 0)
    )
    if metric in COUNTS:  # a count is never steadier than Poisson noise: 1 vs 2 is no anomaly
        scale = np.maximum(scale, np.sqrt(out["median"].to_numpy() + 1.0))
    out = out[scale > 0].assign(robust_z=(out.value - out["median"])[scale > 0] / scale[scale > 0])
    return out.assign(metric=metric)[
        ["user_id", "date", "metric", "value", "median", "mad", "robust_z"]
    ]


def flag_anomalies(series: pd.DataFrame, config: AnalyticsSettings) -> pd.DataFrame:
    """Alerts (without detection times) for the recent days whose |robust z| passes the bar."""
    if series.empty:
        return TABLE.conform(pd.DataFrame({c: [] for c in TABLE.columns})).drop(
            columns=["detected_at", "notified_at"]
        )
    since = series.date.max() - pd.Timedelta(days=config.alert_recent_days - 1)
    scored = pd.concat(
        [robust_scores(series, m, since, config.alert_window_days) for m in METRICS],
        ignore_index=True,
    )
    flagged = scored[scored.robust_z.abs() > config.alert_threshold].copy()
    flagged["direction"] = np.where(flagged.robust_z > 0, "spike", "drop")
    flagged["alert_id"] = (
        flagged.user_id.astype(str)
        + ":"
        + flagged.date.dt.strftime("%Y-%m-%d")
        + ":"
        + flagged.metric
    )
    return flagged.sort_values(["date", "user_id", "metric"], ignore_index=True)


def detect(warehouse: Warehouse, config: AnalyticsSettings, now: datetime | None = None) -> int:
    """Add the newly flagged days to `alerts` (kept alerts are untouched); returns how many."""
    posts = warehouse.read(
        "content_posts",
        columns=["user_id", "created_at", "reach", "likes", "comments", "shares", "saves"],
    )
    flagged = flag_anomalies(account_series(posts), config)
    with warehouse.writing():
        kept = _existing(warehouse)
        fresh = flagged[~flagged.alert_id.isin(kept.alert_id)].assign(
            detected_at=pd.Timestamp(now or datetime.now(UTC)), notified_at=pd.NaT
        )
        if len(fresh) or not warehouse.exists(TABLE.name):
            warehouse.write(TABLE, pd.concat([kept, TABLE.conform(fresh)], ignore_index=True))
    return len(fresh)


def _existing(warehouse: Warehouse) -> pd.DataFrame:
    if warehouse.exists(TABLE.name):
        return TABLE.conform(warehouse.read(TABLE.name))
    return TABLE.conform(pd.DataFrame({c: [] for c in TABLE.columns}))


def pending(warehouse: Warehouse, everything: bool = False) -> pd.DataFrame:
    """Alerts not notified yet (or all of them), newest day first."""
    alerts = _existing(warehouse)
    if not everything:
        alerts = alerts[alerts.notified_at.isna()]
    return alerts.sort_values(
        ["date", "robust_z"], ascending=[False, False], key=_by_size, ignore_index=True
    )


def _by_size(column: pd.Series) -> pd.Series:
    return column.abs() if column.name == "robust_z" else column


def mark_notified(warehouse: Warehouse, alert_ids: Sequence[str], when: datetime) -> int:
    """Stamp alerts as notified; returns how many were still pending."""
    with warehouse.writing():
        alerts = _existing(warehouse)
        hit = alerts.alert_id.isin(list(alert_ids)) & alerts.notified_at.isna()
        alerts.loc[hit, "notified_at"] = pd.Timestamp(when)
        if hit.any():
            warehouse.write(TABLE, alerts)
    return int(hit.sum())


def payload(alerts: pd.DataFrame) -> dict:
    """The JSON body the webhook receives: plain types only, dates as ISO strings."""
    rows = []
    for row in alerts.itertuples(index=False):
        rows.append(
            {
                "alert_id": row.alert_id,
                "user_id": int(row.user_id),
                "date": row.date.strftime("%Y-%m-%d"),
                "metric": row.metric,
                "direction": row.direction,
                "value": float(row.value),
                "median": float(row.median),
                "robust_z": round(float(row.robust_z), 3),
                "detected_at": row.detected_at.isoformat(),
            }
        )
    return {"source": "smap", "kind": "engagement_anomaly", "count": len(rows), "alerts": rows}


def post(url: str, alerts: pd.DataFrame, timeout: float) -> int:
    """POST the alerts as JSON; returns the HTTP status, raises AnalyticsError otherwise."""
    where = "{0.scheme}://{0.netloc}".format(urlsplit(url))  # the path may hold a token
    request = urllib.request.Request(
        url,
        data=json.dumps(payload(alerts)).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "smap-alerts"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        raise AnalyticsError(f"alert webhook at {where} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AnalyticsError(f"alert webhook at {where} is not reachable: {reason}") from None


def webhook_url(config: AnalyticsSettings) -> str:
    """The configured webhook, or the one-line error saying how to set it."""
    if not config.alert_webhook_url:
        raise AnalyticsError(
            "analytics.alert_webhook_url is not set (set SMAP_ANALYTICS__ALERT_WEBHOOK_URL)"
        )
    return config.alert_webhook_url


def notify(warehouse: Warehouse, config: AnalyticsSettings, now: datetime | None = None) -> int:
    """Post the pending alerts to the configured webhook and mark them; returns how many."""
    url = webhook_url(config)
    with warehouse.writing():  # two `smap alerts --post` never send the same alert twice
        alerts = pending(warehouse)
        if alerts.empty:
            return 0
        post(url, alerts, config.alert_webhook_timeout_seconds)
        return mark_notified(warehouse, list(alerts.alert_id), now or datetime.now(UTC))
