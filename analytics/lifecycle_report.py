"""The dashboard's sections on engagement quality, share cascades and lifecycles.

Each is a pure function of the tables `smap analytics run` writes (analytics/quality.py,
cascades.py, lifecycle.py) and returns a `Part`, the fields of `analytics.report.Section` in
order, so that the page module wraps them without this module importing it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pandas as pd

from analytics.lifecycle import PERIOD_DAYS, STAGES
from analytics.quality import (
    BURST_MIN,
    BURST_MINUTES,
    CLASSES,
    COMMENT,
    LIKE,
    MIN_POSTS,
    SAVE,
    SHARE,
)

TOP_N = 10
TEMPLATE = "plotly_white"
CLASS_COLOURS = {"low": "#c62828", "medium": "#f9a825", "high": "#2e7d32"}
NOT_RUN = "run `smap analytics run`"


class Part(NamedTuple):
    """A section's fields: anchor, title, note, plotly figures, table shown, tables exported."""

    key: str
    title: str
    note: str
    figures: list
    shown: pd.DataFrame | None
    exports: dict[str, pd.DataFrame]


def _go():
    import plotly.graph_objects as go

    return go


def _style(fig, height: int, **layout) -> None:
    fig.update_layout(
        height=height, template=TEMPLATE, margin={"t": 30, "b": 40, "l": 10, "r": 10}, **layout
    )


def _empty(key: str, title: str, why: str) -> Part:
    return Part(key, title, why, [], None, {})


def quality_part(posts: pd.DataFrame | None, accounts: pd.DataFrame | None) -> Part:
    """Posts per quality class and post type, and the accounts with the best quality."""
    key, title = "quality", "Engagement quality"
    if posts is None or posts.empty or accounts is None:
        return _empty(key, title, f"No engagement quality scores yet: {NOT_RUN}.")
    go = _go()
    mix = posts.groupby(["post_type", "quality_class"]).size().unstack(fill_value=0)
    mix = mix.reindex(columns=list(CLASSES), fill_value=0)
    share = mix.div(mix.sum(axis=1), axis=0)
    by_type = go.Figure(
        [
            go.Bar(
                x=share.index,
                y=share[c],
                name=c,
                marker_color=CLASS_COLOURS[c],
                customdata=mix[c],
                hovertemplate="%{x}: %{y:.0%} " + c + " (%{customdata} posts)<extra></extra>",
            )
            for c in CLASSES
        ]
    )
    _style(by_type, height=320, barmode="stack", yaxis_tickformat=".0%", yaxis_title="posts")
    rated = accounts[accounts.posts >= MIN_POSTS].sort_values("quality_score", ascending=False)
    top = rated.head(TOP_N)
    best = go.Figure(
        go.Bar(
            x=top.quality_score[::-1],
            y=[f"account {u}" for u in top.user_id[::-1]],
            orientation="h",
            name="quality score",
            marker_color=[CLASS_COLOURS[c] for c in top.quality_class[::-1]],
            customdata=np.stack([top.posts, top.reach], axis=1)[::-1],
            hovertemplate="%{x:.1f} per 1,000 reached (%{customdata[0]} posts, "
            "%{customdata[1]} reached)<extra></extra>",
        )
    )
    _style(best, height=60 + 32 * max(len(top), 1), xaxis_title="weighted engagement per 1,000")
    bots = int(posts.bot_engagements.sum())
    hit = int((posts.bot_engagements > 0).sum())
    note = (
        f"Weighted engagement per 1,000 accounts reached: a like {LIKE:g}, a comment {COMMENT:g} "
        f"times (1 + its sentiment), a share {SHARE:g}, a save {SAVE:g} (docs/lifecycle.md). "
        f"Classes are the thirds of this warehouse's posts (accounts). {bots:,} engagements on "
        f"{hit:,} posts came in bot-like bursts ({BURST_MIN}+ within {BURST_MINUTES:g} minutes "
        "from accounts with no history) and are not counted. Above: the class mix per post "
        f"type; below and in the table: the best accounts with at least {MIN_POSTS} posts."
    )
    shown = top[["user_id", "posts", "reach", "bot_engagements", "quality_score", "quality_class"]]
    return Part(key, title, note, [by_type, best], shown, {"account_quality": accounts})


