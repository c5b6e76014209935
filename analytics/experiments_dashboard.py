"""The dashboard's "Experiments" section: content experiments' lifts and model experiments.

Each content experiment is read with `analytics.ab.analyse` (imported when the section is
built: it loads scipy and statsmodels): a forest plot of every variant's relative lift over
the control with its CUPED and plain intervals, and a table with the p-values, the
always-valid sequential p-value and how much CUPED narrowed the interval. With no experiment
yet, the table is the sample-size guide of `smap ab plan` at the platform's engagement rate.

Model experiments (champion against challenger in the service) are another module's: they
are shown as a table when `model_experiments` returns rows (see its docstring).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import ModuleType

import pandas as pd

from analytics.errors import AnalyticsError
from ingestion.warehouse import Warehouse

MODEL_EXPERIMENTS_TABLE = "model_experiments"
GUIDE_LIFTS = (0.05, 0.10, 0.20)
COLUMNS = ["post_id", "user_id", "created_at", "reach", "engagement_rate", "experiment", "variant"]


@dataclass(frozen=True)
class ExperimentsParts:
    """What the section shows: a note, charts, one table, the tables exported."""

    note: str
    figures: list = field(default_factory=list)
    shown: pd.DataFrame | None = None
    exports: dict[str, pd.DataFrame] = field(default_factory=dict)


def _statistics() -> ModuleType:
    """analytics.ab, imported when the section is built: it loads scipy and statsmodels."""
    from analytics import ab

    return ab


def model_experiments(warehouse: Warehouse) -> pd.DataFrame | None:
    """The running figures of model experiments: the warehouse table `model_experiments` as
    its owner writes it (one row per experiment, columns of its choosing), or None. This is
    the hook for the service's model experiments; the section shows what it returns."""
    if not warehouse.exists(MODEL_EXPERIMENTS_TABLE):
        return None
    frame = warehouse.read(MODEL_EXPERIMENTS_TABLE)
    return None if frame.empty else frame


def experiment_lifts(posts: pd.DataFrame, skipped: list[str] | None = None) -> pd.DataFrame:
    """One row per variant against its experiment's control; an experiment that cannot be
    read yet (one variant, a variant of one post) is left out, its reason put in `skipped`."""
    ab = _statistics()

    rows = []
    for name in ab.experiments(posts):
        try:
            report = ab.analyse(posts, name)
        except AnalyticsError as exc:  # one small imported experiment must not sink the page
            if skipped is not None:
                skipped.append(str(exc))
            continue
        posts_of = {v.variant: v.posts for v in report.variants}
        for c in report.comparisons:
            rows.append(
                {
                    "experiment": name,
                    "variant": f"{c.variant} vs {report.control}",
                    "posts": posts_of[c.variant] + posts_of[report.control],
                    "lift": c.cuped.lift,
                    "lift_low": c.cuped.lift_low,
                    "lift_high": c.cuped.lift_high,
                    "plain_lift_low": c.plain.lift_low,
                    "plain_lift_high": c.plain.lift_high,
                    "p_value": c.cuped.p_value,
                    "sequential_p": c.sequential_p,
                    "cuped_width_ratio": c.width_ratio,
                    "first_post": report.start,
                    "last_post": report.end,
                }
            )
    return pd.DataFrame(rows)


def _posts_needed(ab: ModuleType, baseline: float, lift: float, sd: float | None) -> float:
    """`ab.plan`'s posts per variant; NaN where the posts give no plan (one post, or every
    rate the same: no spread; every rate 0: no baseline)."""
    try:
        return float(ab.plan(baseline, lift, sd=sd).posts_per_variant)
    except AnalyticsError:
        return math.nan


