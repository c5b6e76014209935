"""Drift check cost: smap's sketched reference vs a plain Evidently report over both frames.

What is measured (one run, one table), on synthetic, seeded frames of 10k, 100k and 1M rows x
40 features (30 numeric of several shapes, two with nulls; 10 categorical of 3..40 values) plus
a `prediction` column, with a shift planted in 10 numeric and 3 categorical columns (three of
them close to the 0.1 threshold, on either side, so agreement is tested where it can fail):

- `smap reference`: what training does once per run (`training/reference.py`): the reference
  frame sketched to 2,000 rows, column kinds read. Measured apart, since a check never pays it.
- `smap check`: `monitoring.drift.run_drift` on the full current frame against that stored
  sketch (it converts the window to the reference's kinds, sketches it, runs Evidently's
  `DataDriftPreset` on 40 features plus `ValueDrift` on the prediction).
- `plain Evidently`: `Report([DataDriftPreset()])` over the full reference and current frames
  (same size, same explicit data definition, Evidently's default tests: normed Wasserstein for
  numbers, Jensen-Shannon for categories, threshold 0.1 above 1,000 rows: the same tests and
  thresholds the smap path is given here), 41 columns including the prediction.

Each case runs in a fresh Python process: the data is generated and every library imported
and warmed up on a small frame first (not timed), then the peak resident set is reset
(`/proc/self/clear_refs`) and the case is timed; `peak MB` is the process's peak RSS during the
case (the frames it holds included), `added MB` that peak minus the RSS just before. Ratios
are plain / smap check. `agreement` counts the 41 columns both paths call drifted or both call
stable; `max |score diff|` is the largest gap between the two paths' drift scores.

Plain Evidently at 1M rows takes about 15 minutes and 4 GB on a 2-core machine (the whole run
about 20 minutes); `--max-rows 100000` skips it above 100k rows, and the output says so.

    uv run python benchmarks/drift.py --json .smap/bench/drift.json
    uv run python benchmarks/drift.py --max-rows 100000   # about 5 minutes
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table as RichTable

from configs.settings import telemetry_env

os.environ.update(telemetry_env())  # before Evidently is imported, here and in every case

out = Console(width=None if sys.stdout.isatty() else 140)  # a piped table keeps its columns
log = Console(stderr=True)

SIZES = (10_000, 100_000, 1_000_000)
NUMERIC, CATEGORICAL = 30, 10
SEED = 20_240_601
SHIFTED_NUMERIC = {f"num_{i:02d}": shift for i, shift in enumerate((1.0, 0.6, 0.4, 0.3, 0.25))}
SHIFTED_NUMERIC |= {"num_05": "scale", "num_06": "scale", "num_07": "tail"}
SHIFTED_NUMERIC |= {"num_08": 0.13, "num_09": 0.07}  # near the 0.1 threshold, either side
SHIFTED_CATEGORICAL = {"cat_00": 1.0, "cat_01": 1.0, "cat_02": 0.2}  # share of reversed mix
NEAR = ("num_08", "num_09", "cat_02")  # expected scores about 0.13, 0.07, 0.11
CASES = ("smap-reference", "smap-check", "plain")
WARMUP_ROWS = 3_000
PREDICTION = "prediction"
THRESHOLD = 0.1  # Evidently's default for both distances


# --- data ---------------------------------------------------------------------------------


def frame(rows: int, seed: int, shifted: bool) -> pd.DataFrame:
    """40 features and a prediction; `shifted` plants the drift (a different seed per side)."""
    rng = np.random.default_rng(seed)
    columns: dict[str, np.ndarray] = {}
    for i in range(NUMERIC):
        name, kind = f"num_{i:02d}", i % 5
        if kind == 0:
            values = rng.normal(0.0, 1.0, rows)
        elif kind == 1:
            values = rng.lognormal(2.0, 0.8, rows)
        elif kind == 2:
            values = rng.poisson(4.0, rows).astype(float)
        elif kind == 3:
            values = rng.uniform(0.0, 10.0, rows)
        else:
            values = rng.gamma(2.0, 3.0, rows)
        change = SHIFTED_NUMERIC.get(name) if shifted else None
        if isinstance(change, float):
            values = values + change * values.std()
        elif change == "scale":
            values = values.mean() + (values - values.mean()) * 1.6
        elif change == "tail":
            tail = rng.random(rows) < 0.15
            values = np.where(tail, values + 4 * values.std(), values)
        if i in (28, 29):  # a few nulls, as logged features have
            values[rng.random(rows) < 0.03] = np.nan
        columns[name] = values
    for i in range(CATEGORICAL):
        name, size = f"cat_{i:02d}", 3 + 4 * i
        levels = np.array([f"{name}_v{j}" for j in range(size)], dtype=object)
        weights = 1.0 / np.arange(1, size + 1)  # Zipf-like: a few common values, a long tail
        if shifted and name in SHIFTED_CATEGORICAL:
            mix = SHIFTED_CATEGORICAL[name]
            weights = (1 - mix) * weights / weights.sum() + mix * weights[::-1] / weights.sum()
        columns[name] = levels[rng.choice(size, rows, p=weights / weights.sum())]
    data = pd.DataFrame(columns)
    score = 0.3 * columns["num_00"] + 0.1 * np.log1p(columns["num_01"]) + 0.05 * columns["num_03"]
    data[PREDICTION] = score + rng.normal(0.0, 0.2, rows)
    return data


def features(data: pd.DataFrame) -> list[str]:
    return [c for c in data.columns if c != PREDICTION]


# --- memory -------------------------------------------------------------------------------


def _status_kib(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class Peak:
    """The process's peak RSS over a block: Linux's high-water mark, reset at the start."""

    def __enter__(self) -> Peak:
        gc.collect()
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            self.resettable = True
        except OSError:
            self.resettable = False
        self.before_mb = (_status_kib("VmRSS") or 0) / 1024
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start
        hwm = _status_kib("VmHWM") if self.resettable else None
        # without the reset, ru_maxrss is the lifetime peak: an upper bound
        kib = hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self.peak_mb = kib / 1024


# --- the cases (each in its own process) ----------------------------------------------------


def sketch_reference(data: pd.DataFrame):
    from training.reference import Reference, column_kinds, sketch

    columns = list(data.columns)
    return Reference(
        "bench", "bench", sketch(data, columns), column_kinds(data, columns), len(data),
        "r2", float("nan"), {},
    )  # fmt: skip


def smap_check(reference, current: pd.DataFrame) -> dict[str, tuple[float, bool]]:
    from configs.settings import DriftThresholds
    from monitoring.drift import run_drift

    # Evidently's default threshold, not the profile's: both paths judge by the same rule, so
    # a disagreement can only come from the sketch (the cost does not depend on thresholds)
    limits = DriftThresholds(column=THRESHOLD, prediction=THRESHOLD)
    result, _ = run_drift(reference, current, limits)
    return {c.column: (c.score, c.drifted) for c in (*result.columns, result.prediction)}


def plain_check(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, tuple[float, bool]]:
    """Evidently's DataDriftPreset with its defaults over both full frames; per-column verdicts
    read by metric identity, with the test and threshold Evidently resolved for each."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    numeric = [c for c in current.columns if pd.api.types.is_numeric_dtype(current[c])]
    definition = DataDefinition(
        numerical_columns=numeric,
        categorical_columns=[c for c in current.columns if c not in numeric],
    )
    preset = DataDriftPreset()
    snapshot = Report([preset]).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    verdicts = {}
    for metric in preset.generate_metrics(snapshot.context):
        if isinstance(metric, ValueDrift):
            score = float(snapshot.metric_results[metric.metric_id].value)
            params = snapshot.context.get_metric(metric.metric_id).to_metric_config().params
            verdicts[metric.column] = (score, score >= float(params["threshold"]))
    return verdicts


