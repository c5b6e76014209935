"""Platforms side by side: the dashboard's KPIs per platform, each platform's engagement rate
as it reports it, and a normalised rate that can be compared across platforms.

Native rates follow each platform's own definition (configs/platforms.py): X divides by
impressions, Instagram by reach, so an X rate of 2% and an Instagram rate of 2% are not the
same performance. Two figures can be compared across platforms instead:
- the engagement rate under one definition for every platform (likes + comments + shares +
  saves per account reached), the dashboard's KPI definition;
- a post's rate index: its native rate divided by the median native rate of its platform's
  matured posts (1.0 = a typical post of that platform; 2.0 = twice the platform's norm),
  which ranks posts across platforms without mixing their definitions (docs/platforms.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from configs.platforms import INTERACTIONS, PlatformSettings
from ingestion.etl import LABEL_DAYS

MIN_REACH = 100  # as the dashboard's top content: tiny reach makes noisy rates
TOP_N = 10
KEY, TITLE = "platforms", "Platforms side by side"


@dataclass(frozen=True)
class PlatformSection:
    """The section's parts, in the order of `analytics.report.Section`'s fields."""

    key: str
    title: str
    note: str
    figures: list = field(default_factory=list)
    shown: pd.DataFrame | None = None
    exports: dict[str, pd.DataFrame] = field(default_factory=dict)


def with_platform(frame: pd.DataFrame, platforms: PlatformSettings) -> pd.DataFrame:
    """`frame` with its missing platforms set to the default, and unknown ones kept as they
    are (an import may name a platform the table does not list)."""
    out = frame.copy()
    out["platform"] = out.platform.where(out.platform.notna(), platforms.default).astype(str)
    return out


def native_rates(posts: pd.DataFrame, platforms: PlatformSettings) -> pd.Series:
    """Each post's engagement rate as its platform reports it (a count the data does not hold,
    such as clicks, counts as 0; a platform the table does not list: per reach, all counts)."""
    rate = pd.Series(np.nan, index=posts.index, dtype=float)
    known = set(platforms.names)
    for name, group in posts.groupby("platform"):
        counts: list[str]
        if name in known:
            definition = platforms.spec(str(name)).rate
            counts = [c for c in definition.counts if c in group.columns]
            per = definition.per
        else:
            counts, per = list(INTERACTIONS), "reach"
        numerator = group[counts].sum(axis=1).astype(float)
        rate.loc[group.index] = numerator / group[per].clip(lower=1)
    return rate


def rate_index(posts: pd.DataFrame, native: pd.Series, matured: pd.Series) -> pd.Series:
    """Native rate / the median native rate of the platform's matured posts reaching at least
    MIN_REACH (the platform's mean when that median is 0; NaN for a platform with none)."""
    norm = {}
    for name, rates in native[matured & (posts.reach >= MIN_REACH)].groupby(posts.platform):
        median = rates.median()
        norm[name] = median if median > 0 else rates.mean()
    base = posts.platform.map(norm).astype(float)
    return native / base.where(base > 0)


def post_rates(posts: pd.DataFrame, platforms: PlatformSettings) -> pd.DataFrame:
    """Per post: platform, native rate, rate index, the one-definition engagement rate and the
    share rate (shares per account reached), and whether its label window has closed."""
    out = with_platform(posts, platforms)
    interactions = out[list(INTERACTIONS)].sum(axis=1)
    out["interactions"] = interactions
    out["engagement_rate"] = interactions / out.reach.clip(lower=1)
    out["share_rate"] = out.shares / out.reach.clip(lower=1)
    out["native_rate"] = native_rates(out, platforms)
    newest = pd.to_datetime(out.created_at, utc=True).max()
    out["matured"] = pd.to_datetime(out.created_at, utc=True) <= newest - pd.Timedelta(
        days=LABEL_DAYS
    )
    out["rate_index"] = rate_index(out, out.native_rate, out.matured)
    return out


def follower_growth(
    accounts: pd.DataFrame | None,
    metrics: pd.DataFrame | None,
    posts: pd.DataFrame,
    platforms: PlatformSettings,
) -> pd.DataFrame:
    """Per platform, its accounts' followers gained in the 7 days to the newest day of
    `user_engagement_metrics` over their followers 7 days before (pooled: one large account
    weighs as its audience does); an account's platform: its own row, else its posts'."""
    if metrics is None or metrics.empty:
        return pd.DataFrame(columns=["platform", "accounts", "follower_growth_7d"])
    newest = metrics[metrics.date == metrics.date.max()]
    of_account = posts.drop_duplicates("user_id").set_index("user_id").platform
    if accounts is not None and not accounts.empty:
        of_account = accounts.set_index("user_id").platform.combine_first(of_account)
    frame = newest.assign(platform=newest.user_id.map(of_account))
    frame = with_platform(frame, platforms)
    before = (frame.followers - frame.follower_growth_7d).clip(lower=1)
    frame = frame.assign(before=before)
    grouped = frame.groupby("platform")
    return pd.DataFrame(
        {
            "accounts": grouped.size(),
            "follower_growth_7d": grouped.follower_growth_7d.sum() / grouped.before.sum(),
        }
    ).reset_index()


def compare_platforms(
    rates: pd.DataFrame, growth: pd.DataFrame, platforms: PlatformSettings
) -> pd.DataFrame:
    """One row per platform: volume, the native rate (pooled, as the platform reports it, and
    its definition), the one-definition engagement rate, virality (shares per 1,000 reached,
    as the KPI section) and follower growth, over matured posts."""
    matured = rates[rates.matured]
    rows = []
    for name, group in matured.groupby("platform"):
        definition = platforms.spec(str(name)).rate if name in platforms.names else None
        counts = [c for c in definition.counts if c in group] if definition else INTERACTIONS
        per = definition.per if definition else "reach"
        reach = max(int(group.reach.sum()), 1)
        rows.append(
            {
                "platform": name,
                "posts": len(group),
                "reach": int(group.reach.sum()),
                "interactions": int(group.interactions.sum()),
                "rate_definition": definition.reported_as if definition else "engagements / reach",
                "native_rate": group[list(counts)].to_numpy().sum() / max(int(group[per].sum()), 1),
                "engagement_rate": group.interactions.sum() / reach,
                "virality_score": 1000 * group.shares.sum() / reach,
            }
        )
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    return table.merge(growth, on="platform", how="left").sort_values(
        "engagement_rate", ascending=False, ignore_index=True
    )


def top_posts_by_index(rates: pd.DataFrame, n: int = TOP_N) -> pd.DataFrame:
    """The matured posts furthest above their own platform's norm, across platforms."""
    ranked = rates[rates.matured & (rates.reach >= MIN_REACH) & rates.rate_index.notna()]
    columns = ["post_id", "user_id", "platform", "reach", "native_rate", "rate_index"]
    return ranked.sort_values(["rate_index", "post_id"], ascending=[False, True]).head(n)[columns]


def platforms_section(
    posts: pd.DataFrame | None,
    accounts: pd.DataFrame | None,
    metrics: pd.DataFrame | None,
    platforms: PlatformSettings,
) -> PlatformSection:
    """The dashboard's platform comparison: three charts, the comparison table, exports."""
    if posts is None or posts.empty:
        return PlatformSection(KEY, TITLE, "No platform data yet: run `smap ingest`.")
    rates = post_rates(posts, platforms)
    table = compare_platforms(
        rates, follower_growth(accounts, metrics, rates, platforms), platforms
    )
    if table.empty:
        return PlatformSection(
            KEY, TITLE, f"No post is older than {LABEL_DAYS} days yet: nothing matured to compare."
        )
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = go.Figure(
        [
            go.Bar(
                x=table.platform,
                y=table.engagement_rate,
                name="engagement rate, one definition (per reach)",
            ),
            go.Bar(
                x=table.platform,
                y=table.native_rate,
                name="native rate, as each platform reports it",
                customdata=table.rate_definition,
                hovertemplate="%{y:.2%} = %{customdata}<extra></extra>",
            ),
        ]
    )
    fig.update_layout(
        barmode="group",
        height=380,
        template="plotly_white",
        yaxis_tickformat=".1%",
        margin={"t": 30, "b": 40, "l": 10, "r": 10},
        legend={"orientation": "h", "y": -0.15},
    )
    kpis = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("virality (shares per 1,000 reached)", "weekly follower growth"),
    )
    kpis.add_trace(go.Bar(x=table.platform, y=table.virality_score, name="virality"), 1, 1)
    kpis.add_trace(
        go.Bar(x=table.platform, y=table.follower_growth_7d, name="follower growth"), 1, 2
    )
    kpis.update_yaxes(tickformat=".1%", row=1, col=2)
    kpis.update_layout(
        height=340,
        template="plotly_white",
        showlegend=False,
        margin={"t": 30, "b": 40, "l": 10, "r": 10},
    )
    judged = rates[rates.matured & rates.rate_index.notna() & (rates.reach >= MIN_REACH)]
    spread = go.Figure(
        [
            go.Box(y=group.rate_index, name=str(name), boxpoints=False)
            for name, group in judged.groupby("platform")
        ]
    )
    spread.update_layout(
        height=340,
        template="plotly_white",
        showlegend=False,
        yaxis={"type": "log", "title": "rate index (1 = the platform's median post)"},
        margin={"t": 30, "b": 40, "l": 10, "r": 10},
    )
    note = (
        f"Matured posts (older than {LABEL_DAYS} days) per platform. Native rates follow each "
        "platform's own definition and are not comparable with each other; the engagement rate "
        "under one definition and the rate index (a post's native rate / its platform's median "
        f"among posts reaching {MIN_REACH}+) are. The box plot: rate index per platform."
    )
    top = top_posts_by_index(rates)
    exports = {"platform_comparison": table, "platform_top_posts": top.reset_index(drop=True)}
    return PlatformSection(KEY, TITLE, note, [fig, kpis, spread], table, exports)
