"""Statistics of a model experiment: per-arm metrics with intervals, their difference, and a
sequential test whose p-value stays valid however often it is read.

The sequential test is the mSPRT of `analytics/sequential.py` (always-valid p-value and
confidence sequence for a difference in means, normal mixture with tau in pooled standard
deviations), applied here to the absolute error per prediction: two-sample in a split
experiment, on paired differences (same request, same entity) in a shadow one. A look is
taken every `LOOK_EVERY` labelled answers in arrival order and at the last one, once each arm
holds `BURN_IN` answers (plug-in variance); reading `status` every hour, or after every
answer, does not inflate false positives, since the test bounds the chance that the ratio
ever crosses 1/alpha. `benchmarks/experiment_aa.py` measures the false-positive rate on
simulated A/A experiments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats
from sklearn.metrics import average_precision_score, roc_auc_score

from analytics import sequential

ALPHA = sequential.DEFAULT_ALPHA
EFFECT_SCALE = sequential.DEFAULT_TAU  # tau, in the errors' pooled standard deviations
BURN_IN = 30  # labelled answers per arm before the first look (plug-in variance)
LOOK_EVERY = 10  # labelled answers between looks
RESAMPLES = 999


def r2(y: np.ndarray, pred: np.ndarray) -> float:
    """R² as sklearn's `r2_score` computes it, without its input checks: a bootstrap calls it
    a thousand times per interval."""
    total = float(((y - y.mean()) ** 2).sum())
    return float("nan") if total == 0 else 1 - float(((y - pred) ** 2).sum()) / total


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "r2": r2,
    "pr_auc": average_precision_score,
    "roc_auc": roc_auc_score,
}


@dataclass(frozen=True)
class Sequential:
    """The mSPRT at the last look: the always-valid p-value for "no difference", the
    difference now and its always-valid confidence sequence (running intersection)."""

    p_value: float
    difference: float  # mean(challenger) - mean(champion) (paired: mean of the differences)
    low: float
    high: float
    looks: int  # looks taken
    rejected_at: int | None = None  # labelled answers at the first look below ALPHA


def _looks(n: int, ready: np.ndarray, every: int) -> np.ndarray:
    """Indices (0-based prefixes) of the looks: every `every` answers once `ready`, and the
    last answer."""
    index = np.arange(n)
    grid = ((index + 1) % every == 0) | (index == n - 1)
    return index[grid & ready]


def _test(
    at: np.ndarray,
    n_a: np.ndarray,
    n_b: np.ndarray,
    diff: np.ndarray,
    variance: np.ndarray,
    sd: np.ndarray,
    current: float,
    alpha: float,
    tau: float,
) -> Sequential:
    if len(at) == 0:
        return Sequential(1.0, current, -np.inf, np.inf, 0)
    looks = sequential.sequential_from_estimates(
        at + 1.0, n_a[at], n_b[at], diff[at], variance[at], tau * sd[at], alpha
    )
    last = looks[-1]
    first = next((int(k.look) for k in looks if k.p_value < alpha), None)
    return Sequential(last.p_value, current, last.ci_low, last.ci_high, len(looks), first)


def two_sample(
    values: np.ndarray,
    challenger: np.ndarray,
    alpha: float = ALPHA,
    tau: float = EFFECT_SCALE,
    burn_in: int = BURN_IN,
    every: int = LOOK_EVERY,
) -> Sequential:
    """mSPRT for mean(challenger values) - mean(champion values); `values` in arrival order,
    `challenger` True where the challenger answered (split experiments: independent arms)."""
    x = np.asarray(values, dtype=float)
    b = np.asarray(challenger, dtype=bool)
    sides = []
    for side in (~b, b):
        n = np.cumsum(side).astype(float)
        s = np.cumsum(np.where(side, x, 0.0))
        q = np.cumsum(np.where(side, x * x, 0.0))
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = s / n
            ss = np.maximum(q - n * mean**2, 0.0)
        sides.append((n, mean, ss))
    (n0, m0, ss0), (n1, m1, ss1) = sides
    with np.errstate(invalid="ignore", divide="ignore"):
        variance = ss0 / (n0 - 1) / n0 + ss1 / (n1 - 1) / n1
        sd = np.sqrt((ss0 + ss1) / (n0 + n1 - 2))
    current = float(m1[-1] - m0[-1]) if len(x) and b.any() and (~b).any() else float("nan")
    at = _looks(len(x), (n0 >= burn_in) & (n1 >= burn_in), every)
    return _test(at, n0, n1, m1 - m0, variance, sd, current, alpha, tau)


def paired(
    differences: np.ndarray,
    alpha: float = ALPHA,
    tau: float = EFFECT_SCALE,
    burn_in: int = BURN_IN,
    every: int = LOOK_EVERY,
) -> Sequential:
    """mSPRT for the mean of paired differences (challenger - champion on the same input, as
    a shadow experiment gives), in arrival order."""
    d = np.asarray(differences, dtype=float)
    n = np.arange(1, len(d) + 1, dtype=float)
    s, q = np.cumsum(d), np.cumsum(d * d)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s / n
        var = np.maximum(q - n * mean**2, 0.0) / (n - 1)
    current = float(mean[-1]) if len(d) else float("nan")
    at = _looks(len(d), n >= burn_in, every)
    return _test(at, n, n, mean, var / n, np.sqrt(var), current, alpha, tau)


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float


NAN_ESTIMATE = Estimate(float("nan"), float("nan"), float("nan"))


def metric_of(metric: str, y: np.ndarray, pred: np.ndarray) -> float:
    """The task's metric; NaN where it is not defined (one class, too few rows)."""
    if len(y) < 3 or (metric != "r2" and len(np.unique(y)) < 2):
        return float("nan")
    return float(METRICS[metric](y, pred))


