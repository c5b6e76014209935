"""Model quality on generated exports shaped like real ones: the champion against the plain
linear model and the naive baseline, through the real CLI.

Each export goes through what a user runs, in its own SMAP_DATA_DIR and child processes:
`smap ingest csv` (with a mapping), `smap ingest`, `smap features apply`, `smap features
materialize`, `smap train engagement --trials N`, `smap evaluate engagement --version 1
--json`: the trained model (version 1 of a fresh data directory) is reported whether the gate
crowned it or not, with the gate's decision beside it.

- `page`: one brand page, about 500 posts over 18 months, with reach and page likes
  (engagement = interactions / reach).
- `few_accounts`: six accounts of very different sizes, several thousand posts over a year,
  no reach and no audience (`engagement_denominator: none`: engagement = log(1 + interactions)).
- `small` (only when asked for with `--exports`): the simulator's `small` preset, the one
  export with an oracle.

The generating process is meant to look like real pages, not to flatter smap: heavy-tailed
reach and interactions (log-normal noise, a rare viral multiplier), a daily and a weekly
rhythm in both when people post and how posts do, post-type effects, an account level that
drifts slowly (a random walk, plus a step for one account), paid boosts that buy reach but
not engagement, captions of varied length and hashtag counts, and counts drawn as Poisson.
Nothing is tuned to what smap's features can see; everything is seeded (`--seed`).

    uv run python benchmarks/model_quality.py --trials 10 --json .smap/bench/model_quality.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from configs.settings import telemetry_env

out = Console() if sys.stdout.isatty() else Console(width=160)
log = Console(stderr=True)

TYPES = ("Photo", "Video", "Link", "Album", "Status")
TYPE_SHARE = (0.45, 0.2, 0.15, 0.1, 0.1)  # how often each type is posted
# multiplicative effect of a post type on its engagement (per reach, or per account)
TYPE_EFFECT = {"Photo": 1.0, "Video": 1.5, "Link": 0.45, "Album": 1.2, "Status": 0.7}
# when posts go out (hour of day) and how an hour does: an evening peak, a dead night
POST_HOURS = np.array([1, 0, 0, 0, 0, 1, 3, 6, 9, 10, 9, 8, 9, 8, 7, 7, 7, 8, 9, 9, 8, 6, 4, 2])
HOUR_EFFECT = 1 + 0.35 * np.sin((np.arange(24) - 13) / 24 * 2 * np.pi)
WEEKDAY_EFFECT = np.array([0.95, 1.0, 1.0, 1.0, 0.95, 1.15, 1.2])  # Monday first
WEEKDAY_POSTS = np.array([1.0, 1.1, 1.1, 1.0, 1.0, 0.6, 0.5])
WORDS = (
    "new launch today offer team behind scenes customer story tips week summer winter "
    "sale coffee recipe event live thanks community update guide question poll"
).split()
TAGS = ("#news", "#tips", "#sale", "#team", "#event", "#howto", "#behindthescenes", "#weekend")


def _post_times(rng, start: pd.Timestamp, days: int, per_day: float) -> list[pd.Timestamp]:
    """Post times with the weekly and daily rhythm of a social-media team."""
    times = []
    hours = POST_HOURS / POST_HOURS.sum()
    for day in range(days):
        when = start + pd.Timedelta(days=day)
        for _ in range(rng.poisson(per_day * WEEKDAY_POSTS[when.weekday()])):
            minute = int(rng.choice(24, p=hours)) * 60 + int(rng.integers(0, 60))
            times.append(when + pd.Timedelta(minutes=minute))
    return sorted(times)


def _caption(rng) -> tuple[str, float]:
    """A caption and its (small, noisy) effect: a question or a few hashtags help a little,
    a very long text hurts a little."""
    words = rng.choice(WORDS, int(rng.lognormal(2.3, 0.6)) + 1)
    tags = rng.choice(TAGS, int(rng.poisson(1.2)), replace=False)
    question = rng.random() < 0.15
    text = " ".join(words) + ("?" if question else "") + "".join(f" {t}" for t in tags)
    effect = (1.1 if question else 1.0) * (1 + 0.04 * min(len(tags), 3)) / (1 + len(words) / 120)
    return text, effect


def _drift(rng, days: int, sigma: float) -> np.ndarray:
    """An account's slowly drifting level (log scale random walk, mean-reverting a little)."""
    level = np.zeros(days)
    for day in range(1, days):
        level[day] = 0.995 * level[day - 1] + rng.normal(0, sigma)
    return level


def _counts(rng, expected: float) -> tuple[int, int, int]:
    """Likes, comments, shares around `expected` interactions, each Poisson with its own share."""
    share = rng.dirichlet([16, 2.5, 1.5])
    return tuple(int(rng.poisson(expected * s)) for s in share)  # type: ignore[return-value]


