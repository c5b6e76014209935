"""Statistics of a model experiment: per-arm metrics with intervals, their difference, and a
sequential test whose p-value stays valid however often it is read.

The sequential test is the mixture sequential probability ratio test (mSPRT, Johari, Pekelis
and Walsh, "Always valid inference", 2017) for a difference in means with a normal mixing
distribution N(0, tau^2), tau a fixed share (`effect_scale`) of the observations' standard
deviation. Its likelihood ratio is evaluated after every observation, in arrival order, and
the always-valid p-value is the running minimum of 1/ratio: reading `status` every hour (or
after every answer) does not inflate false positives. The variance is estimated from the
data (plug-in) once each side holds `burn_in` observations; `benchmarks/experiment_aa.py`
measures the false-positive rate this gives on A/A experiments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats
from sklearn.metrics import average_precision_score, roc_auc_score

ALPHA = 0.05
EFFECT_SCALE = 0.1  # tau / sigma: the mixture weights effects around a tenth of a std dev
BURN_IN = 30  # observations per side before the ratio is evaluated (plug-in variance)
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
    """The mSPRT after the last observation: an always-valid p-value for "no difference",
    and the always-valid confidence sequence (running intersection) of the difference."""

    p_value: float
    difference: float  # mean(challenger) - mean(champion) (paired: mean of the differences)
    low: float
    high: float
    looks: int  # prefixes at which the ratio was evaluated


def _log_ratio(theta: np.ndarray, v: np.ndarray, tau2: np.ndarray) -> np.ndarray:
    """log of the mSPRT mixture likelihood ratio for an estimate `theta` of variance `v`."""
    return 0.5 * np.log(v / (v + tau2)) + tau2 * theta**2 / (2 * v * (v + tau2))


def _half_width(v: np.ndarray, tau2: np.ndarray, alpha: float) -> np.ndarray:
    """Where the ratio crosses 1/alpha: the confidence sequence's half width."""
    return np.sqrt(2 * v * (v + tau2) / tau2 * (np.log(1 / alpha) + 0.5 * np.log((v + tau2) / v)))


def _sequence(
    theta: np.ndarray, v: np.ndarray, sigma2: np.ndarray, alpha: float, effect_scale: float
) -> Sequential:
    ok = np.isfinite(theta) & np.isfinite(v) & (v > 0) & (sigma2 > 0)
    if not ok.any():
        return Sequential(1.0, float(theta[-1]) if len(theta) else float("nan"), -np.inf, np.inf, 0)
    theta, v, sigma2 = theta[ok], v[ok], sigma2[ok]
    tau2 = effect_scale**2 * sigma2
    log_ratio = _log_ratio(theta, v, tau2)
    p = float(min(1.0, np.exp(-log_ratio.max())))
    half = _half_width(v, tau2, alpha)
    low, high = float((theta - half).max()), float((theta + half).min())
    return Sequential(p, float(theta[-1]), low, high, int(len(theta)))


def two_sample(
    values: np.ndarray,
    challenger: np.ndarray,
    alpha: float = ALPHA,
    effect_scale: float = EFFECT_SCALE,
    burn_in: int = BURN_IN,
) -> Sequential:
    """mSPRT for mean(challenger values) - mean(champion values); `values` in arrival order,
    `challenger` True where the challenger answered (split experiments: independent arms)."""
    x = np.asarray(values, dtype=float)
    b = np.asarray(challenger, dtype=bool)
    cols = []
    for side in (~b, b):
        n = np.cumsum(side)
        s = np.cumsum(np.where(side, x, 0.0))
        q = np.cumsum(np.where(side, x * x, 0.0))
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = s / n
            var = (q - n * mean**2) / (n - 1)
        cols.append((n, mean, np.maximum(var, 0.0)))
    (n0, m0, v0), (n1, m1, v1) = cols
    ready = (n0 >= burn_in) & (n1 >= burn_in)
    with np.errstate(invalid="ignore", divide="ignore"):
        v = v0 / n0 + v1 / n1
        sigma2 = ((n0 - 1) * v0 + (n1 - 1) * v1) / (n0 + n1 - 2)
    if not ready.any():
        return Sequential(1.0, float(np.mean(x[b]) - np.mean(x[~b])) if b.any() and (~b).any()
                          else float("nan"), -np.inf, np.inf, 0)  # fmt: skip
    return _sequence((m1 - m0)[ready], v[ready], sigma2[ready], alpha, effect_scale)


def paired(
    differences: np.ndarray,
    alpha: float = ALPHA,
    effect_scale: float = EFFECT_SCALE,
    burn_in: int = BURN_IN,
) -> Sequential:
    """mSPRT for the mean of paired differences (challenger - champion on the same input, as
    a shadow experiment gives), in arrival order."""
    d = np.asarray(differences, dtype=float)
    n = np.arange(1, len(d) + 1)
    s, q = np.cumsum(d), np.cumsum(d * d)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s / n
        var = np.maximum((q - n * mean**2) / (n - 1), 0.0)
    ready = n >= burn_in
    if not ready.any():
        return Sequential(1.0, float(mean[-1]) if len(d) else float("nan"), -np.inf, np.inf, 0)
    return _sequence(mean[ready], (var / n)[ready], var[ready], alpha, effect_scale)


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