def child(case: str, rows: int, workdir: Path) -> dict:
    """One case, measured in this (fresh) process."""
    import evidently  # noqa: F401 - imported before the clock, as in a running monitor

    sketch_path = workdir / f"reference-{rows}.pkl"
    if case == "smap-reference":
        data = frame(rows, SEED, shifted=False)
        sketch_reference(data.head(WARMUP_ROWS))
        with Peak() as peak:
            reference = sketch_reference(data)
        pd.to_pickle(reference, sketch_path)
        return {
            "seconds": peak.seconds,
            "peak_mb": peak.peak_mb,
            "added_mb": peak.peak_mb - peak.before_mb,
        }
    current = frame(rows, SEED + 1, shifted=True)
    if case == "smap-check":
        reference = pd.read_pickle(sketch_path)
        smap_check(sketch_reference(frame(WARMUP_ROWS, 1, False)), frame(WARMUP_ROWS, 2, True))
        with Peak() as peak:
            verdicts = smap_check(reference, current)
    else:
        ref = frame(rows, SEED, shifted=False)
        plain_check(frame(WARMUP_ROWS, 1, False), frame(WARMUP_ROWS, 2, True))
        with Peak() as peak:
            verdicts = plain_check(ref, current)
    return {
        "seconds": peak.seconds,
        "peak_mb": peak.peak_mb,
        "added_mb": peak.peak_mb - peak.before_mb,
        "verdicts": verdicts,
    }


