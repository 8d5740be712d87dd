"""The statistics every report shares: intervals over runs, exact tests for few runs, and Holm's correction.

The unit of replication is whatever the caller passes one value per (usually one PPO run, summarised within the run
first). The tests are exact where the number of runs allows it, because the suite's presets run 2–5 seeds per arm and a
t-test's normal approximation means little there:

* :func:`sign_flip_test` — the paired randomisation test: under H0 each paired difference is as likely to be +d as −d,
  so the p-value is the share of the 2ⁿ sign assignments whose mean is at least as extreme as the observed one
  (Fisher 1935, *The Design of Experiments*, §21). With n pairs the smallest p it can give is 2⁻ⁿ (one-sided).
* :func:`permutation_test` — the two-sample randomisation test over every split of the pooled values.
* :func:`holm` — Holm's step-down adjustment (Holm 1979, *Scand. J. Statist.* 6:65–70).
* :func:`iqm` and :func:`bootstrap_ci` — the interquartile mean and a percentile bootstrap over runs, the aggregate
  Agarwal et al. (2021, *Deep RL at the Edge of the Statistical Precipice*) recommend; with one task their stratified
  bootstrap is a plain bootstrap over runs, which is what this computes (their ``rliable`` package would add pandas,
  seaborn and arch for that).
* :func:`mean_ci` / :func:`paired_t_interval` — Student-t intervals, the conservative choice for equivalence and
  non-inferiority margins at small n (a bootstrap interval over three values is far too narrow).
"""

from __future__ import annotations

import itertools
import math
from typing import Literal, Sequence

import numpy as np
from scipy import stats

__all__ = [
    "finite",
    "paired_differences",
    "mean_ci",
    "paired_t_interval",
    "welch_test",
    "iqm",
    "bootstrap_ci",
    "sign_flip_test",
    "permutation_test",
    "smallest_sign_flip_p",
    "holm",
    "SUPPORTED",
    "NOT_SUPPORTED",
    "INCONCLUSIVE",
    "NOT_TESTABLE",
]

#: The verdict vocabulary of every report. "inconclusive": the data could have decided but did not; "not testable at
#: this scale": they could not have (too few runs for the exact test to reach α, no unit ever in the set, the agent
#: never learned), and the report row says which.
SUPPORTED, NOT_SUPPORTED = "supported", "not supported"
INCONCLUSIVE, NOT_TESTABLE = "inconclusive", "not testable at this scale"

Alternative = Literal["greater", "less", "two-sided"]

#: Above this many sign assignments or splits the tests fall back to a seeded Monte-Carlo sample of them.
EXACT_LIMIT = 1 << 20
MONTE_CARLO_DRAWS = 200_000


def finite(values: Sequence[float]) -> np.ndarray:
    """The values as float64 with NaN dropped."""
    x = np.asarray(values, dtype=np.float64).ravel()
    return x[~np.isnan(x)]


def paired_differences(a: Sequence[float], b: Sequence[float]) -> np.ndarray:
    """``a[i] − b[i]`` for the pairs where neither value is NaN."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired samples need equal lengths, got {a.shape} and {b.shape}")
    keep = ~(np.isnan(a) | np.isnan(b))
    return a[keep] - b[keep]


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t confidence interval ``mean ± t_{(1+c)/2, n−1} · s/√n``.

    NaN values are dropped first; with a single value the bounds are NaN (no interval from one value)."""
    x = finite(values)
    if x.size == 0:
        return math.nan, math.nan, math.nan
    m = float(x.mean())
    if x.size == 1:
        return m, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + confidence / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return m, m - half, m + half


def paired_t_interval(a: Sequence[float], b: Sequence[float], confidence: float = 0.90) -> tuple[float, float, float]:
    """Mean of the paired differences ``a − b`` and its Student-t interval. At confidence 1 − 2α this is the interval
    of the two one-sided tests (TOST) at level α: equivalence within ±m holds when it lies inside (−m, m)."""
    return mean_ci(paired_differences(a, b), confidence)


