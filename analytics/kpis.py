"""Campaign and marketing KPIs: per campaign and per day, one definition in SQL and pandas.

On the services profile the KPIs are views in the warehouse schema (always current; BI tools
query them directly); on the local profile the same columns are computed with pandas and
written as Parquet tables. Rates are per reach, whatever the engagement target's denominator.

Per campaign (its posts are the posts carrying its campaign_id):
- engagement_rate = interactions / reach; virality_score = shares per 1,000 accounts reached
- followers_at_start: follows of the owner before start_date; follower_growth: follows
  gained from start_date through end_date (days in UTC)
- retention = retained / engagers: engagers are the accounts other than the owner that liked
  or commented a campaign post; retained ones liked or commented one of the owner's posts in
  the RETENTION_DAYS after end_date (a window still open at the data's end counts what is in)
- cost_per_engagement = budget / interactions
- roi = (interactions * analytics.value_per_engagement - budget) / budget
A ratio whose denominator is 0 is NULL (NaN).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from ingestion.etl import interactions
from ingestion.schema import INSIGHT_TABLES
from ingestion.warehouse import LakeWarehouse, ParquetWarehouse, PostgresWarehouse, Warehouse

RETENTION_DAYS = 28
CAMPAIGNS = INSIGHT_TABLES["campaign_kpis"]
DAILY = INSIGHT_TABLES["kpi_daily"]
_COUNTS = ["reach", "impressions", "likes", "comments", "shares", "saves"]


def _day(ts: pd.Series) -> pd.Series:
    return ts.dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize()


def _ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    num, den = num.astype(float), den.astype(float)
    return (num / den.where(den != 0)).astype(float)


def campaign_kpis(
    campaigns: pd.DataFrame,
    posts: pd.DataFrame,
    follows: pd.DataFrame,
    likes: pd.DataFrame,
    comments: pd.DataFrame,
    value_per_engagement: float,
) -> pd.DataFrame:
    """One row per campaign with the KPIs of the module docstring."""
    owned = posts[posts.campaign_id.notna()].astype({"campaign_id": np.int64})
    totals = (
        owned.assign(interactions=interactions(owned), posts=1)
        .groupby("campaign_id")[["posts", "reach", "impressions", "interactions", "shares"]]
        .sum()
    )
    out = campaigns.join(totals, on="campaign_id")
    for col in totals.columns:
        out[col] = out[col].fillna(0).astype(np.int64)

    start, end = pd.to_datetime(campaigns.start_date), pd.to_datetime(campaigns.end_date)
    gained = campaigns[["campaign_id", "user_id"]].assign(
        start=start, stop=end + pd.Timedelta(1, "D")
    )
    gained = gained.merge(
        follows.assign(day=_day(follows.created_at))[["followee_id", "day"]],
        left_on="user_id",
        right_on="followee_id",
    )
    out["followers_at_start"] = _count_by(gained[gained.day < gained.start], out)
    during = gained[(gained.day >= gained.start) & (gained.day < gained.stop)]
    out["follower_growth"] = _count_by(during, out)

    acted = pd.concat(
        [
            likes[["post_id", "user_id", "created_at"]],
            comments[["post_id", "user_id", "created_at"]],
        ]
    ).merge(
        posts[["post_id", "campaign_id"]].rename(columns={"campaign_id": "on_campaign"}),
        on="post_id",
    )
    acted = acted.merge(
        posts[["post_id", "user_id"]].rename(columns={"user_id": "author"}), on="post_id"
    )
    engaged = (
        acted[acted.on_campaign.notna()]
        .astype({"on_campaign": np.int64})
        .merge(
            campaigns[["campaign_id", "user_id"]],
            left_on="on_campaign",
            right_on="campaign_id",
            suffixes=("", "_owner"),
        )
    )
    engaged = engaged[engaged.user_id != engaged.user_id_owner][
        ["campaign_id", "user_id"]
    ].drop_duplicates()
    after = campaigns[["campaign_id", "user_id"]].assign(
        lo=end + pd.Timedelta(1, "D"), hi=end + pd.Timedelta(RETENTION_DAYS + 1, "D")
    )
    back = after.rename(columns={"user_id": "author"}).merge(
        acted[["author", "user_id", "created_at"]], on="author"
    )
    day = _day(back.created_at)
    back = back[(day >= back.lo) & (day < back.hi)][["campaign_id", "user_id"]].drop_duplicates()
    kept = engaged.merge(back, on=["campaign_id", "user_id"])
    out["engagers"] = _count_by(engaged, out)
    out["retained"] = _count_by(kept, out)

    out["engagement_rate"] = _ratio(out.interactions, out.reach)
    out["virality_score"] = 1000.0 * _ratio(out.shares, out.reach)
    out["retention"] = _ratio(out.retained, out.engagers)
    out["cost_per_engagement"] = _ratio(out.budget, out.interactions)
    out["roi"] = _ratio(out.interactions * value_per_engagement - out.budget, out.budget)
    return out[list(CAMPAIGNS.columns)].sort_values("campaign_id", ignore_index=True)


def _count_by(rows: pd.DataFrame, out: pd.DataFrame) -> np.ndarray:
    return rows.groupby("campaign_id").size().reindex(out.campaign_id, fill_value=0).to_numpy()


def kpi_daily(posts: pd.DataFrame, activity: pd.DataFrame, follows: pd.DataFrame) -> pd.DataFrame:
    """One row per day with posts: volume, reach, engagement, active accounts, new follows."""
    daily = (
        posts.assign(date=_day(posts.created_at), interactions=interactions(posts), posts=1)
        .groupby("date")[["posts", "reach", "interactions", "shares"]]
        .sum()
    )
    daily["active_accounts"] = activity.groupby("date").size().reindex(daily.index, fill_value=0)
    daily["new_follows"] = (
        follows.groupby(_day(follows.created_at)).size().reindex(daily.index, fill_value=0)
    )
    daily["engagement_rate"] = _ratio(daily.interactions, daily.reach)
    daily["virality_score"] = 1000.0 * _ratio(daily.shares, daily.reach)
    return daily.reset_index()[list(DAILY.columns)]


def campaign_sql(schema: str, value_per_engagement: float) -> str:
    """The `campaign_kpis` view: the same definitions as `campaign_kpis()`."""
    utc = "::timestamp AT TIME ZONE 'UTC'"
    return f"""
        WITH totals AS (
            SELECT campaign_id, count(*) AS posts, sum(reach) AS reach,
                   sum(impressions) AS impressions,
                   sum(likes + comments + shares + saves) AS interactions, sum(shares) AS shares
            FROM {schema}.content_posts WHERE campaign_id IS NOT NULL GROUP BY campaign_id
        ), acted AS (
            SELECT post_id, user_id, created_at FROM {schema}.likes
            UNION ALL SELECT post_id, user_id, created_at FROM {schema}.comments
        ), engaged AS (
            SELECT DISTINCT c.campaign_id, a.user_id
            FROM acted a JOIN {schema}.content_posts p USING (post_id)
            JOIN {schema}.campaigns c ON c.campaign_id = p.campaign_id
            WHERE a.user_id <> c.user_id
        ), came_back AS (
            SELECT DISTINCT c.campaign_id, a.user_id
            FROM acted a JOIN {schema}.content_posts p USING (post_id)
            JOIN {schema}.campaigns c ON c.user_id = p.user_id
            WHERE a.created_at >= (c.end_date + 1){utc}
              AND a.created_at < (c.end_date + {RETENTION_DAYS + 1}){utc}
        ), retention AS (
            SELECT e.campaign_id, count(*) AS engagers, count(b.user_id) AS retained
            FROM engaged e LEFT JOIN came_back b USING (campaign_id, user_id)
            GROUP BY e.campaign_id
        ), audience AS (
            SELECT c.campaign_id,
                   count(*) FILTER (WHERE f.created_at < c.start_date{utc}) AS followers_at_start,
                   count(*) FILTER (WHERE f.created_at >= c.start_date{utc}
                                      AND f.created_at < (c.end_date + 1){utc}) AS follower_growth
            FROM {schema}.campaigns c JOIN {schema}.follows f ON f.followee_id = c.user_id
            GROUP BY c.campaign_id
        )
        SELECT c.campaign_id, c.user_id, c.name, c.objective, c.start_date, c.end_date, c.budget,
               coalesce(t.posts, 0)::bigint AS posts,
               coalesce(t.reach, 0)::bigint AS reach,
               coalesce(t.impressions, 0)::bigint AS impressions,
               coalesce(t.interactions, 0)::bigint AS interactions,
               coalesce(t.shares, 0)::bigint AS shares,
               t.interactions::double precision / nullif(t.reach, 0) AS engagement_rate,
               1000.0 * t.shares::double precision / nullif(t.reach, 0) AS virality_score,
               coalesce(a.followers_at_start, 0)::bigint AS followers_at_start,
               coalesce(a.follower_growth, 0)::bigint AS follower_growth,
               coalesce(r.engagers, 0)::bigint AS engagers,
               coalesce(r.retained, 0)::bigint AS retained,
               r.retained::double precision / nullif(r.engagers, 0) AS retention,
               c.budget / nullif(coalesce(t.interactions, 0), 0) AS cost_per_engagement,
               (coalesce(t.interactions, 0) * {float(value_per_engagement)!r}::double precision
                - c.budget) / nullif(c.budget, 0) AS roi
        FROM {schema}.campaigns c
        LEFT JOIN totals t USING (campaign_id)
        LEFT JOIN audience a USING (campaign_id)
        LEFT JOIN retention r USING (campaign_id)
    """


def daily_sql(schema: str) -> str:
    """The `kpi_daily` view: the same definitions as `kpi_daily()`."""
    return f"""
        WITH posted AS (
            SELECT (created_at AT TIME ZONE 'UTC')::date AS date, count(*) AS posts,
                   sum(reach) AS reach, sum(likes + comments + shares + saves) AS interactions,
                   sum(shares) AS shares
            FROM {schema}.content_posts GROUP BY 1
        ), active AS (
            SELECT date::date AS date, count(*) AS active_accounts
            FROM {schema}.user_activity GROUP BY 1
        ), followed AS (
            SELECT (created_at AT TIME ZONE 'UTC')::date AS date, count(*) AS new_follows
            FROM {schema}.follows GROUP BY 1
        )
        SELECT p.date, p.posts::bigint AS posts,
               coalesce(a.active_accounts, 0)::bigint AS active_accounts,
               p.reach::bigint AS reach, p.interactions::bigint AS interactions,
               p.interactions::double precision / nullif(p.reach, 0) AS engagement_rate,
               1000.0 * p.shares::double precision / nullif(p.reach, 0) AS virality_score,
               coalesce(f.new_follows, 0)::bigint AS new_follows
        FROM posted p LEFT JOIN active a USING (date) LEFT JOIN followed f USING (date)
    """


def _write_tables(
    warehouse: ParquetWarehouse | LakeWarehouse, value_per_engagement: float
) -> dict[str, int]:
    read = warehouse.read
    posts = read(
        "content_posts", columns=["post_id", "user_id", "created_at", "campaign_id", *_COUNTS]
    )
    follows = read("follows", columns=["followee_id", "created_at"])
    campaigns = campaign_kpis(
        read("campaigns"),
        posts,
        follows,
        read("likes", columns=["post_id", "user_id", "created_at"]),
        read("comments", columns=["post_id", "user_id", "created_at"]),
        value_per_engagement,
    )
    daily = kpi_daily(posts, read("user_activity", columns=["user_id", "date"]), follows)
    return warehouse.write_many([(CAMPAIGNS, campaigns), (DAILY, daily)])


def _create_views(warehouse: PostgresWarehouse, value_per_engagement: float) -> dict[str, int]:
    schema = warehouse.schema
    for table, sql in (
        (CAMPAIGNS, campaign_sql(schema, value_per_engagement)),
        (DAILY, daily_sql(schema)),
    ):
        warehouse.execute(f"CREATE OR REPLACE VIEW {schema}.{table.name} AS {sql}")
    return {t.name: len(warehouse.read(t.name, columns=list(t.key))) for t in (CAMPAIGNS, DAILY)}


BUILDERS: dict[type, Callable[[Any, float], dict[str, int]]] = {
    ParquetWarehouse: _write_tables,
    PostgresWarehouse: _create_views,
    LakeWarehouse: _write_tables,
}


def build_kpis(warehouse: Warehouse, value_per_engagement: float) -> dict[str, int]:
    """Parquet tables (local) or views (services) of the KPIs; returns their row counts."""
    return BUILDERS[type(warehouse)](warehouse, value_per_engagement)
