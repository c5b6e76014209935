"""The dashboard: one self-contained HTML page over the analytics tables, and the same tables
as CSV and Parquet for BI tools (`analytics/exports.py`).

The page inlines plotly.js once (no CDN: it opens offline, from a file or `smap report
--serve`), then one small script per chart. Each section is a pure function of data frames
that returns its charts, the table it shows and the tables it exports; a section whose tables
are not built yet says which command builds them instead of failing.

Best posting hours compare each matured post with its author's usual post (engagement rate /
the author's median), so hours favoured by strong accounts do not pass for good hours; the
median of that lift per hour of day and weekday (UTC) is what the section ranks.
"""

from __future__ import annotations

import html
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, quote_plus

import numpy as np
import pandas as pd

from analytics import sentiment
from analytics.experiments_dashboard import COLUMNS as EXPERIMENT_COLUMNS
from analytics.experiments_dashboard import experiments_parts, model_experiments
from analytics.exports import Export, write_export
from analytics.influence import top_of
from analytics.lifecycle_report import lifecycle_parts
from analytics.platforms import platforms_section
from analytics.trends import trending_hashtags
from configs.errors import SmapError
from configs.settings import TRACKING_STORES, Settings
from ingestion.etl import LABEL_DAYS
from ingestion.schema import MONITORING_TABLES
from ingestion.warehouse import Warehouse, open_warehouse
from training import tags as tag

log = logging.getLogger("smap.report")

TOP_N = 10  # rows of the top-content, trending and influencer charts
TOP_CONTENT_DAYS = 7  # top content: posts of the newest week of data
MIN_REACH = 100  # as the ETL's top_performing_content view: tiny reach makes noisy rates
MIN_AUTHOR_POSTS = 3  # matured posts an author needs before its posts count for posting hours
MIN_HOUR_POSTS = 30  # posts an hour of day needs to be ranked
MIN_CELL_POSTS = 5  # posts a weekday-hour cell needs to be coloured on the heatmap
RECENT_CHECKS = 20
TREND_HISTORY_DAYS = 28
WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
TEMPLATE = "plotly_white"


@dataclass(frozen=True)
class Section:
    """One part of the page: charts, one table shown, the tables exported."""

    key: str  # HTML anchor
    title: str
    note: str  # what it shows, or why it is empty
    figures: list = field(default_factory=list)  # plotly figures
    shown: pd.DataFrame | None = None
    exports: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.figures and self.shown is None


@dataclass(frozen=True)
class Report:
    """What `write_report` wrote."""

    path: Path  # the HTML page
    folder: Path
    sections: list[Section]
    exports: list[Export]


# -- the sections: pure functions of frames ------------------------------------------------


def _go():
    import plotly.graph_objects as go

    return go


def _style(fig, height: int, **layout) -> None:
    """The house look: white template, tight margins, a fixed height."""
    fig.update_layout(
        height=height, template=TEMPLATE, margin={"t": 30, "b": 40, "l": 10, "r": 10}, **layout
    )


def _missing(key: str, title: str, why: str) -> Section:
    return Section(key, title, why)