# --- the parent -----------------------------------------------------------------------------


@dataclass
class Result:
    rows: int
    path: str
    seconds: float | None = None
    peak_mb: float | None = None
    added_mb: float | None = None
    drifted: list[str] = field(default_factory=list)
    note: str = ""
    scores: dict[str, float] = field(default_factory=dict)


def run_case(case: str, rows: int, workdir: Path, timeout: float) -> dict:
    out_file = workdir / f"{case}-{rows}.json"
    cmd = [
        sys.executable,
        __file__,
        "--child",
        case,
        "--rows",
        str(rows),
        "--workdir",
        str(workdir),
    ]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"note": f"stopped after {timeout:.0f} s (--timeout)"}
    if done.returncode != 0 or not out_file.is_file():
        tail = (done.stderr or "").strip().splitlines()[-1:] or [f"exit {done.returncode}"]
        return {"note": f"failed: {tail[0][:120]}"}
    return json.loads(out_file.read_text())


def as_result(rows: int, path: str, raw: dict) -> Result:
    verdicts = raw.get("verdicts", {})
    return Result(
        rows,
        path,
        raw.get("seconds"),
        raw.get("peak_mb"),
        raw.get("added_mb"),
        sorted(c for c, (_, drifted) in verdicts.items() if drifted),
        raw.get("note", ""),
        {c: round(score, 5) for c, (score, _) in verdicts.items()},
    )


def agreement(smap: Result, plain: Result) -> dict | None:
    if not smap.scores or not plain.scores:
        return None
    columns = sorted(set(smap.scores) & set(plain.scores))
    same = [c for c in columns if (c in smap.drifted) == (c in plain.drifted)]
    return {
        "columns": len(columns),
        "agree": len(same),
        "only_smap": sorted(set(smap.drifted) - set(plain.drifted)),
        "only_plain": sorted(set(plain.drifted) - set(smap.drifted)),
        "max_score_diff": max(abs(smap.scores[c] - plain.scores[c]) for c in columns),
    }


def run(args: argparse.Namespace) -> tuple[list[Result], dict[int, dict]]:
    results: list[Result] = []
    agreements: dict[int, dict] = {}
    with tempfile.TemporaryDirectory(prefix="smap-bench-drift-") as tmp:
        workdir = Path(tmp)
        for rows in args.sizes:
            by_path = {}
            for case, path in zip(
                CASES, ("smap reference", "smap check", "plain Evidently"), strict=True
            ):
                if case == "plain" and rows > args.max_rows:
                    raw = {"note": f"skipped: more rows than --max-rows {args.max_rows:,}"}
                else:
                    log.print(f"[dim]{rows:,} rows: {path} ...[/dim]")
                    raw = run_case(case, rows, workdir, args.timeout)
                by_path[path] = as_result(rows, path, raw)
                results.append(by_path[path])
            agreed = agreement(by_path["smap check"], by_path["plain Evidently"])
            if agreed:
                agreements[rows] = agreed
    return results, agreements


