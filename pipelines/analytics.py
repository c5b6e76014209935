"""The analytics flow: every analysis over the warehouse in order, and the CLI's tables."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pandas as pd
from rich.table import Table

from analytics.alerts import detect
from analytics.cascades import trace_cascades
from analytics.churn_risk import champion_churn
from analytics.influence import rank_influencers, top_influencers
from analytics.kpis import build_kpis
from analytics.lifecycle import track_lifecycles
from analytics.quality import score_quality
from analytics.report import write_report
from analytics.segments import profile_segments
from analytics.trends import score_trends, score_velocity
from configs.settings import Settings
from ingestion.warehouse import open_warehouse
from pipelines.progress import steps

SKIPPED_SEGMENTS = "skipped: no user segments yet (run `smap segment`)"


def run(settings: Settings, now: datetime | None = None) -> dict[str, object]:
    """Influencers, hashtag trends, post velocity, alerts, KPIs, segment profiles, engagement
    quality, share cascades and lifecycles; returns rows written per table (alerts: new
    ones), or why a table was skipped."""
    warehouse = open_warehouse(settings)
    config = settings.analytics
    now = now or datetime.now(UTC)
    stages = {
        "influencer_network": lambda: rank_influencers(warehouse, now),
        "hashtag_trends": lambda: score_trends(warehouse),
        "post_velocity": lambda: score_velocity(warehouse),
        "alerts (new)": lambda: detect(warehouse, config, now),
        "campaign and daily KPIs": lambda: build_kpis(warehouse, config.value_per_engagement),
        "segment_summary": lambda: profile_segments(warehouse),
        "engagement quality": lambda: score_quality(warehouse),
        "share cascades": lambda: trace_cascades(warehouse),
        "lifecycles": lambda: track_lifecycles(warehouse, champion_churn(settings)),
    }
    done: dict[str, object] = {}
    # the tables are read and written with no import or ETL changing them in between
    with warehouse.writing(), steps("analytics", len(stages)) as tick:
        for name, stage in stages.items():
            result = stage()
            if isinstance(result, dict):
                done.update(result)
            else:
                done[name] = SKIPPED_SEGMENTS if result is None else result
            tick(name)
    return done


def influencers(settings: Settings, category: str | None, top: int) -> pd.DataFrame:
    """The `top` best-ranked accounts (of `category`) from the last `smap analytics run`."""
    return top_influencers(open_warehouse(settings), category, top)


def influencer_table(frame: pd.DataFrame, title: str) -> Table:
    """The `smap analytics influencers` table."""
    table = Table(title=title)
    for col in ("rank", "id", "user", "category", "followers", "engagement", "pagerank"):
        table.add_column(col, justify="left" if col in ("user", "category") else "right")
    for row in frame.itertuples():
        table.add_row(
            str(row.rank),
            str(row.user_id),
            row.username or "-",
            row.category or "-",
            f"{row.followers:,}",
            f"{row.engagement_received:,}",
            f"{row.pagerank:.4f}",
        )
    return table


def alert_table(frame: pd.DataFrame, title: str) -> Table:
    """The `smap alerts` table."""
    table = Table(title=title)
    for col in ("day", "account", "metric", "direction", "value", "median", "z"):
        table.add_column(
            col, justify="right" if col in ("value", "median", "z") else "left", no_wrap=True
        )
    for row in frame.itertuples():
        rate = row.metric == "engagement_rate"
        table.add_row(
            f"{row.date:%Y-%m-%d}",
            str(row.user_id),
            "eng. rate" if rate else row.metric,
            row.direction,
            f"{row.value:.2%}" if rate else f"{row.value:,.0f}",
            f"{row.median:.2%}" if rate else f"{row.median:,.1f}",
            f"{row.robust_z:+.1f}",
        )
    return table


def fill_dashboard(settings: Settings) -> dict[str, object]:
    """What the dashboard reads, in the order its inputs need: the user segments (the
    clustering model, gated), then the analytics tables and the segments' profiles; then the
    page. Returns the page, its sections still empty (each naming the command that fills it)
    and the seconds it took."""
    from training.segmentation import segment  # MLflow: not for `smap --help`

    t0 = time.perf_counter()
    segmented = segment(settings)
    computed = run(settings)
    written = write_report(settings)
    return {
        "page": str(written.path),
        "segments": segmented.segments_written,
        "analytics": computed,
        "empty": {s.title: s.note for s in written.sections if s.empty},
        "seconds": round(time.perf_counter() - t0, 1),
    }
