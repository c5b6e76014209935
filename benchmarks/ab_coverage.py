"""Content experiments over many seeds: interval coverage, A/A false positives, CUPED.

For each seed the simulator generates a whole platform (`--preset`, quick by default: 0.2 s)
with the planted experiments of ingestion/simulate_experiments.py, and `analytics.ab.analyse`
reads each experiment from the posts (engagement rate = interactions / reach, as the ETL
computes it for simulated data). Per experiment it prints:
- how often the 95% interval of the relative lift covers the planted lift, plain and CUPED;
- how often each test rejects at alpha = 0.05: the fixed-horizon Welch t-test read once at the
  end, the same t-test read every day (peeking, the baseline the sequential test must beat)
  and the mSPRT read every day (always-valid). On the A/A experiment a rejection is a false
  positive;
- the mean width of the CUPED interval over the plain one.

    .venv/bin/python benchmarks/ab_coverage.py --seeds 100 --json ab.json
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table
from statsmodels.stats.weightstats import ttest_ind  # type: ignore[import-untyped]

from analytics.ab import analyse
from ingestion.simulate_experiments import PLANTED
from ingestion.simulator import PRESETS, simulate

ALPHA = 0.05


def peeked_t_rejects(posts: pd.DataFrame, control: str) -> bool:
    """Whether Welch's t-test, read at the end of every day, ever falls below ALPHA."""
    start = posts.created_at.min()
    day = ((posts.created_at - start) / pd.Timedelta(days=1)).to_numpy().astype(int)
    y, is_a = posts.engagement_rate.to_numpy(), (posts.variant == control).to_numpy()
    for look in np.unique(day):
        seen = day <= look
        a, b = y[seen & is_a], y[seen & ~is_a]
        if min(len(a), len(b)) >= 2 and ttest_ind(b, a, usevar="unequal")[1] < ALPHA:
            return True
    return False


def one_seed(preset: str, seed: int) -> list[dict]:
    tables = simulate(preset, seed, experiments=True)
    posts = tables["content_posts"]
    interactions = posts.likes + posts.comments + posts.shares + posts.saves
    posts = posts.assign(engagement_rate=interactions / posts.reach)
    rows = []
    for spec in PLANTED:
        report = analyse(posts, spec.name, alpha=ALPHA)
        c = report.comparisons[0]
        mine = posts[posts.experiment == spec.name]
        rows.append(
            {
                "seed": seed,
                "experiment": spec.name,
                "true_lift": spec.true_lift,
                "posts": int(len(mine)),
                "plain_covers": c.plain.lift_low <= spec.true_lift <= c.plain.lift_high,
                "cuped_covers": c.cuped.lift_low <= spec.true_lift <= c.cuped.lift_high,
                "fixed_rejects": c.plain.p_value < ALPHA,
                "peeked_rejects": peeked_t_rejects(mine, report.control),
                "sequential_rejects": c.sequential_p < ALPHA,
                "width_ratio": c.width_ratio,
                "looks": c.looks,
            }
        )
    return rows


def summarise(frame: pd.DataFrame) -> list[dict]:
    out = []
    for name, group in frame.groupby("experiment", sort=False):
        out.append(
            {
                "experiment": name,
                "true_lift": float(group.true_lift.iloc[0]),
                "seeds": len(group),
                "mean_posts": float(group.posts.mean()),
                "mean_looks": float(group.looks.mean()),
                "coverage_plain": float(group.plain_covers.mean()),
                "coverage_cuped": float(group.cuped_covers.mean()),
                "reject_fixed_once": float(group.fixed_rejects.mean()),
                "reject_t_peeked_daily": float(group.peeked_rejects.mean()),
                "reject_msprt_daily": float(group.sequential_rejects.mean()),
                "cuped_width_ratio": float(group.width_ratio.mean()),
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--preset", default="quick", choices=list(PRESETS))
    parser.add_argument("--json", dest="json_path", default=None, help="Also write the figures.")
    args = parser.parse_args(argv)
    console = Console(width=max(Console().width, 120))
    rows: list[dict] = []
    with console.status("simulating") as status:
        for seed in range(args.seeds):
            status.update(f"seed {seed + 1}/{args.seeds}")
            rows.extend(one_seed(args.preset, seed))
    summary = summarise(pd.DataFrame(rows))
    table = Table(title=f"content experiments, {args.seeds} seeds of preset {args.preset}")
    for column in ("experiment", "true lift", "posts", "looks", "cover plain", "cover CUPED"):
        table.add_column(column, justify="right")
    for column in ("t once", "t daily", "mSPRT daily", "CUPED width"):
        table.add_column(column, justify="right")
    for s in summary:
        table.add_row(
            s["experiment"],
            f"{s['true_lift']:+.0%}",
            f"{s['mean_posts']:.0f}",
            f"{s['mean_looks']:.0f}",
            f"{s['coverage_plain']:.0%}",
            f"{s['coverage_cuped']:.0%}",
            f"{s['reject_fixed_once']:.0%}",
            f"{s['reject_t_peeked_daily']:.0%}",
            f"{s['reject_msprt_daily']:.0%}",
            f"{s['cuped_width_ratio']:.2f}",
        )
    console.print(table)
    console.print("reject columns: share of seeds where the test says p < 0.05 (A/A: false)")
    if args.json_path:
        figures = {"preset": args.preset, "seeds": args.seeds, "alpha": ALPHA, "rows": summary}
        with open(args.json_path, "w") as f:
            json.dump(figures, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