def kpi_section(daily: pd.DataFrame | None, campaigns: pd.DataFrame | None) -> Section:
    """Daily volume, engagement and virality over time, the last week against the one before,
    and the campaigns by return."""
    key, title = "kpis", "KPIs over time"
    if daily is None or daily.empty:
        return _missing(key, title, "No KPIs yet: run `smap analytics run`.")
    from plotly.subplots import make_subplots

    go = _go()
    daily = daily.sort_values("date").reset_index(drop=True)
    fig = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.06,
        subplot_titles=("activity", "engagement rate", "virality (shares per 1,000 reached)"),
    )
    for col in ("posts", "active_accounts", "new_follows"):
        fig.add_trace(go.Scatter(x=daily.date, y=daily[col], name=col, mode="lines"), 1, 1)
    for row, col in ((2, "engagement_rate"), (3, "virality_score")):
        fig.add_trace(
            go.Scatter(x=daily.date, y=daily[col], name=col, mode="lines", opacity=0.45), row, 1
        )
        fig.add_trace(
            go.Scatter(
                x=daily.date,
                y=daily[col].rolling(7, min_periods=1).mean(),
                name=f"{col} (7-day mean)",
                mode="lines",
            ),
            row,
            1,
        )
    fig.update_yaxes(tickformat=".1%", row=2, col=1)
    _style(fig, height=720)
    exports = {"kpi_daily": daily}
    note = "Per UTC day, all accounts. " + week_over_week_note(daily)
    shown = None
    if campaigns is not None and not campaigns.empty:
        exports["campaign_kpis"] = campaigns.sort_values("campaign_id", ignore_index=True)
        ran = campaigns[campaigns.posts > 0].sort_values("roi", ascending=False)
        shown = ran.head(TOP_N)[
            ["name", "objective", "start_date", "end_date", "budget", "posts", "reach"]
            + ["interactions", "engagement_rate", "cost_per_engagement", "roi", "retention"]
        ]
        note += f" The table: the {len(shown)} campaigns with the best return (of {len(ran)})."
    return Section(key, title, note, [fig], shown, exports)


def week_over_week_note(daily: pd.DataFrame) -> str:
    """The newest 7 days against the 7 before, in one sentence."""
    end = daily.date.max()
    last = daily[daily.date > end - pd.Timedelta(days=7)]
    before = daily[
        (daily.date <= end - pd.Timedelta(days=7)) & (daily.date > end - pd.Timedelta(days=14))
    ]
    if before.empty:
        return ""

    def rate(frame: pd.DataFrame) -> float:
        return frame.interactions.sum() / max(frame.reach.sum(), 1)

    def change(now: float, then: float) -> str:
        return f"{now / then - 1:+.0%}" if then else "new"

    posts, hits = last.posts.sum(), last.interactions.sum()
    return (
        f"Week to {end:%Y-%m-%d} against the week before: posts {posts:,} "
        f"({change(posts, before.posts.sum())}), interactions {hits:,} "
        f"({change(hits, before.interactions.sum())}), engagement rate {rate(last):.2%} "
        f"({change(rate(last), rate(before))})."
    )


def top_content(
    performance: pd.DataFrame, users: pd.DataFrame | None = None, n: int = TOP_N
) -> pd.DataFrame:
    """The newest week's posts with at least MIN_REACH reached, best engagement rate first."""
    newest = performance.created_at.max()
    recent = performance[
        (performance.created_at > newest - pd.Timedelta(days=TOP_CONTENT_DAYS))
        & (performance.reach >= MIN_REACH)
    ]
    out = recent.sort_values(["engagement_rate", "post_id"], ascending=[False, True]).head(n)
    columns = ["post_id", "user_id", "created_at", "category", "post_type", "reach"]
    out = out[[*columns, "interactions", "engagement_rate", "share_rate"]]
    if users is not None:
        out.insert(2, "username", out.user_id.map(users.set_index("user_id").username))
    return out.reset_index(drop=True)


def content_section(performance: pd.DataFrame | None, users: pd.DataFrame | None) -> Section:
    key, title = "content", "Top content"
    if performance is None or performance.empty:
        return _missing(key, title, "No posts yet: run `smap ingest`.")
    top = top_content(performance, users)
    if top.empty:
        return _missing(key, title, f"No post of the newest week reached {MIN_REACH} accounts.")
    go = _go()
    label = [
        f"{r.username or r.user_id} · {r.category} {r.post_type} · #{r.post_id}"
        for r in top.itertuples()
    ]
    fig = go.Figure(
        go.Bar(
            x=top.engagement_rate[::-1],
            y=label[::-1],
            orientation="h",
            name="engagement rate",
            customdata=np.stack([top.reach, top.interactions], axis=1)[::-1],
            hovertemplate="%{x:.2%} (%{customdata[1]} of %{customdata[0]} reached)<extra></extra>",
        )
    )
    _style(fig, height=60 + 32 * len(top), xaxis_tickformat=".0%")
    note = (
        f"Posts published in the {TOP_CONTENT_DAYS} days to {performance.created_at.max():%Y-%m-%d}"
        f" that reached at least {MIN_REACH} accounts, by engagement rate. On an export the "
        "newest posts are still collecting interactions."
    )
    return Section(key, title, note, [fig], top, {"top_content": top})