def render(results: list[Result], agreements: dict[int, dict], args) -> None:
    table = RichTable(
        title=f"drift check: {NUMERIC + CATEGORICAL} features + prediction, "
        f"{len(SHIFTED_NUMERIC) + len(SHIFTED_CATEGORICAL)} shifted ({len(NEAR)} near the "
        f"threshold); {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at the end"
    )
    table.add_column("rows", justify="right")
    table.add_column("path")
    for name in ("seconds", "peak MB", "added MB", "drifted", "time x", "peak x", "agreement"):
        table.add_column(name, justify="right")
    table.add_column("max |score diff|", justify="right")
    checks = {(r.rows, r.path): r for r in results}

    def num(value: float | None, spec: str) -> str:
        return "" if value is None else format(value, spec)

    for r in results:
        if r.note:
            table.add_row(f"{r.rows:,}", r.path, r.note, *[""] * 7)
            continue
        cells = [num(r.seconds, ".2f"), num(r.peak_mb, ",.0f"), num(r.added_mb, ",.0f")]
        cells.append(str(len(r.drifted)) if r.scores else "")
        smap = checks.get((r.rows, "smap check"))
        agreed = agreements.get(r.rows) if r.path == "plain Evidently" else None
        if r.path == "plain Evidently" and smap and smap.seconds and not smap.note:
            cells += [f"{r.seconds / smap.seconds:.1f}", f"{r.peak_mb / smap.peak_mb:.1f}"]
        else:
            cells += ["", ""]
        if agreed:
            cells += [f"{agreed['agree']}/{agreed['columns']}", f"{agreed['max_score_diff']:.3f}"]
        else:
            cells += ["", ""]
        table.add_row(f"{r.rows:,}", r.path, *cells)
    out.print(table)
    clear = [c for c in [*SHIFTED_NUMERIC, *SHIFTED_CATEGORICAL] if c not in NEAR]
    out.print(f"planted shift: {', '.join(clear)} (and so the prediction, through num_00)")
    out.print(f"planted near the 0.1 threshold: {', '.join(NEAR)}; their scores, smap / plain:")
    for rows in sorted({r.rows for r in results}):
        smap, plain = checks.get((rows, "smap check")), checks.get((rows, "plain Evidently"))
        if smap and smap.scores:
            other = plain.scores if plain and plain.scores else {}
            out.print(
                f"  {rows:,} rows: "
                + ", ".join(
                    f"{c} {smap.scores[c]:.3f} / {num(other.get(c), '.3f') or '-'}" for c in NEAR
                )
            )
    for rows, agreed in agreements.items():
        if agreed["only_smap"] or agreed["only_plain"]:
            out.print(
                f"{rows:,} rows, verdicts differ: only smap {agreed['only_smap'] or '-'}, "
                f"only plain {agreed['only_plain'] or '-'}"
            )
    slow = [r for r in results if r.path == "plain Evidently" and (r.seconds or 0) > 600]
    for r in slow:
        out.print(
            f"plain Evidently took {r.seconds / 60:.0f} min at {r.rows:,} rows: `--max-rows N` "
            "stops it above N rows (smap's path still runs every size)"
        )
    if any(r.rows > args.max_rows for r in results):
        out.print(
            f"plain Evidently ran up to --max-rows {args.max_rows:,} rows; pass a larger value "
            "to measure it above (at 1M rows expect ~15 min and ~4 GB on 2 cores)"
        )


def metadata(args: argparse.Namespace) -> dict:
    import evidently

    return {
        "sizes": args.sizes,
        "max_rows": args.max_rows,
        "features": {"numeric": NUMERIC, "categorical": CATEGORICAL},
        "shifted": sorted(SHIFTED_NUMERIC) + list(SHIFTED_CATEGORICAL),
        "near_threshold": list(NEAR),
        "seed": SEED,
        "cores": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "python": platform.python_version(),
        "evidently": evidently.__version__,
        "platform": platform.platform(),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES), help="row counts")
    parser.add_argument(
        "--max-rows", type=int, default=max(SIZES), help="largest size plain Evidently runs at"
    )
    parser.add_argument("--timeout", type=float, default=1_800, help="seconds per case at most")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    # one case in its own process (started by the benchmark)
    parser.add_argument("--child", choices=CASES, help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if not args.sizes or min(args.sizes) < WARMUP_ROWS:
        parser.error(f"--sizes: row counts of at least {WARMUP_ROWS}, e.g. 10000,100000")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        figures = child(args.child, args.rows, args.workdir)
        (args.workdir / f"{args.child}-{args.rows}.json").write_text(json.dumps(figures))
        return 0
    results, agreements = run(args)
    render(results, agreements, args)
    if args.json:
        report = {
            "metadata": metadata(args),
            "results": [asdict(r) for r in results],
            "agreement": {str(k): v for k, v in agreements.items()},
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        log.print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