def welch_test(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float]:
    """Welch's unequal-variance t-test of mean(a) = mean(b): (t, Welch–Satterthwaite df, two-sided p)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1)) if va + vb > 0 else math.nan
    res = stats.ttest_ind(a, b, equal_var=False)
    return float(res.statistic), float(df), float(res.pvalue)


def iqm(values: Sequence[float]) -> float:
    """Interquartile mean: the mean of the middle 50 % (``scipy.stats.trim_mean(x, 0.25)``, which trims
    ⌊n/4⌋ values at each end, so with fewer than four values it is the plain mean). NaN dropped; NaN when empty."""
    x = finite(values)
    return float(stats.trim_mean(x, 0.25)) if x.size else math.nan


def bootstrap_ci(
    values: Sequence[float],
    statistic: Literal["iqm", "mean"] = "iqm",
    confidence: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """The interquartile mean (or mean) of the values and its percentile bootstrap interval over the values
    (resampled with replacement by a seeded generator, so a report is reproducible). NaN dropped; bounds NaN with
    fewer than two values."""
    reducers = {"iqm": lambda a: stats.trim_mean(a, 0.25, axis=-1), "mean": lambda a: a.mean(axis=-1)}
    if statistic not in reducers:
        raise ValueError(f"statistic must be 'iqm' or 'mean', got {statistic!r}")
    x = finite(values)
    if x.size == 0:
        return math.nan, math.nan, math.nan
    point = float(reducers[statistic](x))
    if x.size == 1:
        return point, math.nan, math.nan
    draws = reducers[statistic](x[np.random.default_rng(seed).integers(0, x.size, (resamples, x.size))])
    lo, hi = np.quantile(draws, [(1 - confidence) / 2, (1 + confidence) / 2])
    return point, float(lo), float(hi)


def _tail_share(null: np.ndarray, observed: float, alternative: Alternative) -> float:
    # Sums of the same numbers in another order can differ in the last bits: compare with a relative tolerance.
    tol = 1e-12 * max(1.0, float(np.max(np.abs(null))), abs(observed))
    if alternative == "greater":
        hits = null >= observed - tol
    elif alternative == "less":
        hits = null <= observed + tol
    elif alternative == "two-sided":
        hits = np.abs(null) >= abs(observed) - tol
    else:
        raise ValueError(f"alternative must be 'greater', 'less' or 'two-sided', got {alternative!r}")
    return float(hits.mean())


def sign_flip_test(diffs: Sequence[float], alternative: Alternative = "greater", seed: int = 0) -> float:
    """Exact paired randomisation test of H0 "the differences are symmetric about 0" against mean > 0 (``greater``),
    < 0 (``less``) or ≠ 0. NaN dropped; NaN when no difference is left. Exact over all 2ⁿ sign assignments up to
    2²⁰ of them, else over a seeded Monte-Carlo sample that includes the observed assignment."""
    d = finite(diffs)
    if d.size == 0:
        return math.nan
    if 2**d.size <= EXACT_LIMIT:
        signs = 1 - 2 * ((np.arange(2**d.size)[:, None] >> np.arange(d.size)) & 1)
    else:
        signs = np.random.default_rng(seed).choice(np.array([-1, 1]), (MONTE_CARLO_DRAWS, d.size))
        signs[0] = 1
    return _tail_share(signs @ d, float(d.sum()), alternative)


def smallest_sign_flip_p(n: int, alternative: Alternative = "greater") -> float:
    """The smallest p-value :func:`sign_flip_test` can return with n non-zero differences."""
    return 2.0**-n * (2 if alternative == "two-sided" else 1) if n else math.nan


def permutation_test(
    a: Sequence[float], b: Sequence[float], alternative: Alternative = "greater", seed: int = 0
) -> float:
    """Exact two-sample randomisation test of mean(a) − mean(b) against H0 "the labels are exchangeable": the share
    of the C(n+m, n) splits of the pooled values whose difference is at least as extreme. Seeded Monte Carlo beyond
    2²⁰ splits. NaN when either side is empty after dropping NaN."""
    x, y = finite(a), finite(b)
    if x.size == 0 or y.size == 0:
        return math.nan
    pooled = np.concatenate([x, y])
    n, total = x.size, pooled.size
    if math.comb(total, n) <= EXACT_LIMIT:
        picks = np.array(list(itertools.combinations(range(total), n)))
    else:
        rng = np.random.default_rng(seed)
        picks = np.argsort(rng.random((MONTE_CARLO_DRAWS, total)), axis=1)[:, :n]
        picks[0] = np.arange(n)
    in_a = pooled[picks].sum(axis=1)
    null = in_a / n - (pooled.sum() - in_a) / (total - n)
    return _tail_share(null, float(x.mean() - y.mean()), alternative)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values in the input order: sort ascending, multiply the i-th smallest (0-based) by m − i,
    carry the running maximum, cap at 1. A NaN p (a test that could not be run) stays NaN and does not count in m."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, math.nan)
    tested = np.flatnonzero(~np.isnan(p))
    m = tested.size
    running = 0.0
    for i, idx in enumerate(tested[np.argsort(p[tested], kind="stable")]):
        running = max(running, min(1.0, (m - i) * p[idx]))
        out[idx] = running
    return out.tolist()