def cascades_part(cascades: pd.DataFrame | None, starters: pd.DataFrame | None) -> Part:
    """Cascade depth and viral reach per post type, and the accounts whose posts spread."""
    key, title = "cascades", "Share cascades"
    if cascades is None or starters is None:
        return _empty(key, title, f"No share cascades yet: {NOT_RUN}.")
    if cascades.empty:
        return _empty(
            key,
            title,
            "No share graph in this warehouse (the export has no share events): counters say "
            "how often a post was shared, not through whom, so depth, breadth and viral reach "
            "are unknown. A `share_events` table (docs/lifecycle.md) in the warehouse brings "
            "them.",
        )
    go = _go()
    depth = cascades.depth.value_counts().sort_index()
    depths = go.Figure(
        go.Bar(
            x=depth.index.astype(str),
            y=depth.to_numpy(),
            name="cascades",
            hovertemplate="depth %{x}: %{y} posts<extra></extra>",
        )
    )
    _style(depths, height=300, xaxis_title="cascade depth (1: shared by the author's audience)")
    viral = cascades.groupby("post_type").agg(
        viral_reach=("viral_reach", "sum"), reach=("reach", "sum"), posts=("post_id", "size")
    )
    viral_share = viral.viral_reach / viral.reach.where(viral.reach > 0)
    by_type = go.Figure(
        go.Bar(
            x=viral.index,
            y=viral_share,
            name="reach through shares",
            customdata=viral.posts,
            hovertemplate="%{x}: %{y:.1%} of reach through shares (%{customdata} posts)"
            "<extra></extra>",
        )
    )
    _style(by_type, height=300, yaxis_tickformat=".0%", yaxis_title="reach through shares")
    top = starters.sort_values("rank").head(TOP_N)
    total = cascades.viral_reach.sum() / max(cascades.reach.sum(), 1)
    note = (
        f"{len(cascades):,} posts were shared; of their reach, {total:.1%} came through shares. "
        f"The deepest cascade is {int(cascades.depth.max())} shares long, the broadest has "
        f"{int(cascades.breadth.max())} shares at one depth. Bot-like shares are left out. The "
        "table: the accounts whose cascades reached the most accounts (reshared: how often the "
        "account's own shares were passed on)."
    )
    shown = top[["rank", "user_id", "cascades", "cascade_shares", "mean_size", "max_depth"]]
    shown = shown.assign(viral_reach=top.viral_reach, reshared=top.reshared)
    return Part(key, title, note, [depths, by_type], shown, {"cascade_starters": starters})


def lifecycle_part(
    half_life: pd.DataFrame | None,
    transitions: pd.DataFrame | None,
    summary: pd.DataFrame | None,
) -> Part:
    """Half-life per post type, the stage transition matrix and churn risk per stage."""
    key, title = "lifecycle", "Lifecycles"
    if half_life is None or transitions is None or summary is None or summary.empty:
        return _empty(key, title, f"No lifecycles yet: {NOT_RUN}.")
    go = _go()
    figures = []
    if not half_life.empty:
        kinds = [k for k in ("all", "comment", "share") if k in set(half_life.kind)]
        bars = go.Figure(
            [
                go.Bar(
                    x=g.post_type,
                    y=g.half_life_hours,
                    name=kind,
                    customdata=g.events,
                    hovertemplate="%{x}, " + kind + ": %{y:.1f} h (%{customdata} events)"
                    "<extra></extra>",
                )
                for kind in kinds
                for g in [half_life[half_life.kind == kind].sort_values("post_type")]
            ]
        )
        _style(bars, height=300, barmode="group", yaxis_title="half-life (hours)")
        figures.append(bars)
    matrix = (
        transitions.pivot(index="from_stage", columns="to_stage", values="rate")
        .reindex(index=list(STAGES), columns=list(STAGES))
        .to_numpy()
    )
    heat = go.Figure(
        go.Heatmap(
            z=matrix,
            x=list(STAGES),
            y=list(STAGES),
            colorscale="Blues",
            zmin=0,
            zmax=1,
            name="transition rate",
            hovertemplate="%{y} → %{x}: %{z:.0%}<extra></extra>",
        )
    )
    _style(
        heat,
        height=340,
        xaxis_title=f"stage {PERIOD_DAYS} days later",
        yaxis_title="stage",
        yaxis_autorange="reversed",
    )
    figures.append(heat)
    risk = go.Figure(
        go.Bar(
            x=summary.stage,
            y=summary.churn_rate,
            name="churn label rate",
            customdata=summary.users,
            hovertemplate="%{x}: %{y:.0%} quiet for the next 28 days (%{customdata} users now)"
            "<extra></extra>",
        )
    )
    if summary.churn_probability.notna().any():
        risk.add_trace(
            go.Bar(
                x=summary.stage,
                y=summary.churn_probability,
                name="churn champion's mean probability",
                hovertemplate="%{x}: %{y:.0%} on average, by the churn champion<extra></extra>",
            )
        )
    _style(risk, height=300, yaxis_tickformat=".0%", yaxis_title="churn risk", barmode="group")
    figures.append(risk)
    slow = half_life[half_life.kind == "all"].sort_values("half_life_hours")
    pace = (
        f"Half of a post's first-week comments and shares arrive within "
        f"{slow.half_life_hours.iloc[0]:.1f} h for {slow.post_type.iloc[0]} posts and "
        f"{slow.half_life_hours.iloc[-1]:.1f} h for {slow.post_type.iloc[-1]} posts. "
        if len(slow)
        else "No timed comments or shares: no half-life. "
    )
    note = (
        pace + f"Stages at the end of each {PERIOD_DAYS}-day period (docs/lifecycle.md); the "
        f"heatmap: the share of each stage found in each stage one period later; the bars and "
        f"the table: the stages now and the share of each stage's users with no activity in "
        f"the next 28 days ({summary.risk_source.iloc[0]})."
    )
    shown = summary[["stage", "users", "share", "churn_rate", "churn_probability"]]
    exports = {
        "engagement_half_life": half_life,
        "stage_transitions": transitions,
        "stage_summary": summary,
    }
    return Part(key, title, note, figures, shown, exports)


def lifecycle_parts(read: Callable[..., pd.DataFrame | None]) -> list[Part]:
    """The three sections, from `read(table_name)` (None when the table is not built)."""
    return [
        quality_part(
            read("post_quality", ["post_type", "quality_class", "bot_engagements"]),
            read("account_quality"),
        ),
        cascades_part(read("post_cascades"), read("cascade_starters")),
        lifecycle_part(
            read("engagement_half_life"), read("stage_transitions"), read("stage_summary")
        ),
    ]