def mean_interval(values: np.ndarray, level: float = 1 - ALPHA) -> Estimate:
    """Mean with its t interval."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return Estimate(float(x.mean()) if len(x) else float("nan"), float("nan"), float("nan"))
    mean, sem = float(x.mean()), float(stats.sem(x))
    if sem == 0:
        return Estimate(mean, mean, mean)
    low, high = stats.t.interval(level, len(x) - 1, loc=mean, scale=sem)
    return Estimate(mean, float(low), float(high))


def _bootstrap(samples: tuple, statistic, paired_: bool, seed: int) -> tuple[float, float]:
    try:
        result = stats.bootstrap(
            samples,
            statistic,
            paired=paired_,
            vectorized=False,
            n_resamples=RESAMPLES,
            method="percentile",
            random_state=np.random.default_rng(seed),
        )
    except ValueError:
        return float("nan"), float("nan")
    ci = result.confidence_interval
    return float(ci.low), float(ci.high)


def metric_interval(metric: str, y: np.ndarray, pred: np.ndarray, seed: int = 0) -> Estimate:
    """The metric on one arm with a percentile bootstrap interval (rows resampled)."""
    value = metric_of(metric, y, pred)
    if not np.isfinite(value):
        return NAN_ESTIMATE

    def stat(i):
        return metric_of(metric, y[i], pred[i])

    with np.errstate(all="ignore"):
        low, high = _bootstrap((np.arange(len(y)),), stat, False, seed)
    return Estimate(value, low, high)


def metric_difference(
    metric: str,
    champion: tuple[np.ndarray, np.ndarray],
    challenger: tuple[np.ndarray, np.ndarray],
    paired_rows: bool,
    seed: int = 0,
) -> Estimate:
    """challenger - champion of the metric, with a bootstrap interval: rows resampled jointly
    when both arms scored the same rows (shadow), each arm on its own otherwise (split)."""
    (y0, p0), (y1, p1) = champion, challenger
    value = metric_of(metric, y1, p1) - metric_of(metric, y0, p0)
    if not np.isfinite(value):
        return NAN_ESTIMATE
    with np.errstate(all="ignore"):
        if paired_rows:

            def joint(i):
                return metric_of(metric, y1[i], p1[i]) - metric_of(metric, y0[i], p0[i])

            low, high = _bootstrap((np.arange(len(y0)),), joint, False, seed)
        else:

            def apart(i0, i1):
                return metric_of(metric, y1[i1], p1[i1]) - metric_of(metric, y0[i0], p0[i0])

            low, high = _bootstrap((np.arange(len(y0)), np.arange(len(y1))), apart, False, seed)
    return Estimate(value, low, high)
