"""Always-valid inference for a difference in means: the mixture SPRT (mSPRT).

An experiment read every hour with a fixed-horizon test rejects a true null far more often
than its alpha says. The mSPRT of Johari, Pekelis and Walsh ("Always valid inference",
2017) does not: its p-value may be read at every look, and stopping the first time it falls
below alpha keeps the false-positive rate at most alpha.

At a look the data give an estimate `diff` of theta = mean(B) - mean(A) with variance
`variance` (= s_A^2 / n_A + s_B^2 / n_B, plug-in). With a normal mixing prior theta ~ N(null,
tau^2) over the alternatives, the mixture likelihood ratio against theta = null is the ratio
of two normal densities of `diff`:

    Lambda = N(diff; null, variance + tau^2) / N(diff; null, variance)

Under the null Lambda is a martingale with mean 1, so by Ville's inequality
P(sup_n Lambda_n >= 1 / alpha) <= alpha. The always-valid p-value is the running minimum
of min(1, 1 / Lambda_n): it never increases as data arrive. The matching confidence sequence
holds every theta0 that the test at level alpha does not reject, intersected over the looks:
|diff - theta0| < sqrt(variance (variance + tau^2) / tau^2 * (2 log(1/alpha)
+ log((variance + tau^2) / variance))).

tau is the prior's spread of the effect. It is given in units of the pooled per-observation
standard deviation (a standardized effect, Cohen's d): tau_abs = tau * pooled sd at the look.
Then Lambda depends only on the z-score and the effective sample size, not on the metric's
scale, so the same default serves engagement rates and model errors. DEFAULT_TAU = 0.1 suits
the small effects of content and model experiments (d around 0.05 to 0.3); a tau far from the
true effect costs power, never validity. Validity is asymptotic: the variance is estimated
and the mean is normal only by the central limit theorem, so looks with fewer than
MIN_PER_GROUP observations in a group are not tested (p stays 1, the interval unbounded).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

DEFAULT_TAU = 0.1  # prior sd of the effect, in pooled standard deviations
DEFAULT_ALPHA = 0.05
MIN_PER_GROUP = 2


@dataclass(frozen=True)
class Look:
    """The sequential test at one look, on the data up to and including it."""

    look: float  # the look's label (a day, an hour, a count)
    n_a: int
    n_b: int
    diff: float  # mean(B) - mean(A)
    variance: float  # of diff
    p_value: float  # always-valid: the running minimum, never increases
    ci_low: float  # always-valid confidence sequence, running intersection
    ci_high: float


def mixture_log_lr(diff: float, variance: float, tau_abs: float, null: float = 0.0) -> float:
    """log Lambda: the normal-mixture likelihood ratio of `diff` against theta = null."""
    return float(
        stats.norm.logpdf(diff, null, np.sqrt(variance + tau_abs**2))
        - stats.norm.logpdf(diff, null, np.sqrt(variance))
    )


def confidence_radius(variance: float, tau_abs: float, alpha: float) -> float:
    """Half-width of the set of theta0 the mSPRT does not reject at level alpha."""
    ratio = (variance + tau_abs**2) / variance
    spread = variance * (variance + tau_abs**2) / tau_abs**2
    return float(np.sqrt(spread * (2 * np.log(1 / alpha) + np.log(ratio))))


def sequential_from_estimates(
    looks: np.ndarray,
    n_a: np.ndarray,
    n_b: np.ndarray,
    diffs: np.ndarray,
    variances: np.ndarray,
    taus_abs: np.ndarray,
    alpha: float = DEFAULT_ALPHA,
) -> list[Look]:
    """The test over a sequence of looks given each look's estimate, its variance and the
    prior's absolute tau; for estimates made elsewhere (regression-adjusted, paired)."""
    out: list[Look] = []
    p, low, high = 1.0, -np.inf, np.inf
    for i in range(len(diffs)):
        ok = (
            min(n_a[i], n_b[i]) >= MIN_PER_GROUP
            and np.isfinite(diffs[i])
            and variances[i] > 0
            and taus_abs[i] > 0
        )
        if ok:
            log_lr = mixture_log_lr(diffs[i], variances[i], taus_abs[i])
            p = min(p, float(np.exp(-max(log_lr, 0.0))))
            radius = confidence_radius(variances[i], taus_abs[i], alpha)
            low, high = max(low, diffs[i] - radius), min(high, diffs[i] + radius)
        out.append(
            Look(
                float(looks[i]),
                int(n_a[i]),
                int(n_b[i]),
                float(diffs[i]),
                float(variances[i]),
                p,
                low,
                high,
            )
        )
    return out


def sequential_test(
    values: np.ndarray,
    treated: np.ndarray,
    look: np.ndarray,
    tau: float = DEFAULT_TAU,
    alpha: float = DEFAULT_ALPHA,
) -> list[Look]:
    """The mSPRT of mean(B) - mean(A) at every distinct value of `look` (e.g. the day a post
    arrived), each on all observations with look <= it.

    Args:
        values: one outcome per observation.
        treated: True for group B (treatment), False for A (control).
        look: when each observation arrived; one test per distinct value, in order.
        tau: the mixing prior's sd in pooled standard deviations (see the module docstring).
    """
    values = np.asarray(values, dtype=float)
    treated = np.asarray(treated, dtype=bool)
    look = np.asarray(look)
    if not (len(values) == len(treated) == len(look)):
        raise ValueError("values, treated and look must have the same length")
    if not np.issubdtype(look.dtype, np.number):
        raise ValueError("look must be numeric (e.g. days or hours since the start)")
    if tau <= 0 or not 0 < alpha < 1:
        raise ValueError("tau must be > 0 and alpha in (0, 1)")
    labels, index = np.unique(look, return_inverse=True)
    k = len(labels)

    def cumulative(weights: np.ndarray) -> np.ndarray:
        return np.cumsum(np.bincount(index, weights=weights, minlength=k))

    a, b = ~treated, treated
    n_a, n_b = cumulative(a.astype(float)), cumulative(b.astype(float))
    s_a, s_b = cumulative(np.where(a, values, 0.0)), cumulative(np.where(b, values, 0.0))
    q_a, q_b = cumulative(np.where(a, values**2, 0.0)), cumulative(np.where(b, values**2, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_a, mean_b = s_a / n_a, s_b / n_b
        ss_a = np.maximum(q_a - n_a * mean_a**2, 0.0)  # sums of squared deviations
        ss_b = np.maximum(q_b - n_b * mean_b**2, 0.0)
        var_a, var_b = ss_a / (n_a - 1), ss_b / (n_b - 1)
        variance = var_a / n_a + var_b / n_b
        pooled_sd = np.sqrt((ss_a + ss_b) / (n_a + n_b - 2))
    return sequential_from_estimates(
        labels, n_a, n_b, mean_b - mean_a, variance, tau * pooled_sd, alpha
    )