def trends_section(trends: pd.DataFrame | None, daily: pd.DataFrame | None) -> Section:
    key, title = "hashtags", "Trending hashtags"
    if trends is None or trends.empty:
        return _missing(
            key,
            title,
            "No hashtag trends yet (10 days of hashtags needed): run `smap analytics run`.",
        )
    go = _go()
    top = trending_hashtags(trends, n=TOP_N)
    day = top.date.max()
    fig = go.Figure(
        go.Bar(
            x=top.tag,
            y=top.trend_score,
            name="trend score",
            customdata=np.stack([top.usage_recent, top.baseline_daily, top.growth], axis=1),
            hovertemplate="%{x}: score %{y:.1f}<br>%{customdata[0]} uses in 3 days, "
            "%{customdata[1]:.1f}/day before (%{customdata[2]:+.0%})<extra></extra>",
        )
    )
    _style(fig, height=360, yaxis_title="trend score")
    figures = [fig]
    if daily is not None and not daily.empty:
        history = daily[
            daily.hashtag_id.isin(top.hashtag_id.head(5))
            & (daily.date > day - pd.Timedelta(days=TREND_HISTORY_DAYS))
        ].sort_values("date")
        usage = go.Figure(
            [
                go.Scatter(x=g.date, y=g.usage, name=tag, mode="lines+markers")
                for tag, g in history.groupby("tag", sort=False)
            ]
        )
        _style(usage, height=320, yaxis_title="uses per day")
        figures.append(usage)
    shown = top[["rank", "tag", "category", "usage_recent", "baseline_daily", "growth"]]
    shown = shown.assign(trend_score=top.trend_score)
    note = (
        f"The top {len(top)} tags on {day:%Y-%m-%d}: uses over the last 3 days against the 7 "
        "days before, in Poisson standard deviations; below, the daily uses of the top 5 over "
        f"{TREND_HISTORY_DAYS} days. The export holds every tag and day."
    )
    return Section(
        key, title, note, figures, shown, {"trending_hashtags": top, "hashtag_trends": trends}
    )


def segments_section(summary: pd.DataFrame | None) -> Section:
    key, title = "segments", "Segments"
    if summary is None or summary.empty:
        return _missing(
            key, title, "No segment profiles yet: run `smap segment`, then `smap analytics run`."
        )
    go = _go()
    summary = summary.sort_values("segment").reset_index(drop=True)
    names = [f"{r.segment}: {r.name}" for r in summary.itertuples()]
    fig = go.Figure(
        go.Bar(
            x=names,
            y=summary["size"],
            name="users",
            customdata=summary.engagement_rate_28d_median,
            hovertemplate="%{x}: %{y} users, typical engagement rate %{customdata:.2%}"
            "<extra></extra>",
        )
    )
    _style(fig, height=340, yaxis_title="users")
    shown = summary[["segment", "name", "size", "share", "description"]]
    note = f"Segments of model version {summary.model_version.max()}, medians of their members."
    return Section(key, title, note, [fig], shown, {"segment_summary": summary})


def influencers_section(network: pd.DataFrame | None) -> Section:
    key, title = "influencers", "Influencers"
    if network is None or network.empty:
        return _missing(key, title, "No influencer ranking yet: run `smap analytics run`.")
    go = _go()
    top = top_of(network, None, TOP_N)
    label = [f"{r.username or r.user_id} ({r.category or '-'})" for r in top.itertuples()]
    fig = go.Figure(
        go.Bar(
            x=top.pagerank[::-1],
            y=label[::-1],
            orientation="h",
            name="PageRank",
            customdata=np.stack([top.followers, top.engagement_received], axis=1)[::-1],
            hovertemplate="PageRank %{x:.4f}<br>%{customdata[0]} followers, "
            "%{customdata[1]} interactions received<extra></extra>",
        )
    )
    _style(fig, height=60 + 32 * len(top))
    shown = top[["rank", "username", "account_type", "category", "followers"]]
    shown = shown.assign(engagement_received=top.engagement_received, pagerank=top.pagerank)
    note = (
        "PageRank on the follow graph, weighted by the likes and comments behind each follow and "
        "the engagement each account receives (docs/analytics.md). The export ranks every account."
    )
    return Section(key, title, note, [fig], shown, {"influencer_network": network})