def page_export(rng, folder: Path) -> tuple[Path, Path]:
    """One brand page, ~500 posts over ~18 months, with reach and page likes."""
    start, days = pd.Timestamp("2025-01-06"), 540
    level = _drift(rng, days, 0.02)
    likes = 8_000 * np.exp(np.cumsum(rng.normal(0.0012, 0.004, days)))  # page likes grow
    rows = []
    for when in _post_times(rng, start, days, per_day=1.05):
        day = (when - start).days
        kind = str(rng.choice(TYPES, p=TYPE_SHARE))
        text, text_effect = _caption(rng)
        paid = rng.random() < 0.08
        viral = rng.pareto(2.5) + 1 if rng.random() < 0.03 else 1.0
        organic = 0.12 * (1.6 if kind == "Video" else 1.0) * HOUR_EFFECT[when.hour]
        reach = likes[day] * organic * rng.lognormal(0, 0.45) * viral * (4 if paid else 1)
        rate = (
            0.045
            * TYPE_EFFECT[kind]
            * HOUR_EFFECT[when.hour]
            * WEEKDAY_EFFECT[when.weekday()]
            * text_effect
            * np.exp(level[day])
            * (0.6 if paid else 1.0)  # bought reach engages less
            * min(viral, 3.0) ** 0.3
            * rng.lognormal(0, 0.5)
        )
        reactions, comments, shares = _counts(rng, reach * min(rate, 0.5))
        rows.append(
            {
                "Date": when.strftime("%Y-%m-%d %H:%M"),
                "Type": kind,
                "Message": text,
                "Page likes": int(likes[day]),
                "Reach": max(int(reach), reactions + 1),
                "Reactions": reactions,
                "Comments": comments,
                "Shares": shares,
                "Paid": "Yes" if paid else "No",
            }
        )
    path, mapping = folder / "page.csv", folder / "page.yaml"
    pd.DataFrame(rows).to_csv(path, index=False)
    mapping.write_text(
        "columns: {timestamp: Date, type: Type, text: Message, followers: Page likes,"
        " reach: Reach, likes: Reactions, comments: Comments, shares: Shares, paid: Paid}\n"
        "engagement_denominator: reach\ndefault_category: brand\ndefault_account: acme_brand\n"
    )
    return path, mapping


