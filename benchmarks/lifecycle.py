"""Engagement quality, share cascades and lifecycles against what the simulator planted.

One run, one table: for each figure, what smap's analysis finds next to the simulator's truth
(the planted bot bursts, the planted share delays, the comment delay) and the time each
analysis took. The stages' churn label rates and transition rates are printed as found (the
simulator plants hazards, not stages). It is a benchmark, not a test: nothing asserts here;
`tests/unit/test_lifecycle_analytics.py` checks the same on the quick preset.

    uv run python benchmarks/lifecycle.py --preset small --json .smap/bench/lifecycle.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from analytics.cascades import cascade_starters, organic_shares, post_cascades
from analytics.lifecycle import half_lives, user_stages
from analytics.quality import account_quality, post_quality
from ingestion.simulate_cascades import SHARE_DELAY_HOURS
from ingestion.simulator import simulate

COMMENT_DELAY_HOURS = 0.6 * 24  # the simulator's mean comment delay (docs/simulator.md §2.9)


def measure(preset: str, seed: int) -> list[tuple[str, str, str]]:
    """(figure, found, planted or '-') rows."""
    p = simulate(preset, seed)
    posts, likes, comments, shares = (
        p["content_posts"],
        p["likes"],
        p["comments"],
        p["share_events"],
    )
    rows = [("posts / share events", f"{len(posts):,} / {len(shares):,}", "-")]
    t = time.perf_counter()
    scored = post_quality(posts, likes, comments, shares)
    account_quality(scored)
    rows.append(("quality seconds", f"{time.perf_counter() - t:.1f}", "-"))
    flagged = scored[scored.bot_engagements > 0].set_index("post_id").bot_engagements
    truth = p["truth_bot_bursts"].set_index("post_id").bot_shares
    both = len(set(flagged.index) & set(truth.index))
    rows.append(("bot posts flagged (both)", f"{len(flagged)} ({both})", f"{len(truth)}"))
    rows.append(("bot engagements flagged", f"{flagged.sum():,}", f"{truth.sum():,}"))
    t = time.perf_counter()
    organic = organic_shares(shares, posts, likes, comments)
    cascades = post_cascades(posts, organic)
    cascade_starters(posts, cascades, organic)
    rows.append(("cascades seconds", f"{time.perf_counter() - t:.1f}", "-"))
    rows.append(
        (
            "cascades, deepest, depth >= 2",
            f"{len(cascades):,}, {cascades.depth.max()}, {(cascades.depth >= 2).mean():.1%}",
            "-",
        )
    )
    rows.append(
        (
            "reach through shares (shared posts, all)",
            f"{cascades.viral_reach.sum() / cascades.reach.sum():.1%}, "
            f"{cascades.viral_reach.sum() / posts.reach.sum():.1%}",
            "-",
        )
    )
    t = time.perf_counter()
    first = half_lives(posts, comments, organic[organic.depth == 1])
    rows.append(("half-life seconds", f"{time.perf_counter() - t:.1f}", "-"))
    found = first.set_index(["post_type", "kind"]).half_life_hours
    for post_type, mean in SHARE_DELAY_HOURS.items():
        rows.append(
            (
                f"{post_type}: first-share half-life (h)",
                f"{found[(post_type, 'share')]:.2f}",
                f"{np.log(2) * mean:.2f}",
            )
        )
        rows.append(
            (
                f"{post_type}: comment half-life (h)",
                f"{found[(post_type, 'comment')]:.2f}",
                f"{np.log(2) * COMMENT_DELAY_HOURS:.2f}",
            )
        )
    activity = pd.concat(
        [frame[["user_id", "created_at"]] for frame in (posts, likes, comments)], ignore_index=True
    )
    activity["date"] = activity.created_at.dt.tz_localize(None).dt.normalize()
    t = time.perf_counter()
    _, transitions, summary = user_stages(p["users"], activity.drop_duplicates(["user_id", "date"]))
    rows.append(("stages seconds", f"{time.perf_counter() - t:.1f}", "-"))
    for row in summary.itertuples():
        rows.append(
            (f"{row.stage}: users, churn label rate", f"{row.users}, {row.churn_rate:.3f}", "-")
        )
    rate = transitions.set_index(["from_stage", "to_stage"]).rate
    for a, b in (("active", "active"), ("at-risk", "dormant"), ("at-risk", "active")):
        rows.append((f"{a} -> {b} per period", f"{rate[(a, b)]:.3f}", "-"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    rows = measure(args.preset, args.seed)
    table = Table(title=f"lifecycle analyses, preset {args.preset}, seed {args.seed}")
    for column in ("figure", "smap found", "simulator planted"):
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    Console().print(table)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        figures = [{"figure": f, "found": v, "planted": t} for f, v, t in rows]
        args.json.write_text(
            json.dumps({"preset": args.preset, "seed": args.seed, "rows": figures})
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
