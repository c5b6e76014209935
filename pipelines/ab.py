"""`smap ab`: a content experiment's report and the posts an experiment needs, as tables."""

from __future__ import annotations

import json
import math
from types import ModuleType
from typing import TYPE_CHECKING

from rich.table import Table

from configs.settings import Settings
from ingestion.warehouse import open_warehouse

if TYPE_CHECKING:
    from analytics import ab


def _statistics() -> ModuleType:
    """analytics.ab, imported when a command needs it: it loads scipy and statsmodels."""
    from analytics import ab

    return ab


def report(settings: Settings, experiment: str, alpha: float) -> ab.ABReport:
    return _statistics().report(open_warehouse(settings), experiment, alpha)


def plan(
    baseline_rate: float, lift: float, power: float, alpha: float, sd: float | None
) -> ab.Plan:
    return _statistics().plan(baseline_rate, lift, power, alpha, sd)


def _finite(value):
    """Strict JSON: a non-finite number (an unbounded interval) becomes null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def as_json(data: dict | list) -> str:
    return json.dumps(_finite(data), indent=2, allow_nan=False)


def _pct(value: float) -> str:
    return f"{value:+.1%}" if math.isfinite(value) else "unbounded"


def _rate(value: float) -> str:
    return f"{value:.4%}" if math.isfinite(value) else "unbounded"


def report_tables(result: ab.ABReport) -> list[Table]:
    """Per variant, then per comparison with the control: plain, CUPED and sequential."""
    level = f"{result.level:.0%}"
    variants = Table(
        title=f"experiment {result.experiment}: {result.start:%Y-%m-%d} to {result.end:%Y-%m-%d}"
    )
    for column in ("variant", "posts", "reach", "engagement rate", f"{level} interval", "sd"):
        variants.add_column(column, justify="right")
    for v in result.variants:
        name = v.variant + (" (control)" if v.variant == result.control else "")
        interval = f"{_rate(v.rate_low)} to {_rate(v.rate_high)}"
        cells = (name, f"{v.posts:,}", f"{v.reach:,}", _rate(v.rate), interval)
        variants.add_row(*cells, f"{v.rate_sd:.4f}")
    tables = [variants]
    for c in result.comparisons:
        table = Table(title=f"{c.variant} vs {result.control}")
        for column in ("estimate", "difference", f"{level} interval", "lift", "lift interval"):
            table.add_column(column, justify="right")
        table.add_column("p-value", justify="right")
        for label, e in (("plain (Welch)", c.plain), ("CUPED", c.cuped)):
            table.add_row(
                label,
                _rate(e.diff),
                f"{_rate(e.diff_low)} to {_rate(e.diff_high)}",
                _pct(e.lift),
                f"{_pct(e.lift_low)} to {_pct(e.lift_high)}",
                f"{e.p_value:.4f}",
            )
        table.add_row(
            f"mSPRT ({c.looks} daily looks)",
            "",
            f"{_rate(c.sequential_low)} to {_rate(c.sequential_high)}",
            "",
            "",
            f"{c.sequential_p:.4f}",
        )
        table.caption = (
            f"CUPED (theta {result.theta:.3f}, pre-experiment rate known for "
            f"{result.covariate_share:.0%} of posts): interval width x{c.width_ratio:.2f} "
            "of the plain one. The mSPRT p-value and interval stay valid at every look."
        )
        tables.append(table)
    return tables


def plan_table(p: ab.Plan) -> Table:
    table = Table(title="posts needed per variant", show_header=False)
    table.add_column("", style="bold")
    table.add_column("", justify="right")
    rows = {
        "baseline rate": f"{p.baseline_rate:.4%}",
        "lift (relative)": _pct(p.lift),
        "target rate": f"{p.target_rate:.4%}",
        f"effect size ({p.effect})": f"{p.effect_size:.4f}",
        "power / alpha (two-sided)": f"{p.power:.2f} / {p.alpha:.3f}",
        "posts per variant": f"{p.posts_per_variant:,}",
    }
    for key, value in rows.items():
        table.add_row(key, value)
    return table
