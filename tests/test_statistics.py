"""The shared statistics: every estimator against values computed by hand."""

import math

import numpy as np
import pytest

from ocp.statistics import (
    bootstrap_ci,
    holm,
    iqm,
    mean_ci,
    paired_differences,
    paired_t_interval,
    permutation_test,
    sign_flip_test,
    smallest_sign_flip_p,
)


def test_paired_differences_drop_incomplete_pairs():
    assert paired_differences([3.0, math.nan, 5.0], [1.0, 2.0, math.nan]).tolist() == [2.0]
    with pytest.raises(ValueError, match="equal lengths"):
        paired_differences([1.0], [1.0, 2.0])


def test_sign_flip_test_enumerates_every_assignment():
    # d = (1, 2, 3): the 8 sign sums are ±1 ±2 ±3 = 6, 4, 2, 0, 0, -2, -4, -6; only +6 reaches the observed 6.
    assert sign_flip_test([1.0, 2.0, 3.0], "greater") == 1 / 8
    assert sign_flip_test([1.0, 2.0, 3.0], "less") == 1.0
    assert sign_flip_test([1.0, 2.0, 3.0], "two-sided") == 2 / 8
    # d = (1, -2, 3): observed 2; sums >= 2 are 6, 4, 2 (the observed, +1-2+3) → 3/8.
    assert sign_flip_test([1.0, -2.0, 3.0], "greater") == 3 / 8
    # A zero difference contributes the same sum under both signs: (0, 1) → sums 1, 1, -1, -1.
    assert sign_flip_test([0.0, 1.0], "greater") == 0.5
    assert sign_flip_test([0.0, 0.0], "greater") == 1.0
    assert math.isnan(sign_flip_test([math.nan]))
    assert smallest_sign_flip_p(3) == 1 / 8 and smallest_sign_flip_p(3, "two-sided") == 1 / 4


def test_sign_flip_test_tolerates_summation_order():
    # 0.1 + 0.2 + 0.3 differs from 0.3 + 0.2 + 0.1 in the last bit; the observed assignment must still count.
    assert sign_flip_test([0.1, 0.2, 0.3], "greater") == 1 / 8


def test_permutation_test_enumerates_every_split():
    # a = (3, 4), b = (1, 2): of the C(4,2) = 6 splits only {3,4} gives the observed difference 2 → 1/6.
    assert permutation_test([3.0, 4.0], [1.0, 2.0], "greater") == 1 / 6
    assert permutation_test([3.0, 4.0], [1.0, 2.0], "two-sided") == 2 / 6
    # a = (1, 4), b = (2, 3): difference 0; splits with a difference >= 0: {1,4},{2,3},{3,4},{2,4} → 4/6.
    assert permutation_test([1.0, 4.0], [2.0, 3.0], "greater") == 4 / 6
    assert math.isnan(permutation_test([], [1.0]))


def test_holm_step_down():
    # m = 3: sorted 0.01, 0.02, 0.04 → 0.03, 0.04, max(0.04, 0.04) = 0.04; input order restored; NaN not counted.
    assert holm([0.04, 0.01, math.nan, 0.02]) == pytest.approx([0.04, 0.03, math.nan, 0.04], nan_ok=True)
    assert holm([0.5, 0.6]) == [1.0, 1.0]
    assert holm([]) == []


def test_iqm_trims_a_quarter_at_each_end():
    assert iqm([1.0, 2.0, 3.0]) == 2.0  # n < 4: nothing trimmed
    assert iqm([0.0, 1.0, 2.0, 100.0]) == 1.5  # one value trimmed at each end
    assert iqm([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]) == 4.5  # two at each end: mean of 3..6
    assert math.isnan(iqm([math.nan]))


def test_bootstrap_ci_is_seeded_and_spans_the_values():
    point, lo, hi = bootstrap_ci([1.0, 2.0, 3.0, 10.0], statistic="mean", resamples=2000, seed=3)
    assert point == 4.0
    assert 1.0 <= lo < point < hi <= 10.0
    assert bootstrap_ci([1.0, 2.0, 3.0, 10.0], statistic="mean", resamples=2000, seed=3) == (point, lo, hi)
    assert math.isnan(bootstrap_ci([5.0])[1])
    # Constant values: every resample gives the same statistic.
    assert bootstrap_ci([2.0, 2.0, 2.0]) == (2.0, 2.0, 2.0)
    # Each resample's IQM trims a quarter at each end: the same draws reduced one by one give the same interval.
    x = np.array([0.0, 1.0, 2.0, 100.0])
    idx = np.random.default_rng(7).integers(0, 4, (500, 4))
    one_by_one = [np.sort(x[i])[1:3].mean() for i in idx]
    assert bootstrap_ci(x, resamples=500, seed=7) == (1.5, *np.quantile(one_by_one, [0.025, 0.975]))
    with pytest.raises(ValueError, match="statistic"):
        bootstrap_ci([1.0, 2.0], statistic="median")


def test_t_intervals():
    # Student's t with 2 degrees of freedom has the closed-form quantile t_p = (2p − 1) / √(2p(1 − p)).
    def t2(p):
        return (2 * p - 1) / math.sqrt(2 * p * (1 - p))

    # (1, 2, 3): mean 2, s = 1 → half width t_{0.975} / √3.
    m, lo, hi = mean_ci([1.0, 2.0, 3.0])
    assert m == 2.0 and hi - m == pytest.approx(t2(0.975) / math.sqrt(3), rel=1e-12) and m - lo == hi - m
    # Paired: differences (1, 1, 4) → mean 2, s = √3 → half width t_{0.95} · √3 / √3.
    m, lo, hi = paired_t_interval([2.0, 3.0, 7.0], [1.0, 2.0, 3.0], confidence=0.90)
    assert m == 2.0 and hi - m == pytest.approx(t2(0.95), rel=1e-12)