def sample_size_guide(posts: pd.DataFrame) -> pd.DataFrame:
    """Posts per variant for a few lifts at the platform's mean engagement rate and per-post
    spread (Cohen's d), and counting each post as one trial (Cohen's h)."""
    ab = _statistics()

    baseline = float(posts.engagement_rate.mean())
    sd = float(posts.engagement_rate.std(ddof=1))
    rows = []
    for lift in GUIDE_LIFTS:
        rows.append(
            {
                "baseline_rate": baseline,
                "rate_sd": sd,
                "lift": lift,
                "posts_per_variant": _posts_needed(ab, baseline, lift, sd),
                "posts_per_variant_as_trials": _posts_needed(ab, baseline, lift, None),
                "power": 0.8,
                "alpha": 0.05,
            }
        )
    return pd.DataFrame(rows)


def _forest(lifts: pd.DataFrame):
    import plotly.graph_objects as go

    labels = [f"{r.experiment}: {r.variant}" for r in lifts.itertuples()]
    fig = go.Figure()
    for low, high, name, colour in (
        ("plain_lift_low", "plain_lift_high", "95% interval", "#9e9e9e"),
        ("lift_low", "lift_high", "95% interval, CUPED", "#1565c0"),
    ):
        fig.add_trace(
            go.Scatter(
                x=lifts.lift,
                y=labels,
                mode="markers",
                name=name,
                marker={"color": colour, "size": 9},
                error_x={
                    "type": "data",
                    "symmetric": False,
                    "array": lifts[high] - lifts.lift,
                    "arrayminus": lifts.lift - lifts[low],
                    "color": colour,
                },
                hovertemplate="lift %{x:+.1%}<extra>%{y}</extra>",
            )
        )
    fig.add_vline(x=0, line_dash="dot", line_color="#616161")
    fig.update_layout(
        height=120 + 50 * len(lifts),
        template="plotly_white",
        margin={"t": 30, "b": 40, "l": 10, "r": 10},
        xaxis_title="relative lift of engagement rate over the control",
        xaxis_tickformat="+.0%",
    )
    return fig


def _table_figure(frame: pd.DataFrame, title: str):
    import plotly.graph_objects as go

    cells = [frame[c].astype(str).tolist() for c in frame.columns]
    fig = go.Figure(go.Table(header={"values": list(frame.columns)}, cells={"values": cells}))
    fig.update_layout(
        title=title, height=120 + 30 * len(frame), margin={"t": 40, "b": 10, "l": 10, "r": 10}
    )
    return fig


def experiments_parts(posts: pd.DataFrame | None, models: pd.DataFrame | None) -> ExperimentsParts:
    """The section from the posts (`content_performance_metrics`) and the model experiments."""
    figures, exports = [], {}
    notes = []
    shown = None
    if models is not None:
        figures.append(_table_figure(models, "model experiments (running)"))
        exports["model_experiments"] = models
    if posts is None or posts.empty or "experiment" not in posts:
        notes.append("No posts yet: run `smap ingest`.")
    elif posts.experiment.fillna("").ne("").any():  # PostgreSQL reads NULL text as ""
        skipped: list[str] = []
        lifts = experiment_lifts(posts, skipped)
        if not lifts.empty:
            figures.insert(0, _forest(lifts))
            shown = lifts.drop(columns=["plain_lift_low", "plain_lift_high"])
            exports["content_experiments"] = lifts
        if skipped:
            notes.append(f"Not shown yet: {'; '.join(skipped)}.")
        notes.append(
            "Content experiments: each variant's relative lift of the mean engagement rate per "
            "post over the control, with its 95% interval with CUPED (the author's "
            "pre-experiment rate) and without; the sequential p-value stays valid however "
            "often it is read (`smap ab report NAME`, docs/experiments.md)."
        )
    else:
        shown = sample_size_guide(posts)
        notes.append(
            "No content experiment yet: give posts an `experiment` and a `variant` (import "
            "mapping) or run `smap simulate --experiments`. The table gives the posts each "
            "variant needs at the platform's mean engagement rate (`smap ab plan`)."
        )
    if models is None:
        notes.append("No model experiment is running.")
    return ExperimentsParts(" ".join(notes), figures, shown, exports)
