"""The mSPRT's always-valid p-value and confidence sequence, on simulated streams."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from analytics.sequential import (
    DEFAULT_TAU,
    confidence_radius,
    mixture_log_lr,
    sequential_from_estimates,
    sequential_test,
)


def _stream(rng: np.random.Generator, effect: float, n: int = 2000, looks: int = 20):
    treated = rng.random(n) < 0.5
    values = rng.normal(0.0, 1.0, n) + effect * treated
    return values, treated, np.repeat(np.arange(looks), n // looks)


def test_log_lr_is_the_ratio_of_the_two_normal_densities():
    diff, variance, tau = 0.3, 0.02, 0.2
    direct = stats.norm.pdf(diff, 0, np.sqrt(variance + tau**2)) / stats.norm.pdf(
        diff, 0, np.sqrt(variance)
    )
    assert np.exp(mixture_log_lr(diff, variance, tau)) == pytest.approx(direct)
    # the radius is where Lambda(theta0) reaches 1 / alpha
    r = confidence_radius(variance, tau, 0.05)
    assert mixture_log_lr(diff, variance, tau, null=diff - r) == pytest.approx(np.log(20))


def test_p_never_increases_and_the_interval_only_narrows():
    values, treated, look = _stream(np.random.default_rng(1), effect=0.05)
    looks = sequential_test(values, treated, look)
    p = [x.p_value for x in looks]
    assert all(b <= a for a, b in zip(p, p[1:], strict=False))
    assert all(
        b.ci_low >= a.ci_low and b.ci_high <= a.ci_high
        for a, b in zip(looks, looks[1:], strict=False)
    )
    assert looks[-1].n_a + looks[-1].n_b == len(values)
    assert looks[-1].diff == pytest.approx(values[treated].mean() - values[~treated].mean())


def test_a_null_stream_peeked_at_every_look_rejects_at_most_alpha():
    rejected = []
    for seed in range(300):
        values, treated, look = _stream(np.random.default_rng(seed), effect=0.0)
        rejected.append(min(x.p_value for x in sequential_test(values, treated, look)) < 0.05)
    assert np.mean(rejected) <= 0.05
    # the fixed-horizon t-test read at the same 20 looks rejects far more often
    naive = []
    for seed in range(300):
        values, treated, look = _stream(np.random.default_rng(seed), effect=0.0)
        ps = [
            stats.ttest_ind(values[(look <= k) & treated], values[(look <= k) & ~treated]).pvalue
            for k in range(20)
        ]
        naive.append(min(ps) < 0.05)
    assert np.mean(naive) > 2 * np.mean(rejected) + 0.05


def test_a_real_effect_is_found_and_covered_at_every_look():
    found, covered = [], []
    for seed in range(100):
        values, treated, look = _stream(np.random.default_rng(seed), effect=0.2)
        looks = sequential_test(values, treated, look, tau=DEFAULT_TAU)
        found.append(looks[-1].p_value < 0.05)
        covered.append(all(x.ci_low <= 0.2 <= x.ci_high for x in looks))
    assert np.mean(found) >= 0.9
    assert np.mean(covered) >= 0.95


def test_looks_with_too_few_observations_are_not_tested():
    looks = sequential_test(np.array([1.0, 2.0, 3.0]), np.array([True, False, True]), np.arange(3))
    assert [x.p_value for x in looks] == [1.0, 1.0, 1.0]
    assert looks[0].ci_low == -np.inf and looks[0].ci_high == np.inf


def test_estimates_made_elsewhere_go_through_the_same_test():
    looks = sequential_from_estimates(
        np.arange(3),
        np.full(3, 100),
        np.full(3, 100),
        np.array([0.5, 0.4, 0.45]),
        np.array([0.04, 0.02, 0.01]),
        np.full(3, 0.3),
    )
    assert looks[-1].p_value < looks[0].p_value < 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"tau": 0.0}, "tau"), ({"alpha": 1.0}, "alpha")],
)
def test_bad_parameters_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sequential_test(np.ones(4), np.array([0, 1, 0, 1]), np.zeros(4), **kwargs)
