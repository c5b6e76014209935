"""Content experiments: each variant's engagement rate against the control's.

The unit is the post (posts are what an experiment randomises), its outcome the engagement
rate of `content_performance_metrics` (interactions over the warehouse's denominator). The
statistics are statsmodels' and scipy's:
- per variant, the mean rate with a t interval (`DescrStatsW.tconfint_mean`);
- the difference B - A with Welch's t interval and p-value (`CompareMeans`, unequal variances);
- the relative lift B / A - 1 with a delta-method interval: Var(lift) ~ Var(mean B) / mA^2 +
  mB^2 Var(mean A) / mA^4, normal quantile from scipy;
- CUPED: the outcome minus theta * (the author's pre-experiment rate - its mean), theta =
  Cov(Y, X) / Var(X) over the experiment's posts; the author's rate is the mean rate of their
  posts before the experiment's first post and outside any experiment (authors without one
  get the mean of those who have). The same difference, lift and p-value on the adjusted
  outcome, and the ratio of the two intervals' widths;
- the mSPRT of analytics/sequential.py on the unadjusted outcome, one look per day since the
  experiment's first post: an always-valid p-value and confidence sequence for the
  difference, which may be read at every look.
`plan` gives the posts per variant for a baseline rate and a relative lift: statsmodels'
`NormalIndPower` on Cohen's h (`proportion_effectsize`), that is each post counted as one
success-or-not trial at the baseline rate. A post's rate averages over its reach, so its
spread is far below a trial's; given the per-post standard deviation (`sd`, the report's
`rate_sd`), the same power calculation runs on Cohen's d = rate * lift / sd instead.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.power import NormalIndPower  # type: ignore[import-untyped]
from statsmodels.stats.proportion import proportion_effectsize  # type: ignore[import-untyped]
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW  # type: ignore[import-untyped]

from analytics.errors import AnalyticsError
from analytics.sequential import DEFAULT_TAU, sequential_test
from ingestion.schema import ANALYTICS_TABLES
from ingestion.warehouse import Warehouse

POSTS = ANALYTICS_TABLES["content_performance_metrics"]
COLUMNS = ["post_id", "user_id", "created_at", "reach", "engagement_rate", "experiment", "variant"]
MIN_POSTS = 2  # per variant: fewer gives no variance
CONTROL = "A"  # the control variant when present; else the first in sorted order


@dataclass(frozen=True)
class VariantRate:
    variant: str
    posts: int
    reach: int
    rate: float  # mean engagement rate per post
    rate_low: float
    rate_high: float
    rate_sd: float  # per post: what `plan --sd` takes


@dataclass(frozen=True)
class Estimate:
    """One comparison of a variant with the control, on one outcome (plain or CUPED)."""

    diff: float
    diff_low: float
    diff_high: float
    lift: float
    lift_low: float
    lift_high: float
    p_value: float

    @property
    def width(self) -> float:
        return self.diff_high - self.diff_low


@dataclass(frozen=True)
class Comparison:
    variant: str
    plain: Estimate
    cuped: Estimate
    width_ratio: float  # CUPED interval width / plain interval width
    sequential_p: float  # always-valid, over daily looks
    sequential_low: float  # always-valid confidence sequence of the difference
    sequential_high: float
    looks: int


@dataclass(frozen=True)
class ABReport:
    experiment: str
    control: str
    start: pd.Timestamp
    end: pd.Timestamp
    level: float
    theta: float  # the CUPED coefficient
    covariate_share: float  # share of posts whose author has a pre-experiment rate
    variants: list[VariantRate]
    comparisons: list[Comparison]

    def to_dict(self) -> dict:
        data = asdict(self)
        data["start"], data["end"] = self.start.isoformat(), self.end.isoformat()
        return data


@dataclass(frozen=True)
class Plan:
    baseline_rate: float
    lift: float
    target_rate: float
    effect_size: float  # Cohen's h, or Cohen's d when sd is given
    effect: str  # which of the two
    power: float
    alpha: float
    posts_per_variant: int


def _rate(values: np.ndarray, alpha: float) -> tuple[float, float, float, float]:
    low, high = DescrStatsW(values).tconfint_mean(alpha=alpha)
    return float(values.mean()), float(low), float(high), float(values.std(ddof=1))


def estimate(control: np.ndarray, treated: np.ndarray, alpha: float) -> Estimate:
    """Difference (Welch), relative lift (delta method) and p-value of treated vs control."""
    compare = CompareMeans(DescrStatsW(treated), DescrStatsW(control))
    low, high = compare.tconfint_diff(alpha=alpha, usevar="unequal")
    _, p_value, _ = compare.ttest_ind(usevar="unequal")
    mean_a, mean_b = control.mean(), treated.mean()
    var_a = control.var(ddof=1) / len(control)
    var_b = treated.var(ddof=1) / len(treated)
    lift = mean_b / mean_a - 1
    se = math.sqrt(var_b / mean_a**2 + mean_b**2 * var_a / mean_a**4)
    z = stats.norm.ppf(1 - alpha / 2)
    return Estimate(
        float(mean_b - mean_a),
        float(low),
        float(high),
        float(lift),
        float(lift - z * se),
        float(lift + z * se),
        float(p_value),
    )


def cuped_adjusted(outcome: np.ndarray, covariate: np.ndarray) -> tuple[np.ndarray, float]:
    """The outcome minus theta * (covariate - its mean), theta = Cov(Y, X) / Var(X)."""
    variance = covariate.var(ddof=1)
    if not np.isfinite(variance) or variance <= 0:
        return outcome, 0.0
    theta = float(np.cov(outcome, covariate, ddof=1)[0, 1] / variance)
    return outcome - theta * (covariate - covariate.mean()), theta


def labelled(posts: pd.DataFrame) -> pd.DataFrame:
    """Posts whose missing experiment and variant are null: PostgreSQL's warehouse reads NULL
    text back as ""."""
    blank = {"experiment": posts.experiment.replace("", None)}
    return posts.assign(**blank, variant=posts.variant.replace("", None))


def author_pre_rates(posts: pd.DataFrame, start: pd.Timestamp) -> pd.Series:
    """Each author's mean engagement rate over their posts before `start` that are in no
    experiment."""
    before = posts[(posts.created_at < start) & posts.experiment.isna()]
    return before.groupby("user_id").engagement_rate.mean()


def analyse(
    posts: pd.DataFrame, experiment: str, alpha: float = 0.05, tau: float = DEFAULT_TAU
) -> ABReport:
    """The report of one experiment from the posts (all of them: the experiment's and the
    authors' earlier ones), columns as `COLUMNS`."""
    posts = labelled(posts)
    mine = posts[posts.experiment == experiment].sort_values("created_at")
    if mine.empty:
        known = sorted(posts.experiment.dropna().unique())
        listed = ", ".join(known) if known else "none"
        raise AnalyticsError(f"experiment {experiment!r}: no posts (experiments: {listed})")
    counts = mine.variant.value_counts()
    if len(counts) < 2:
        raise AnalyticsError(f"experiment {experiment!r}: only variant {counts.index[0]!r}")
    small = counts[counts < MIN_POSTS]
    if len(small):
        raise AnalyticsError(
            f"experiment {experiment!r}: variant {small.index[0]!r} has {small.iloc[0]} post(s); "
            f"at least {MIN_POSTS} are needed"
        )
    names = sorted(counts.index)
    control = CONTROL if CONTROL in names else names[0]
    start, end = mine.created_at.min(), mine.created_at.max()
    rates = author_pre_rates(posts, start)
    covariate = mine.user_id.map(rates)
    covered = float(covariate.notna().mean())
    fill = float(rates.mean()) if len(rates) else 0.0
    y = mine.engagement_rate.to_numpy(dtype=float)
    adjusted, theta = cuped_adjusted(y, covariate.fillna(fill).to_numpy(dtype=float))
    day = ((mine.created_at - start) / pd.Timedelta(days=1)).to_numpy().astype(int)
    variant = mine.variant.to_numpy()
    is_a = variant == control
    variants = [
        VariantRate(
            str(name),
            int((variant == name).sum()),
            int(mine.reach[variant == name].sum()),
            *_rate(y[variant == name], alpha),
        )
        for name in names
    ]
    comparisons = []
    for name in names:
        if name == control:
            continue
        is_b = variant == name
        plain = estimate(y[is_a], y[is_b], alpha)
        cuped = estimate(adjusted[is_a], adjusted[is_b], alpha)
        pair = is_a | is_b
        looks = sequential_test(y[pair], is_b[pair], day[pair], tau=tau, alpha=alpha)
        comparisons.append(
            Comparison(
                str(name),
                plain,
                cuped,
                cuped.width / plain.width if plain.width > 0 else float("nan"),
                looks[-1].p_value,
                looks[-1].ci_low,
                looks[-1].ci_high,
                len(looks),
            )
        )
    return ABReport(
        experiment, str(control), start, end, 1 - alpha, theta, covered, variants, comparisons
    )


def read_posts(warehouse: Warehouse) -> pd.DataFrame:
    """The posts with their engagement rate, experiment and variant (after `smap ingest`)."""
    if not warehouse.exists(POSTS.name):
        raise AnalyticsError(f"{POSTS.name} is not built yet (run `smap ingest`)")
    posts = warehouse.read(POSTS.name, columns=COLUMNS)
    return posts[posts.engagement_rate.notna()]


def experiments(posts: pd.DataFrame) -> list[str]:
    return sorted(labelled(posts).experiment.dropna().unique())


def report(
    warehouse: Warehouse, experiment: str, alpha: float = 0.05, tau: float = DEFAULT_TAU
) -> ABReport:
    """`analyse` on the warehouse's posts."""
    _check_level(alpha, "alpha")
    return analyse(read_posts(warehouse), experiment, alpha, tau)


def _check_level(value: float, name: str) -> None:
    if not 0 < value < 1:
        raise AnalyticsError(f"{name}: must be between 0 and 1 (got {value})")


def plan(
    baseline_rate: float,
    lift: float,
    power: float = 0.8,
    alpha: float = 0.05,
    sd: float | None = None,
) -> Plan:
    """Posts per variant to detect a relative `lift` on `baseline_rate` (two-sided test);
    with `sd`, the per-post standard deviation of the rate, on Cohen's d."""
    _check_level(baseline_rate, "baseline-rate")
    _check_level(power, "power")
    _check_level(alpha, "alpha")
    target = baseline_rate * (1 + lift)
    if lift == 0:
        raise AnalyticsError("lift: must not be 0 (no sample size detects no effect)")
    if not 0 < target < 1:
        raise AnalyticsError(
            f"lift: baseline-rate * (1 + lift) = {target:.4g} is not a rate between 0 and 1"
        )
    if sd is not None and not sd > 0:
        raise AnalyticsError(f"sd: must be above 0 (got {sd})")
    if sd is None:
        effect, kind = float(proportion_effectsize(target, baseline_rate)), "Cohen's h"
    else:
        effect, kind = (target - baseline_rate) / sd, "Cohen's d"
    with warnings.catch_warnings():  # a vanishing effect: the solver warns, then gives nan
        warnings.simplefilter("ignore")
        n = math.nan
        if effect != 0:
            n = NormalIndPower().solve_power(
                effect_size=effect, alpha=alpha, power=power, ratio=1.0, alternative="two-sided"
            )
    if not math.isfinite(float(n)):
        raise AnalyticsError(
            f"lift: {lift:.4g} is too small to plan for ({kind} {effect:.3g}: no sample size "
            "detects it)"
        )
    return Plan(baseline_rate, lift, target, effect, kind, power, alpha, math.ceil(float(n)))