def posting_lift(performance: pd.DataFrame) -> pd.DataFrame:
    """Matured posts (label window closed) of authors with MIN_AUTHOR_POSTS of them, with
    their UTC weekday and hour and their engagement rate over their author's median."""
    newest = performance.created_at.max()
    matured = performance[
        (performance.created_at <= newest - pd.Timedelta(days=LABEL_DAYS))
        & performance.engagement_rate.notna()
    ]
    by_author = matured.groupby("user_id").engagement_rate
    usual = by_author.transform("median")
    enough = by_author.transform("size") >= MIN_AUTHOR_POSTS
    posts = matured[enough & (usual > 0)]
    at = posts.created_at.dt.tz_convert("UTC")
    return pd.DataFrame(
        {
            "weekday": at.dt.dayofweek.to_numpy(),
            "hour": at.dt.hour.to_numpy(),
            "engagement_rate": posts.engagement_rate.to_numpy(),
            "lift": (posts.engagement_rate / usual[posts.index]).to_numpy(),
        }
    )


BAND_LEVEL = 0.9  # confidence of the band drawn around each hour's median lift
BAND_Z = 1.645  # the normal quantile of BAND_LEVEL's upper tail (0.95)


def median_band(values: pd.Series) -> tuple[float, float]:
    """A distribution-free BAND_LEVEL confidence interval of the median: the order
    statistics n/2 -+ z*sqrt(n)/2 (normal approximation of the binomial count of values below
    the median, fine from the MIN_HOUR_POSTS an hour needs). Hours whose bands overlap the
    best hour's are not reliably worse."""
    ordered = np.sort(values.dropna().to_numpy(dtype=float))
    n = len(ordered)
    if n == 0:
        return float("nan"), float("nan")
    spread = BAND_Z * np.sqrt(n) / 2
    low = int(np.clip(np.floor(n / 2 - spread), 1, n))
    high = int(np.clip(np.ceil(n / 2 + spread), 1, n))
    return float(ordered[low - 1]), float(ordered[high - 1])