def few_accounts_export(rng, folder: Path) -> tuple[Path, Path]:
    """Six accounts of very different sizes and habits, a year of posts, no reach."""
    start, days = pd.Timestamp("2025-03-03"), 365
    rows = []
    for account in range(6):
        size = float(np.exp(rng.uniform(np.log(20), np.log(2_000))))  # interactions per post
        per_day = float(rng.choice([0.4, 1.0, 2.0, 3.5]))
        effects = {k: v * rng.lognormal(0, 0.25) for k, v in TYPE_EFFECT.items()}  # own audience
        level = _drift(rng, days, 0.025)
        if account == 0:  # a campaign that lifts one account for good
            level[days // 2 :] += 0.5
        for when in _post_times(rng, start, days, per_day):
            day = (when - start).days
            kind = str(rng.choice(TYPES, p=TYPE_SHARE))
            text, text_effect = _caption(rng)
            viral = rng.pareto(2.0) + 1 if rng.random() < 0.02 else 1.0
            expected = (
                size
                * effects[kind]
                * HOUR_EFFECT[when.hour]
                * WEEKDAY_EFFECT[when.weekday()]
                * text_effect
                * np.exp(level[day])
                * viral
                * rng.lognormal(0, 0.55)
            )
            likes, comments, shares = _counts(rng, expected)
            rows.append(
                {
                    "Account": f"shop_{account}",
                    "Posted": when.strftime("%d/%m/%Y %H:%M"),
                    "Format": kind,
                    "Caption": text,
                    "Likes": likes or "",  # exports leave zero counts blank
                    "Comments": comments or "",
                    "Shares": shares or "",
                }
            )
    path, mapping = folder / "few_accounts.csv", folder / "few_accounts.yaml"
    pd.DataFrame(rows).sample(frac=1, random_state=0).to_csv(path, index=False)  # unsorted
    mapping.write_text(
        "columns: {account: Account, timestamp: Posted, type: Format, text: Caption,"
        " likes: Likes, comments: Comments, shares: Shares}\n"
        'timestamp_format: "%d/%m/%Y %H:%M"\n'
        "engagement_denominator: none\ndefault_category: shop\n"
    )
    return path, mapping


EXPORTS = {"page": page_export, "few_accounts": few_accounts_export}
PRESET_EXPORTS = ("small",)  # the simulator's presets, run when asked for


@dataclass
class Result:
    export: str
    rows: int  # rows in the export (a preset: rows of its engagement training set)
    metric: str
    champion: float | None  # the trained version, crowned or not (see `gate`)
    gate: str | None  # the gate's decision on it: first_champion, below_baseline, below_linear
    naive: float | None
    linear_name: str | None
    linear: float | None
    oracle: float | None
    trials: int
    test_rows: int
    seconds: float
    error: str | None = None

    @property
    def champion_minus_linear(self) -> float | None:
        return _diff(self.champion, self.linear)

    @property
    def champion_minus_naive(self) -> float | None:
        return _diff(self.champion, self.naive)


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def smap(args: list[str], data_dir: Path) -> str:
    """One `smap` command in a child process with its own data dir; stdout, or an error with
    the command's last line of stderr."""
    env = {**os.environ, **telemetry_env(), "SMAP_DATA_DIR": str(data_dir)}
    done = subprocess.run(
        [sys.executable, "-m", "pipelines", *args], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"smap {' '.join(args)}: exit {done.returncode}: {last}")
    return done.stdout


def run_export(name: str, args: argparse.Namespace, root: Path) -> Result:
    """Generate (or simulate) one export and take it through the CLI; figures from evaluate."""
    data_dir, begun = root / name / "smap", time.perf_counter()
    (root / name).mkdir(parents=True)
    rows = 0
    try:
        if name in EXPORTS:
            rng = np.random.default_rng([args.seed, list(EXPORTS).index(name)])
            path, mapping = EXPORTS[name](rng, root / name)
            rows = len(pd.read_csv(path))
            log.print(f"{name}: {rows} rows generated; importing")
            smap(["ingest", "csv", str(path), "--mapping", str(mapping)], data_dir)
        else:
            log.print(f"{name}: simulating preset {name}")
            smap(["simulate", "--preset", name, "--seed", str(args.seed)], data_dir)
        smap(["ingest"], data_dir)
        smap(["features", "apply"], data_dir)
        smap(["features", "materialize"], data_dir)
        log.print(f"{name}: training engagement ({args.trials} trials)")
        smap(["train", "engagement", "--trials", str(args.trials)], data_dir)
        # a fresh data directory: the run registers version 1, crowned or refused
        report = json.loads(smap(["evaluate", "engagement", "--version", "1", "--json"], data_dir))
    except RuntimeError as exc:
        log.print(f"{name}: {exc}")
        return Result(name, rows, "r2", *[None] * 6, args.trials, 0, 0.0, str(exc))
    return Result(
        name,
        rows or sum(report["split"]["rows"].values()),  # a preset: the training set's rows
        report["metric"],
        report["version"]["value"],
        (report["version"]["gate"] or {}).get("decision"),
        report["baseline_value"],
        report["linear_name"],
        report["linear_value"],
        report["oracle_value"],
        args.trials,
        report["test_rows"],
        round(time.perf_counter() - begun, 1),
    )


def fmt(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.4f}"


def render(results: list[Result]) -> None:
    table = Table(title="engagement on generated exports (test part of each)")
    heads = ("export", "rows", "metric", "champion", "gate", "naive", "plain linear", "oracle")
    for head in (*heads, "champion-linear", "champion-naive", "trials", "test rows", "s"):
        table.add_column(head, justify="left" if head in ("export", "metric", "gate") else "right")
    for r in results:
        table.add_row(
            r.export,
            str(r.rows),
            r.metric,
            fmt(r.champion),
            r.gate or "—",
            fmt(r.naive),
            f"{fmt(r.linear)} ({r.linear_name})" if r.linear_name else fmt(r.linear),
            fmt(r.oracle),
            fmt(r.champion_minus_linear),
            fmt(r.champion_minus_naive),
            str(r.trials),
            str(r.test_rows),
            f"{r.seconds:.0f}",
        )
    out.print(table)
    for r in results:
        if r.error:
            out.print(f"{r.export}: {r.error}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10, help="Optuna trials per export")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--exports",
        default=",".join(EXPORTS),
        help=f"comma-separated: {', '.join([*EXPORTS, *PRESET_EXPORTS])}",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", type=Path, help="work here and keep it (default: a temp dir)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = [n.strip() for n in args.exports.split(",") if n.strip()]
    unknown = [n for n in names if n not in (*EXPORTS, *PRESET_EXPORTS)]
    if unknown:
        log.print(f"--exports: unknown {', '.join(unknown)}")
        return 1
    with tempfile.TemporaryDirectory(prefix="smap-quality-") as temp:
        root = args.keep or Path(temp)
        results = [run_export(name, args, root) for name in names]
    render(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        rows = [
            {
                **asdict(r),
                "champion_minus_linear": r.champion_minus_linear,
                "champion_minus_naive": r.champion_minus_naive,
            }
            for r in results
        ]
        meta = {"seed": args.seed, "trials": args.trials, "python": platform.python_version()}
        args.json.write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
