"""False positives of the model experiments' sequential test, from simulated A/A experiments.

Each A/A experiment gives both arms the same model: the absolute errors of its answers come
from one distribution (half-normal: an absolute error's shape), split by a fair coin per
answer (split mode) or paired per answer (shadow mode: two draws of the same request). The
experiment is read every 10 labelled answers (the looks `smap experiment status` takes), up
to `--answers` (far more often than a `status` every hour), and counts as a false positive if
any look said "different" at 5%.

Side by side, on the same data: smap's mSPRT (`analytics/model_experiments_stats.py`,
always-valid p-value) and the plain approach it replaces, Welch's t-test (paired t-test in
shadow mode) read every `--peek` answers. And the power of the mSPRT when the challenger's
error is 10% lower: how often it finds it, after how many answers.

    uv run python benchmarks/experiment_aa.py --seeds 1000 --json .smap/bench/experiment_aa.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from scipy import stats  # noqa: E402
from statsmodels.stats.proportion import proportion_confint  # noqa: E402

from analytics import model_experiments_stats as st  # noqa: E402

ALPHA = st.ALPHA


def arms(rng: np.random.Generator, mode: str, answers: int, effect: float):
    """(values, challenger mask) for split; (champion errors, challenger errors) for shadow."""
    if mode == "split":
        challenger = rng.random(answers) < 0.5
        errors = np.abs(rng.normal(size=answers))
        errors[challenger] *= 1 - effect
        return errors, challenger
    champion = np.abs(rng.normal(size=answers))
    return champion, np.abs(rng.normal(size=answers)) * (1 - effect)


def msprt(mode: str, data) -> tuple[bool, int | None]:
    """Rejected at any look, and after how many answers it first was."""
    if mode == "split":
        result = st.two_sample(data[0], data[1])
    else:
        champion, challenger = data
        result = st.paired(challenger - champion)
    return result.p_value < ALPHA, result.rejected_at


def peeking_t_test(mode: str, data, peek: int) -> bool:
    """The fixed-sample t-test, read every `peek` answers: rejected at any read."""
    n = len(data[0])
    for k in range(peek, n + 1, peek):
        if mode == "split":
            values, challenger = data[0][:k], data[1][:k]
            a, b = values[~challenger], values[challenger]
            if len(a) < 2 or len(b) < 2:
                continue
            p = stats.ttest_ind(b, a, equal_var=False).pvalue
        else:
            p = stats.ttest_rel(data[1][:k], data[0][:k]).pvalue
        if p < ALPHA:
            return True
    return False


def run(args) -> list[dict]:
    rows = []
    for mode in ("split", "shadow"):
        seq = peeked = 0
        for seed in range(args.seeds):
            data = arms(np.random.default_rng([seed, 7]), mode, args.answers, 0.0)
            seq += msprt(mode, data)[0]
            peeked += peeking_t_test(mode, data, args.peek)
        found, when = 0, []
        for seed in range(args.power_seeds):
            rejected, at = msprt(mode, arms(np.random.default_rng([seed, 11]), mode,
                                            args.answers, args.effect))  # fmt: skip
            found += rejected
            if at is not None:
                when.append(at)
        for test, hits in (("mSPRT, a look every 10 answers", seq),
                           (f"t-test, read every {args.peek} answers", peeked)):  # fmt: skip
            low, high = proportion_confint(hits, args.seeds, alpha=0.05, method="wilson")
            rows.append(
                {
                    "mode": mode,
                    "test": test,
                    "experiments": args.seeds,
                    "false_positive_rate": hits / args.seeds,
                    "fpr_low": float(low),
                    "fpr_high": float(high),
                    **(
                        {
                            "power": found / args.power_seeds,
                            "median_answers_to_detect": float(np.median(when)) if when else None,
                        }
                        if test.startswith("mSPRT")
                        else {}
                    ),
                }
            )
    return rows


def render(rows: list[dict], args) -> None:
    table = Table(
        title=f"A/A experiments: false positives at nominal {ALPHA:.0%} ({args.answers} answers "
        f"each); power at a {args.effect:.0%} lower error"
    )
    for col in (
        "mode",
        "test",
        "A/A runs",
        "false positives [95% CI]",
        "power",
        "answers to detect",
    ):
        table.add_column(col)
    for r in rows:
        power = r.get("power")
        table.add_row(
            r["mode"],
            r["test"],
            str(r["experiments"]),
            f"{r['false_positive_rate']:.1%} [{r['fpr_low']:.1%}, {r['fpr_high']:.1%}]",
            "" if power is None else f"{power:.0%}",
            "" if r.get("median_answers_to_detect") is None
            else f"{r['median_answers_to_detect']:.0f} (median)",
        )  # fmt: skip
    Console(width=140).print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1000, help="A/A experiments per mode")
    parser.add_argument("--answers", type=int, default=2000, help="labelled answers each")
    parser.add_argument("--peek", type=int, default=100, help="t-test read every N answers")
    parser.add_argument("--effect", type=float, default=0.10, help="error reduction for power")
    parser.add_argument("--power-seeds", type=int, default=200)
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    rows = run(args)
    render(rows, args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)},
                                         "results": rows}, indent=2) + "\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