def posting_hours(lift: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(by hour of day, by weekday and hour): posts, median lift (by hour, with its
    BAND_LEVEL confidence band), mean engagement rate."""

    def summarise(keys: list[str], index: pd.Index) -> pd.DataFrame:
        grouped = lift.groupby(keys)
        out = pd.DataFrame(
            {
                "posts": grouped.size(),
                "median_lift": grouped.lift.median(),
                "mean_engagement_rate": grouped.engagement_rate.mean(),
            }
        ).reindex(index)
        out["posts"] = out.posts.fillna(0).astype(np.int64)
        return out.reset_index()

    hours = summarise(["hour"], pd.RangeIndex(24, name="hour"))
    bands = {int(h): median_band(values) for h, values in lift.groupby("hour").lift}
    no_band = (np.nan, np.nan)
    hours["lift_low"] = [bands.get(h, no_band)[0] for h in hours.hour]
    hours["lift_high"] = [bands.get(h, no_band)[1] for h in hours.hour]
    ranked = hours.posts >= MIN_HOUR_POSTS
    hours["rank"] = hours.median_lift.where(ranked).rank(ascending=False, method="first")
    hours["rank"] = hours["rank"].astype("Int64")
    grid = summarise(
        ["weekday", "hour"],
        pd.MultiIndex.from_product([range(7), range(24)], names=["weekday", "hour"]),
    )
    grid.insert(1, "weekday_name", [WEEKDAYS[d] for d in grid.weekday])
    return hours, grid


def best_hours(hours: pd.DataFrame, n: int = 3) -> list[int]:
    """The `n` hours of day (UTC) whose posts beat their authors' usual post the most."""
    return [int(h) for h in hours.dropna(subset=["rank"]).sort_values("rank").hour.head(n)]


def hours_section(performance: pd.DataFrame | None) -> Section:
    key, title = "hours", "Best posting hours"
    if performance is None or performance.empty:
        return _missing(key, title, "No posts yet: run `smap ingest`.")
    lift = posting_lift(performance)
    hours, grid = posting_hours(lift)
    best = best_hours(hours)
    if not best:
        return _missing(
            key,
            title,
            f"Too few matured posts to rank hours ({len(lift)} posts of authors with at least "
            f"{MIN_AUTHOR_POSTS}; an hour needs {MIN_HOUR_POSTS}).",
        )
    go = _go()
    ranked = hours["rank"].notna()
    bars = go.Figure(
        go.Bar(
            x=hours.hour,
            y=(hours.median_lift - 1).where(ranked),
            name="median lift",
            customdata=np.stack([hours.posts, hours.lift_low - 1, hours.lift_high - 1], axis=-1),
            marker_color=["#c62828" if h in best else "#1565c0" for h in hours.hour],
            error_y={
                "type": "data",
                "array": (hours.lift_high - hours.median_lift).where(ranked),
                "arrayminus": (hours.median_lift - hours.lift_low).where(ranked),
                "color": "#424242",
                "thickness": 1,
            },
            hovertemplate="%{x}:00 UTC: %{y:+.1%} against the author's usual, "
            f"{BAND_LEVEL:.0%} band %{{customdata[1]:+.1%}} to %{{customdata[2]:+.1%}} "
            "(%{customdata[0]} posts)<extra></extra>",
        )
    )
    _style(
        bars,
        height=320,
        xaxis_title="hour of day (UTC)",
        yaxis_title="median lift",
        yaxis_tickformat="+.0%",
        xaxis_dtick=2,
    )
    cells = grid.median_lift.where(grid.posts >= MIN_CELL_POSTS)
    heat = go.Figure(
        go.Heatmap(
            z=cells.to_numpy().reshape(7, 24),
            x=list(range(24)),
            y=WEEKDAYS,
            colorscale="RdBu",
            zmid=1.0,
            name="median lift",
            customdata=grid.posts.to_numpy().reshape(7, 24),
            hovertemplate="%{y} %{x}:00 UTC: %{z:.2f}x (%{customdata} posts)<extra></extra>",
        )
    )
    _style(heat, height=320, xaxis_title="hour of day (UTC)", yaxis_autorange="reversed")
    slots = ", ".join(f"{h:02d}:00" for h in best)
    note = (
        f"Best hours (UTC): {slots}. Lift: a matured post's engagement rate over its author's "
        f"median, {len(lift):,} posts of authors with at least {MIN_AUTHOR_POSTS}. The median "
        f"per hour (hours with fewer than {MIN_HOUR_POSTS} posts left out; whiskers: its "
        f"{BAND_LEVEL:.0%} confidence band, so hours whose band reaches the best hour's are not "
        f"reliably worse), then per weekday and hour (blank: fewer than {MIN_CELL_POSTS} posts; "
        f"blue: above the author's usual)."
    )
    shown = hours.dropna(subset=["rank"]).sort_values("rank").head(5)
    return Section(
        key,
        title,
        note,
        [bars, heat],
        shown,
        {"posting_hours": hours, "posting_weekday_hours": grid},
    )


def health_section(checks: pd.DataFrame | None, champions: pd.DataFrame | str) -> Section:
    """The registry's champions (or why they are unknown) and the recent drift checks."""
    key, title = "health", "Model health"
    notes, figures, exports = [], [], {}
    shown = None
    if isinstance(champions, str):
        notes.append(champions)
    elif champions.empty:
        notes.append("No champion in the registry yet: run `smap train TASK`.")
    else:
        shown = champions
        exports["champions"] = champions
        notes.append(
            f"Champions: {', '.join(f'{r.task} v{r.version}' for r in champions.itertuples())}."
        )
    if checks is None or checks.empty:
        notes.append("No drift checks recorded yet: run `smap monitor TASK`.")
    else:
        go = _go()
        recent = checks.sort_values("checked_at").tail(RECENT_CHECKS)
        fig = go.Figure(
            [
                go.Scatter(
                    x=g.checked_at,
                    y=g.drifted_share,
                    name=task,
                    mode="lines+markers",
                    customdata=np.stack([g.version, g.verdict], axis=1),
                    hovertemplate=task + " v%{customdata[0]}: %{y:.0%} of features drifted, "
                    "%{customdata[1]}<extra></extra>",
                )
                for task, g in recent.groupby("task")
            ]
        )
        _style(fig, height=300, yaxis_tickformat=".0%", yaxis_title="features drifted")
        figures.append(fig)
        drifted = (recent.verdict == "drift").sum()
        notes.append(
            f"The {len(recent)} newest drift checks: {drifted} found drift "
            f"(`smap monitor ui` has their reports)."
        )
        columns = ["checked_at", "task", "version", "rows", "drifted_share", "metric"]
        exports["drift_checks"] = recent[[*columns, "quality_value", "test_value", "verdict"]]
        if shown is None:
            shown = exports["drift_checks"].iloc[::-1]
    return Section(key, title, " ".join(notes), figures, shown, exports)


def experiments_section(posts: pd.DataFrame | None, warehouse: Warehouse) -> Section:
    parts = experiments_parts(posts, model_experiments(warehouse))
    return Section(
        "experiments", "Experiments", parts.note, parts.figures, parts.shown, parts.exports
    )


# -- reading the warehouse and the registry --------------------------------------------------


def _read(warehouse: Warehouse, name: str, columns: list[str] | None = None):
    return warehouse.read(name, columns=columns) if warehouse.exists(name) else None


def _platform_frames(
    warehouse: Warehouse,
) -> tuple[pd.DataFrame | None, pd.DataFrame | None, pd.DataFrame | None]:
    """What the platform section reads: posts with platforms, accounts' platforms, and the
    accounts' followers on the newest day (the ETL's calendar ends on the newest post's)."""
    posts = _read(warehouse, "platform_posts")
    metrics = None
    if posts is not None and len(posts) and warehouse.exists("user_engagement_metrics"):
        metrics = warehouse.read(
            "user_engagement_metrics",
            columns=["user_id", "date", "followers", "follower_growth_7d"],
            between=("date", posts.date.max(), None),
        )
    return posts, _read(warehouse, "account_platforms"), metrics


def drift_checks(warehouse: Warehouse) -> pd.DataFrame | None:
    """The `drift_checks` table (as `monitoring.checks.checks`, whose module imports Evidently:
    some 20 s on a busy 2-core machine, for one table read)."""
    return _read(warehouse, MONITORING_TABLES["drift_checks"].name)


def no_registry(settings: Settings) -> bool:
    """True when the profile's own MLflow store was never created (nothing trained yet), so
    the page says so at once instead of MLflow retrying a connection for a minute or more."""
    if settings.mlflow.tracking_uri:
        return False  # a server or URI of its own: ask it
    return not TRACKING_STORES[settings.mlflow.backend].exists(settings)


CHAMPION_COLUMNS = ["task", "version", "run_id", "registered_at", "feature_service", "test_metrics"]


def champions(settings: Settings) -> pd.DataFrame | str:
    """Every registered model's `champion` (version, run, when, its test metrics), or one line
    saying why the registry cannot be read (the page is still written). MLflow is read
    directly: `training.tracking` and `training.registry` import Feast, some 20 s on a busy
    2-core machine, for one listing. A local profile that never trained has no registry file,
    and none is created here."""
    if no_registry(settings):
        return pd.DataFrame(columns=CHAMPION_COLUMNS)
    import mlflow

    # as `use_tracking` does: a tracking server that stops answering fails within these bounds
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(settings.mlflow.request_timeout_seconds)
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(settings.mlflow.request_max_retries)
    uri = settings.mlflow_tracking_uri
    rows = []
    try:
        client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
        for model in client.search_registered_models():
            version = model.aliases.get("champion")
            if version is None:
                continue
            found = client.get_model_version(model.name, str(version))
            metrics = client.get_run(found.run_id).data.metrics if found.run_id else {}
            tests = sorted(
                (k.removeprefix("test_"), v) for k, v in metrics.items() if k.startswith("test_")
            )
            rows.append(
                {
                    "task": model.name,
                    "version": int(version),
                    "run_id": found.run_id,
                    "registered_at": pd.Timestamp(
                        int(found.creation_timestamp), unit="ms", tz="UTC"
                    ),
                    "feature_service": tag.read(found.tags, tag.FEATURES, ""),
                    "test_metrics": ", ".join(f"{k} {v:.4g}" for k, v in tests),
                }
            )
    except Exception as exc:  # any failure (server down, a corrupt file): one line on the page
        log.exception("reading the champions from the registry failed")
        line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        password = settings.postgres.password.get_secret_value()
        for form in {password, quote(password, safe=""), quote_plus(password)} - {""}:
            line = line.replace(form, "***")  # as written, and as a URL holds it
        where = uri.split("@")[-1].split("?")[0]  # no credentials, no connection options
        return f"Registry not readable: MLflow at {where}: {line}"
    return pd.DataFrame(rows, columns=CHAMPION_COLUMNS).sort_values("task", ignore_index=True)


def sections(settings: Settings, warehouse: Warehouse) -> list[Section]:
    """Every section, in page order, from the warehouse and the registry."""
    read = partial(_read, warehouse)
    performance = read(
        "content_performance_metrics",
        ["post_id", "user_id", "created_at", "category", "post_type", "reach", "interactions"]
        + ["engagement_rate", "share_rate"],
    )
    users = read("users", ["user_id", "username"])
    return [
        kpi_section(read("kpi_daily"), read("campaign_kpis")),
        content_section(performance, users),
        trends_section(
            read("hashtag_trends"), read("hashtag_daily", ["hashtag_id", "tag", "date", "usage"])
        ),
        segments_section(read("segment_summary")),
        influencers_section(read("influencer_network")),
        hours_section(performance),
        *(Section(*part) for part in lifecycle_parts(read)),
        experiments_section(read("content_performance_metrics", EXPERIMENT_COLUMNS), warehouse),
        sentiment_section(settings, read),
        Section(**vars(platforms_section(*_platform_frames(warehouse), settings.platforms))),
        health_section(drift_checks(warehouse), champions(settings)),
    ]


def sentiment_section(settings: Settings, read) -> Section:
    """Audience sentiment (analytics/sentiment.py has the numbers)."""
    comments = read("comments", ["comment_id", "post_id", "created_at", "text"])
    posts = read("content_posts", ["post_id", "user_id", "caption"])
    scorer = (
        None if comments is None else sentiment.champion_scorer(settings, not no_registry(settings))
    )
    return Section(
        "sentiment", "Audience sentiment", *sentiment.section_parts(comments, posts, scorer)
    )


# -- the page ------------------------------------------------------------------------------

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>smap dashboard</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1200px; padding: 1rem 2rem;
       color: #212121; }}
nav a {{ margin-right: 1rem; }}
section {{ margin: 2.5rem 0; }}
p.note {{ color: #424242; max-width: 60rem; }}
div.table {{ overflow-x: auto; }}
table {{ border-collapse: collapse; font-size: .9rem; }}
th, td {{ padding: .3rem .6rem; border-bottom: 1px solid #e0e0e0; text-align: left; }}
th {{ background: #fafafa; }}
.empty {{ color: #757575; font-style: italic; }}
</style>
<script type="text/javascript">{plotlyjs}</script>
</head>
<body>
<h1>smap dashboard</h1>
<p>Profile <b>{profile}</b>, data through {through}, made {made} UTC.
Exports for BI tools: <a href="exports/">exports/</a> (CSV with a UTF-8 BOM, and Parquet).</p>
<nav>{nav}</nav>
{body}
</body></html>
"""


def _shown_html(frame: pd.DataFrame) -> str:
    out = frame.copy()
    for col in out.columns:
        if isinstance(out[col].dtype, pd.DatetimeTZDtype):
            out[col] = out[col].dt.strftime("%Y-%m-%d %H:%M")
        elif pd.api.types.is_datetime64_dtype(out[col].dtype):
            out[col] = out[col].dt.strftime("%Y-%m-%d")
    return out.to_html(
        index=False, border=0, na_rep="–", float_format=lambda v: f"{v:,.4g}", escape=True
    )


def section_html(section: Section) -> str:
    """One section: its title, its note, its charts and its table."""
    parts = [f'<section id="{section.key}"><h2>{html.escape(section.title)}</h2>']
    css = "note empty" if section.empty else "note"
    parts.append(f'<p class="{css}">{html.escape(section.note)}</p>')
    for i, figure in enumerate(section.figures):
        parts.append(
            figure.to_html(
                full_html=False,
                include_plotlyjs=False,
                div_id=f"{section.key}-{i}",
                config={"displaylogo": False, "responsive": True},
            )
        )
    if section.shown is not None and not section.shown.empty:
        parts.append(f'<div class="table">{_shown_html(section.shown)}</div>')
    parts.append("</section>")
    return "\n".join(parts)


def page_html(settings: Settings, parts: list[Section], through: str, made: datetime) -> str:
    """The whole page, plotly.js inlined once in the head."""
    from plotly.offline import get_plotlyjs

    nav = "".join(f'<a href="#{s.key}">{html.escape(s.title)}</a>' for s in parts)
    return PAGE.format(
        plotlyjs=get_plotlyjs(),
        profile=html.escape(settings.profile),
        through=html.escape(through),
        made=f"{made:%Y-%m-%d %H:%M}",
        nav=nav,
        body="\n".join(section_html(s) for s in parts),
    )


def write_report(
    settings: Settings, out: Path | None = None, now: datetime | None = None
) -> Report:
    """Write `<out>/index.html` and `<out>/exports/` (default out: the reports folder's
    `dashboard`); returns where, with the sections and the exports."""
    folder = Path(out) if out is not None else settings.reports_dir / "dashboard"
    warehouse = open_warehouse(settings)
    parts = sections(settings, warehouse)
    exports = [
        write_export(folder / "exports", name, frame)
        for section in parts
        for name, frame in section.exports.items()
    ]
    posts = _read(warehouse, "content_posts", ["created_at"])
    through = (
        f"{posts.created_at.max():%Y-%m-%d %H:%M} UTC"
        if posts is not None and len(posts)
        else "– (no posts yet)"
    )
    page = page_html(settings, parts, through, now or datetime.now(UTC))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "index.html"
    staged = folder / ".index.html.tmp"
    staged.write_text(page, encoding="utf-8")
    os.replace(staged, path)  # a page being served is never half written
    return Report(path, folder, parts, exports)


# -- serving the folder ----------------------------------------------------------------------


class ReportError(SmapError):
    """The dashboard cannot be served (no page yet, the port is taken)."""


class FolderHandler(SimpleHTTPRequestHandler):
    """Files of one folder only: a path that resolves outside it (a symlink, `..`) is 404."""

    def send_head(self):
        base = Path(self.directory).resolve()
        if not Path(self.translate_path(self.path)).resolve().is_relative_to(base):
            self.send_error(HTTPStatus.NOT_FOUND)
            return None
        return super().send_head()

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        super().end_headers()

    def log_message(self, format: str, *args) -> None:
        log.info("%s " + format, self.address_string(), *args)


def make_server(folder: Path, port: int = 8089, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """An HTTP server over `folder` on loopback (port 0: any free port), not yet serving."""
    if not (Path(folder) / "index.html").is_file():
        raise ReportError(f"--out: {folder} has no index.html (run `smap report` first)")
    handler = partial(FolderHandler, directory=str(Path(folder).resolve()))
    try:
        return ThreadingHTTPServer((host, port), handler)
    except OSError as exc:
        raise ReportError(f"--port: cannot serve on {host}:{port}: {exc.strerror}") from exc


def serve(folder: Path, port: int = 8089, ready: Callable[[str], None] | None = None) -> None:
    """Serve `folder` on 127.0.0.1 until Ctrl-C."""
    with make_server(folder, port) as server:
        if ready:
            ready(f"http://127.0.0.1:{server.server_port}/")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
