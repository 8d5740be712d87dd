"""The claims report: each empirical claim of the paper, the numbers measured for it, and a verdict.

The unit of replication is the PPO run (one seed): every statistic is first summarised within a run (over time and,
where the claim allows, over layers and networks), and only these per-run values are compared. Where the design is
paired — the arms of one seed share the environment seeds; actor and critic belong to one run — the comparison is
paired. Decision rules are fixed before looking at any result (:class:`Criteria`, every value documented and
configurable):

* A directional sub-test ("ReLU converges faster") is the exact sign-flip test of the per-run paired differences
  (``ocp.statistics.sign_flip_test``), one-sided at α in the claimed direction and, separately, in the opposite one,
  with Holm's correction over the directional sub-tests of the claim. With n paired runs the smallest p it can give is
  2⁻ⁿ: when even that cannot pass Holm's threshold α/m, the sub-test is *not testable at this scale*.
* A criterion on a level (C1's matching final return, C3's coincidence, C4's persistence, C6's non-inferiority) is
  decided by where the Student-t interval at 1 − 2α of the per-run values lies (the two one-sided tests' interval).
* Every per-arm value is shown as the interquartile mean over runs with a 95 % percentile bootstrap interval.
* A claim is *supported* when every sub-test is, *not supported* when any sub-test goes significantly against it,
  *not testable at this scale* when the data could not decide (no unit ever in the set, the agent never learned, too
  few runs) and *inconclusive* otherwise; the row says which and why.

Reads only the tables and stored masks of a results folder.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, Optional, Sequence

import numpy as np
import torch

from ocp import metrics
from ocp.atomic_files import atomic_write_bytes
from ocp.runlog import mask_key
from ocp.statistics import (
    INCONCLUSIVE,
    NOT_SUPPORTED,
    NOT_TESTABLE,
    SUPPORTED,
    bootstrap_ci,
    finite,
    holm,
    iqm,
    mean_ci,
    paired_differences,
    sign_flip_test,
)
from ocp.tables import Results, to_float, unpack_tables
from ocp.transfer_statistics import c2_verdict

__all__ = [
    "Criteria",
    "Claim",
    "evaluate_claims",
    "write_report",
    "SUPPORTED",
    "NOT_SUPPORTED",
    "INCONCLUSIVE",
    "NOT_TESTABLE",
]


@dataclass(frozen=True)
class Criteria:
    """The pre-registered decision rules."""

    alpha: float = 0.05
    """One-sided level of every test: a directional sub-test passes when its Holm-adjusted exact p ≤ α; a level
    criterion is decided by the Student-t interval at 1 − 2α."""
    correction: Literal["holm", "none"] = "holm"
    """Multiple-comparison correction over the directional sub-tests of each claim. Holm controls the family-wise
    error of the claim; for a claim that needs every sub-test it is conservative."""
    tau: float = 0.025
    """Threshold of the dormant and zero-gradient sets the verdicts use (as in the figures)."""
    other_taus: tuple[float, ...] = (0.0, 0.1)
    """Thresholds shown beside ``tau`` in the C3–C5 rows (τ = 0 is Definition 1's exact zero); no verdict rests on
    them."""
    late_fraction: float = 0.25
    """"Late in training" = the last quarter of a run's measurements."""
    learned_gain: float = 500.0
    """A run has learned its task when its late recent return exceeds its first one by at least this much (HalfCheetah:
    a random policy scores about −300 per 1,000-step episode, CleanRL's PPO about 1,400 after 1M steps). Without
    learning there is no speed to compare (C1) and no plasticity for an intervention to keep (C6)."""
    speed_fraction: float = 0.5
    """C1's learning speed: environment steps until a run's recent return first reaches start + this fraction of
    (final − start), where start is the mean first return of all runs of both arms and final the lower of the two
    arms' interquartile-mean late returns (a level both arms reach on average). A run that never reaches it counts as
    taking its whole length (censored, reported)."""
    final_equivalence_margin: float = 0.1
    """C1's "matching final performance": the 1 − 2α interval of the paired late-return difference (ReLU − No-Act)
    lies within ±this fraction of No-Act's learning gain (late − first return)."""
    coincidence_jaccard: float = 0.8
    """C3: the per-run mean Jaccard index |D∩Z|/|D∪Z| of the dormant and zero-gradient sets needed to call them
    coincident (the interval's lower end must reach it)."""
    persistence: float = 0.9
    """C4: the per-run mean share of zero-gradient units still zero-gradient at the next measurement needed for "no
    recovery" (the interval's lower end must reach it)."""
    long_horizon: float = 0.25
    """C4 also shows persistence between measurements this fraction of a run apart (a long horizon beside the
    verdict's next-measurement one: a unit that stays trapped for a quarter of training has not recovered); no verdict
    rests on it."""
    equivalence_margin: float = 0.1
    """C2: "learns as well as" means the 1 − 2α interval of (pretrained − random) final test MSE lies within ±this
    fraction of the random-init mean (an equivalence test, not an absence of evidence)."""
    perturb_arm: str = "gradient_perturb"
    """C6: the task-switch arm that perturbs trapped (zero-gradient) neurons."""
    constraint_arms: tuple[str, ...] = ("l2_init", "weight_clipping")
    """C6: the task-switch arms that constrain the parameters."""
    noninferiority_margin: float = 0.1
    """C6 "does not hurt": the 1 − 2α interval of the paired (perturbation − none) post-switch return has its lower
    end above −this fraction of the none arm's learning gain on the first task (a non-inferiority test)."""


@dataclass
class Claim:
    id: str
    statement: str
    unit: str
    """The unit of replication and how values are summarised within it."""
    measured: str
    verdict: str


def _fmt(x: Optional[float], digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}g}"


def _agg(values: Sequence[float]) -> str:
    """Interquartile mean over runs, its 95 % bootstrap interval and the runs' values."""
    x = finite(values)
    if x.size == 0:
        return "n/a (no run has a value)"
    point, lo, hi = bootstrap_ci(x)
    each = ", ".join(_fmt(float(v)) for v in x)
    return f"IQM {_fmt(point)} [{_fmt(lo)}, {_fmt(hi)}] (n={x.size}: {each})"


def _late(series: dict[float, float], fraction: float) -> float:
    xs = sorted(x for x, v in series.items() if not math.isnan(v))
    if not xs:
        return math.nan
    late = xs[int(len(xs) * (1 - fraction)) :] or xs[-1:]
    return float(np.mean([series[x] for x in late]))


def _first(series: dict[float, float]) -> float:
    xs = sorted(x for x, v in series.items() if not math.isnan(v))
    return series[xs[0]] if xs else math.nan


def _by_seed(series: dict[int, dict[float, float]], summary: Callable[[dict[float, float]], float]) -> dict[int, float]:
    return {seed: summary(s) for seed, s in series.items()}


def _paired(a: dict[int, float], b: dict[int, float]) -> tuple[list[float], list[float]]:
    """The values of the seeds both arms ran, in seed order."""
    seeds = sorted(set(a) & set(b))
    return [a[s] for s in seeds], [b[s] for s in seeds]


# ----------------------------------------------------------------------------------------------------------------
# Decision rules
# ----------------------------------------------------------------------------------------------------------------


def _combine(verdicts: Sequence[str]) -> str:
    """A conjunctive claim's verdict from its sub-verdicts (each may carry a reason in parentheses)."""
    heads = [v.split(" (")[0] for v in verdicts]
    if NOT_SUPPORTED in heads:
        return NOT_SUPPORTED
    if heads and all(h == SUPPORTED for h in heads):
        return SUPPORTED
    untestable = [v for v in verdicts if v.startswith(NOT_TESTABLE)]
    return untestable[0] if untestable else INCONCLUSIVE


def directional_tests(diffs: dict[str, Sequence[float]], c: Criteria) -> dict[str, tuple[str, float, float]]:
    """Each named sub-test asks whether its paired differences are > 0. Returns ``{name: (verdict, adjusted p for,
    adjusted p against)}``: the exact sign-flip p in each direction, Holm-adjusted over the sub-tests (per
    ``c.correction``)."""
    m = len(diffs) if c.correction == "holm" else 1
    names, p_for, p_against, untestable = list(diffs), [], [], {}
    for name in names:
        d = finite(diffs[name])
        n = int(np.count_nonzero(d))  # a zero difference is the same under both signs
        if d.size == 0:
            untestable[name] = "no run has both values"
        elif n == 0:
            untestable[name] = f"all {d.size} paired differences are exactly 0"
        elif m * 2.0**-n > c.alpha:
            untestable[name] = (
                f"{n} paired run{'s' if n > 1 else ''} with a non-zero difference: the exact test's smallest p is "
                f"2^-{n} = {2.0**-n:.3g}" + (f", Holm over {m} tests needs ≤ {c.alpha / m:.3g}" if m > 1 else "")
            )
        # An untestable sub-test still counts in Holm's family (as p = 1), so every row is corrected over m tests.
        testable = name not in untestable
        p_for.append(sign_flip_test(d, "greater") if testable else 1.0)
        p_against.append(sign_flip_test(d, "less") if testable else 1.0)
    if c.correction == "holm":
        p_for, p_against = holm(p_for), holm(p_against)
    p_for = [math.nan if n in untestable else p for n, p in zip(names, p_for)]
    p_against = [math.nan if n in untestable else p for n, p in zip(names, p_against)]
    out = {}
    for name, pf, pa in zip(names, p_for, p_against):
        if name in untestable:
            out[name] = (f"{NOT_TESTABLE} ({untestable[name]})", pf, pa)
        else:
            out[name] = (SUPPORTED if pf <= c.alpha else NOT_SUPPORTED if pa <= c.alpha else INCONCLUSIVE, pf, pa)
    return out


def _directional_text(name: str, result: tuple[str, float, float]) -> str:
    verdict, pf, pa = result
    if verdict.startswith(NOT_TESTABLE):
        return f"{name}: {verdict}"
    return f"{name}: exact p (Holm) {_fmt(pf)} for, {_fmt(pa)} against → {verdict}"


def level_test(values: Sequence[float], low: float, high: float, c: Criteria) -> tuple[str, float, float, float]:
    """Is the mean of the per-run values inside [low, high]? Returns (verdict, mean, interval low, interval high) with
    the Student-t interval at 1 − 2α: supported when it lies inside, not supported when it lies wholly outside."""
    m, lo, hi = mean_ci(values, 1 - 2 * c.alpha)
    if math.isnan(lo):
        return f"{NOT_TESTABLE} (fewer than 2 runs with a value)", m, lo, hi
    if low <= lo and hi <= high:
        return SUPPORTED, m, lo, hi
    if hi < low or lo > high:
        return NOT_SUPPORTED, m, lo, hi
    return INCONCLUSIVE, m, lo, hi


def _other_taus(c: Criteria, per_run: Callable[[float], Sequence[float]]) -> str:
    """The same per-run statistic at the other thresholds, for the reader (no verdict rests on it)."""
    return "".join(f"; at τ={tau:g}: {_agg(per_run(tau))}" for tau in c.other_taus)


def _interval(m: float, lo: float, hi: float, c: Criteria) -> str:
    return f"{_fmt(m)} [{_fmt(lo)}, {_fmt(hi)}] ({1 - 2 * c.alpha:.0%} t)"


# ----------------------------------------------------------------------------------------------------------------
# C1: learning speed and dormancy
# ----------------------------------------------------------------------------------------------------------------


def steps_to_reach(series: dict[float, float], level: float) -> tuple[float, bool]:
    """The first x (environment step) at which the series reaches ``level``; (last x, False) when it never does."""
    xs = sorted(x for x, v in series.items() if not math.isnan(v))
    for x in xs:
        if series[x] >= level:
            return x, True
    return (xs[-1] if xs else math.nan), False


def claim_c1(res: Results, c: Criteria) -> Claim:
    statement = (
        "ReLU PPO converges faster than No-Act PPO and matches its final return, with more dormant neurons (Fig. 1)"
    )
    unit = "PPO run (seed), paired by seed; per run: steps to the speed level, late return, late dormant fraction"
    returns = {arm: res.metric_series(arm, "return_recent") for arm in ("relu", "no-act")}
    if not all(returns.values()):
        return Claim("C1", statement, unit, "ReLU or No-Act runs missing", f"{NOT_TESTABLE} (an arm was not run)")
    first = {arm: _by_seed(s, _first) for arm, s in returns.items()}
    late = {arm: _by_seed(s, lambda x: _late(x, c.late_fraction)) for arm, s in returns.items()}
    gain = {arm: float(np.nanmean([late[arm][k] - first[arm][k] for k in late[arm]])) for arm in late}
    start = float(np.nanmean([v for arm in first for v in first[arm].values()]))
    final = min((v for v in (iqm(list(late[arm].values())) for arm in late) if not math.isnan(v)), default=math.nan)
    level = start + c.speed_fraction * (final - start)
    reach = {arm: {k: steps_to_reach(s, level) for k, s in returns[arm].items()} for arm in returns}
    steps = {arm: {k: v[0] for k, v in reach[arm].items()} for arm in reach}
    never = {arm: sum(not ok for _, ok in reach[arm].values()) for arm in reach}

    def late_dormancy_of(arm: str, net: str, tau: float) -> dict[int, float]:
        """Per seed: the late dormant fraction of the network's hidden units."""
        series = res.plasticity_series(arm, net, "network", "dormant_ratio", tau)
        return {r.seed: _late(series[r.seed], c.late_fraction) for r in res.runs_of(arm)}

    late_dormancy = {
        (arm, net, tau): late_dormancy_of(arm, net, tau)
        for arm in ("relu", "no-act")
        for net in ("actor", "critic")
        for tau in (c.tau, *c.other_taus)
    }

    def mean_of_networks(arm: str, tau: float) -> dict[int, float]:
        actor, critic = late_dormancy[(arm, "actor", tau)], late_dormancy[(arm, "critic", tau)]
        return {seed: float(np.mean([actor[seed], critic[seed]])) for seed in actor}

    dorm = {arm: mean_of_networks(arm, c.tau) for arm in ("relu", "no-act")}
    by_network = "; ".join(
        f"{label} {net} {_agg(list(late_dormancy[(arm, net, c.tau)].values()))}"
        for arm, label in (("relu", "ReLU"), ("no-act", "No-Act"))
        for net in ("actor", "critic")
    )
    other_taus = "; ".join(
        f"at τ={tau:g}: ReLU {_agg(list(mean_of_networks('relu', tau).values()))}, "
        f"No-Act {_agg(list(mean_of_networks('no-act', tau).values()))}"
        for tau in c.other_taus
    )

    parts = [
        f"speed level {_fmt(level)} (start {_fmt(start)} + {c.speed_fraction:g} × (final {_fmt(final)} − start)); "
        f"steps to reach it: ReLU {_agg(list(steps['relu'].values()))}, No-Act {_agg(list(steps['no-act'].values()))}"
        f" (never reached: ReLU {never['relu']}, No-Act {never['no-act']})",
        f"late return: ReLU {_agg(list(late['relu'].values()))}, No-Act {_agg(list(late['no-act'].values()))}",
        f"late dormant fraction (τ={c.tau:g}, mean of actor and critic): ReLU {_agg(list(dorm['relu'].values()))}, "
        f"No-Act {_agg(list(dorm['no-act'].values()))}; by network: {by_network}; mean of actor and critic "
        f"{other_taus}",
    ]
    if not any(g >= c.learned_gain for g in gain.values()):  # NaN gains count as not learned
        parts.append(f"learning gain (late − first return): ReLU {_fmt(gain['relu'])}, No-Act {_fmt(gain['no-act'])}")
        return Claim(
            "C1",
            statement,
            unit,
            "; ".join(parts),
            f"{NOT_TESTABLE} (neither arm learned: gain below {c.learned_gain:g})",
        )
    slower, faster = _paired(steps["no-act"], steps["relu"])
    more, fewer = _paired(dorm["relu"], dorm["no-act"])
    tests = directional_tests(
        {
            "faster (No-Act − ReLU steps)": paired_differences(slower, faster),
            "more dormant (ReLU − No-Act)": paired_differences(more, fewer),
        },
        c,
    )
    relu_late, noact_late = _paired(late["relu"], late["no-act"])
    margin = c.final_equivalence_margin * abs(gain["no-act"])
    equivalent, m, lo, hi = level_test(paired_differences(relu_late, noact_late), -margin, margin, c)
    parts += [_directional_text(name, r) for name, r in tests.items()]
    parts.append(
        f"matching final return: ReLU − No-Act late return {_interval(m, lo, hi, c)} within ±{_fmt(margin)} "
        f"({c.final_equivalence_margin:.0%} of No-Act's gain {_fmt(gain['no-act'])}) → {equivalent}"
    )
    verdict = _combine([r[0] for r in tests.values()] + [equivalent])
    return Claim("C1", statement, unit, "; ".join(parts), verdict)


def claim_c2(res: Results, c: Criteria) -> Claim:
    measured, verdict = c2_verdict(
        res.transfer_table("summary.csv"), res.transfer_table("linear_floor.csv"), c.alpha, c.equivalence_margin
    )
    return Claim(
        "C2",
        "A dormant value network learns a dissimilar task (Eq. 1) as well as a random init (Fig. 3/5)",
        "PPO run (the critic of one seed); per run: mean paired difference over its regression seeds",
        measured,
        verdict,
    )


# ----------------------------------------------------------------------------------------------------------------
# C3, C4: the sets of neurons
# ----------------------------------------------------------------------------------------------------------------


def _runs_without_masks(res: Results, arm: str) -> str:
    """The seeds whose run folder holds no stored masks (probe off, or tables copied without them), as a reason."""
    seeds = [str(r.seed) for r in res.runs_of(arm) if not res.masks(r)]
    return f"{NOT_TESTABLE} (no stored neuron masks for seeds {', '.join(seeds)})" if seeds else ""


def _mask_sequences(res: Results, arm: str, kind: str, tau: float) -> dict[tuple[int, str, str], list[np.ndarray]]:
    """{(seed, network, layer): [mask at each measurement]} for the hidden layers."""
    out: dict[tuple[int, str, str], list[np.ndarray]] = {}
    for r in res.runs_of(arm):
        measurements = res.masks(r)
        for net in ("actor", "critic"):
            for layer in res.layers(net):
                key = mask_key(net, layer, kind, tau)
                out[(r.seed, net, layer)] = [
                    measurements[u][key] for u in sorted(measurements) if key in measurements[u]
                ]
    return out


def jaccard_per_run(
    dormant: dict[tuple[int, str, str], list[np.ndarray]], zero: dict[tuple[int, str, str], list[np.ndarray]]
) -> tuple[dict[int, float], dict[int, float], dict[str, int]]:
    """Per seed, the mean Jaccard index |D∩Z|/|D∪Z| over its (hidden layer, measurement) cases where D∪Z is not
    empty (NaN when there is none), the same mean with both-empty cases counted as full agreement (1), and the
    number of non-empty cases per ``network/layer``."""
    nonempty: dict[int, list[float]] = {}
    with_empty: dict[int, list[float]] = {}
    where: dict[str, int] = {}
    for key, seq in dormant.items():
        seed, net, layer = key
        for d, z in zip(seq, zero[key]):
            union = int((d | z).sum())
            with_empty.setdefault(seed, []).append(int((d & z).sum()) / union if union else 1.0)
            nonempty.setdefault(seed, [])
            if union:
                nonempty[seed].append(int((d & z).sum()) / union)
                where[f"{net}/{layer}"] = where.get(f"{net}/{layer}", 0) + 1
    mean = lambda v: float(np.mean(v)) if v else math.nan  # noqa: E731
    return ({s: mean(v) for s, v in nonempty.items()}, {s: mean(v) for s, v in with_empty.items()}, where)


def claim_c3(res: Results, c: Criteria, arm: str = "relu") -> Claim:
    statement = "Dormancy and zero gradient coincide in practice (Fig. 4/6)"
    unit = "PPO run (seed); per run: mean Jaccard over its hidden layers and measurements where D∪Z is not empty"
    if missing := _runs_without_masks(res, arm):
        return Claim("C3", statement, unit, "the sets come from the stored masks", missing)

    def at(tau: float):
        return jaccard_per_run(
            _mask_sequences(res, arm, "dormant", tau), _mask_sequences(res, arm, "zero_gradient", tau)
        )

    per_run, with_empty, where = at(c.tau)
    cases = ", ".join(f"{k} {v}" for k, v in sorted(where.items())) or "none"
    measured = (
        f"{arm} networks, τ={c.tau:g}: per-run mean Jaccard |D∩Z|/|D∪Z| {_agg(list(per_run.values()))}; "
        f"non-empty cases by layer: {cases}; cases with D and Z both empty are left out (counted as agreement "
        f"the per-run means would be {_agg(list(with_empty.values()))})"
        + _other_taus(c, lambda tau: list(at(tau)[0].values()))
    )
    if not where:
        return Claim(
            "C3",
            statement,
            unit,
            measured,
            f"{NOT_TESTABLE} (no dormant or zero-gradient unit at τ={c.tau:g} in any measurement)",
        )
    verdict, m, lo, hi = level_test(list(per_run.values()), c.coincidence_jaccard, math.inf, c)
    measured += f"; mean over runs {_interval(m, lo, hi, c)}, criterion ≥ {c.coincidence_jaccard}"
    return Claim("C3", statement, unit, measured, verdict)


def set_stability_per_run(
    zero: dict[tuple[int, str, str], list[np.ndarray]], horizon: int = 1, run_fraction: Optional[float] = None
) -> tuple[dict[int, float], dict[int, float], dict[int, int]]:
    """Per seed, over its hidden layers and the pairs of measurements ``horizon`` apart (with ``run_fraction``:
    round(run_fraction · (n − 1)) apart, at least 1, in a sequence of n measurements):

    * persistence |Z_t ∩ Z_t+h| / |Z_t| averaged over pairs with Z_t not empty (do trapped units stay trapped?),
    * Definition 3's overlap coefficient |Z_t ∩ Z_t+h| / min(|Z_t|, |Z_t+h|) averaged over pairs with both sets not
      empty (the paper's own measure; it is 1 whenever one set contains the other, so recovering units do not lower
      it), and
    * the number of pairs persistence was averaged over.

    NaN where a run has no such pair."""
    persistence: dict[int, list[float]] = {}
    overlap: dict[int, list[float]] = {}
    for (seed, _, _), seq in zero.items():
        persistence.setdefault(seed, [])
        overlap.setdefault(seed, [])
        h = horizon if run_fraction is None else max(1, round(run_fraction * (len(seq) - 1)))
        for a, b in zip(seq, seq[h:]):
            a, b = torch.from_numpy(a), torch.from_numpy(b)
            if not math.isnan(kept := metrics.persistence(a, b)):
                persistence[seed].append(kept)
            if not math.isnan(shared := metrics.overlap_coefficient(a, b)):
                overlap[seed].append(shared)
    mean = lambda v: float(np.mean(v)) if v else math.nan  # noqa: E731
    return (
        {s: mean(v) for s, v in persistence.items()},
        {s: mean(v) for s, v in overlap.items()},
        {s: len(v) for s, v in persistence.items()},
    )


def claim_c4(res: Results, c: Criteria, arm: str = "relu") -> Claim:
    statement = "Zero-gradient neurons do not recover (overlap, Fig. 4/6)"
    unit = "PPO run (seed); per run: mean over its hidden layers and consecutive measurements with Z_t not empty"
    if missing := _runs_without_masks(res, arm):
        return Claim("C4", statement, unit, "the sets come from the stored masks", missing)
    zero = _mask_sequences(res, arm, "zero_gradient", c.tau)
    persistence, overlap, pairs = set_stability_per_run(zero)
    measured = (
        f"{arm} networks, τ={c.tau:g}: persistence |Z_t ∩ Z_t+1|/|Z_t| (the verdict's statistic: it asks "
        f"whether trapped units leave the set) {_agg(list(persistence.values()))} over "
        f"{sum(pairs.values())} pairs; Definition 3's overlap |Z_t ∩ Z_t+1|/min(|Z_t|, |Z_t+1|) "
        f"{_agg(list(overlap.values()))} (1 whenever one set contains the other, so it misses recovery)"
        + _other_taus(
            c, lambda tau: list(set_stability_per_run(_mask_sequences(res, arm, "zero_gradient", tau))[0].values())
        )
    )
    if not sum(pairs.values()):
        return Claim("C4", statement, unit, measured, f"{NOT_TESTABLE} (no zero-gradient unit at τ={c.tau:g})")
    far, _, far_pairs = set_stability_per_run(zero, run_fraction=c.long_horizon)
    run_steps = max((x for series in res.metric_series(arm, "global_step").values() for x in series), default=0.0)
    measured += (
        f"; over a long horizon, τ={c.tau:g}: persistence |Z_t ∩ Z_t+h|/|Z_t| with measurements "
        f"{c.long_horizon:.0%} of the run apart (≈ {c.long_horizon * run_steps:,.0f} steps) "
        f"{_agg(list(far.values()))} over {sum(far_pairs.values())} pairs"
    )
    verdict, m, lo, hi = level_test(list(persistence.values()), c.persistence, math.inf, c)
    measured += f"; mean persistence over runs {_interval(m, lo, hi, c)}, criterion ≥ {c.persistence}"
    return Claim("C4", statement, unit, measured, verdict)


# ----------------------------------------------------------------------------------------------------------------
# C5: the last hidden layer
# ----------------------------------------------------------------------------------------------------------------


def claim_c5(res: Results, c: Criteria, arm: str = "relu") -> Claim:
    statement = (
        "The last hidden layer has a higher dormant and zero-gradient fraction than the layer before it (Appendix B)"
    )
    unit = "PPO run (seed); per run: late fraction of the last minus the first hidden layer, mean of actor and critic"
    nets = [net for net in ("actor", "critic") if len(res.layers(net)) >= 2]
    if not nets:
        return Claim("C5", statement, unit, "no network with two hidden layers", f"{NOT_TESTABLE} (one hidden layer)")

    def last_minus_first(metric: str, tau: float) -> tuple[dict[str, dict[int, float]], list[float]]:
        """Per network and seed, and per seed averaged over the networks."""
        per_net = {}
        for net in nets:
            layers = res.layers(net)
            first, last = (res.plasticity_series(arm, net, layer, metric, tau) for layer in (layers[0], layers[-1]))
            per_net[net] = {s: _late(last[s], c.late_fraction) - _late(first[s], c.late_fraction) for s in last}
        seeds = sorted(set.intersection(*(set(v) for v in per_net.values())))
        return per_net, [float(np.mean([per_net[net][s] for net in nets])) for s in seeds]

    parts, diffs = [], {}
    for metric, name in (("dormant_ratio", "dormant"), ("zero_gradient_ratio", "zero-gradient")):
        per_net, diffs[f"{name} (last − first)"] = last_minus_first(metric, c.tau)
        parts += [f"{net} {name} last − first hidden {_agg(list(v.values()))}" for net, v in per_net.items()]
    tests = directional_tests(diffs, c)
    parts += [_directional_text(name, r) for name, r in tests.items()]
    parts.append(
        "dormant (last − first), mean of the networks"
        + _other_taus(c, lambda tau: last_minus_first("dormant_ratio", tau)[1]).removeprefix(";")
    )
    measured = f"{arm}, late fractions at τ={c.tau:g}: " + "; ".join(parts)
    return Claim("C5", statement, unit, measured, _combine([r[0] for r in tests.values()]))


# ----------------------------------------------------------------------------------------------------------------
# C6: task switches
# ----------------------------------------------------------------------------------------------------------------


def _after_switch_zero_gradient(view: Results, arm: str, tau: float) -> dict[int, float]:
    """Per seed: the zero-gradient fraction of all hidden units (mean of actor and critic) at the first probe after a
    switch, averaged over the switches (``switches.csv``)."""
    out = {}
    for run in view.runs_of(arm):
        values = [
            to_float(r["after_ratio"])
            for r in view.table(run, "switches.csv")
            if r["layer"] == "network" and r["unit_set"] == "zero_gradient" and float(r["tau"]) == tau
        ]
        out[run.seed] = float(np.mean(values)) if values else math.nan
    return out


def _window(series: dict[float, float], low: float, high: float) -> float:
    values = [v for x, v in series.items() if low < x <= high and not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan


def _recovery(view: Results, arm: str) -> str:
    rows = [r for run in view.runs_of(arm) for r in view.table(run, "recovery.csv")]
    done = [to_float(r["recovery_updates"]) for r in rows if r["recovered"] == "1"]
    return f"{len(done)}/{len(rows)} switches recovered" + (
        f", median {_fmt(float(np.median(done)))} updates" if done else ""
    )


def claim_c6(res: Results, c: Criteria) -> Claim:
    statement = (
        "Perturbing trapped (zero-gradient) neurons does not hurt and may help; parameter constraints reduce "
        "trapped neurons (Sec. 1, 3.1)"
    )
    unit = "task-switch run (seed), paired by seed with the `none` arm; per run: mean over the post-switch updates"
    view = res.scenario_view()
    if not view.runs or "none" not in view.arms:
        return Claim("C6", statement, unit, "no task-switch runs in these results", f"{NOT_TESTABLE} (not run)")
    switches = (res.scenario or {}).get("switch_steps") or [math.inf]
    series = {arm: view.metric_series(arm, "return_recent") for arm in view.arms}
    start = {arm: _by_seed(s, _first) for arm, s in series.items()}
    pre = {
        arm: _by_seed(s, lambda x: _late({k: v for k, v in x.items() if k <= switches[0]}, c.late_fraction))
        for arm, s in series.items()
    }
    post = {arm: _by_seed(s, lambda x: _window(x, switches[0], math.inf)) for arm, s in series.items()}
    zg = {arm: _after_switch_zero_gradient(view, arm, c.tau) for arm in view.arms}
    gain = [pre["none"][s] - start["none"][s] for s in pre["none"]]
    learned_gain = iqm(gain)
    parts = [
        f"scenario {res.scenario['name']} every {res.scenario['period']} steps, {len(switches)} switches; "
        f"the none arm's gain on task 0 before the first switch (pre-switch − first return) {_agg(gain)}; "
        f"per arm, post-switch mean return / zero-gradient fraction after a switch (τ={c.tau:g}) / recovery: "
        + "; ".join(
            f"{arm}: {_agg(list(post[arm].values()))} / {_agg(list(zg[arm].values()))} / {_recovery(view, arm)}"
            for arm in view.arms
        )
    ]
    if not learned_gain >= c.learned_gain:
        return Claim(
            "C6",
            statement,
            unit,
            "; ".join(parts),
            f"{NOT_TESTABLE} (the agent did not learn task 0 before the first switch: gain "
            f"{_fmt(learned_gain)} < {c.learned_gain:g})",
        )

    diffs: dict[str, Sequence[float]] = {}
    if c.perturb_arm in view.arms:
        diffs[f"{c.perturb_arm} helps (post-switch return − none)"] = paired_differences(
            *_paired(post[c.perturb_arm], post["none"])
        )
    present = [arm for arm in c.constraint_arms if arm in view.arms]
    for arm in present:
        diffs[f"{arm} reduces trapped neurons (none − {arm} zero-gradient fraction)"] = paired_differences(
            *_paired(zg["none"], zg[arm])
        )
    tests = directional_tests(diffs, c)
    parts += [_directional_text(name, r) for name, r in tests.items()]

    # (a) does not hurt: non-inferiority, and not significantly worse
    if c.perturb_arm not in view.arms:
        perturb = f"{NOT_TESTABLE} (perturbation arm not run)"
    else:
        helps, _, p_against = tests[f"{c.perturb_arm} helps (post-switch return − none)"]
        margin = c.noninferiority_margin * learned_gain
        d = paired_differences(*_paired(post[c.perturb_arm], post["none"]))
        noninferior, m, lo, hi = level_test(d, -margin, math.inf, c)
        perturb = NOT_SUPPORTED if helps == NOT_SUPPORTED else noninferior
        parts.append(
            f"(a) does not hurt: {c.perturb_arm} − none post-switch return {_interval(m, lo, hi, c)}, "
            f"non-inferiority margin −{_fmt(margin)} ({c.noninferiority_margin:.0%} of the task-0 gain) → {perturb}"
        )
    # (b) constraints reduce trapped neurons: every constraint arm below none
    if not present:
        constrain = f"{NOT_TESTABLE} (no constraint arm run)"
    elif not any(v > 0 for v in finite(list(zg["none"].values()))):
        constrain = f"{NOT_TESTABLE} (the none arm has no zero-gradient unit after a switch at τ={c.tau:g})"
    else:
        constrain = _combine([tests[k][0] for k in tests if "reduces" in k])
    parts.append(f"(b) constraints reduce trapped neurons → {constrain}")
    return Claim("C6", statement, unit, "; ".join(parts), _combine([perturb, constrain]))


def evaluate_claims(res: Results, criteria: Criteria = Criteria()) -> list[Claim]:
    return [
        claim_c1(res, criteria),
        claim_c2(res, criteria),
        claim_c3(res, criteria),
        claim_c4(res, criteria),
        claim_c5(res, criteria),
        claim_c6(res, criteria),
    ]


def write_report(
    results_root: str | Path, path: str | Path, theory_table: Optional[str] = None, criteria: Criteria = Criteria()
) -> Path:
    """Write the Markdown claims report of one preset's results."""
    res = Results(results_root)
    claims = evaluate_claims(res, criteria)
    seeds = {arm: sorted(r.seed for r in res.runs_of(arm)) for arm in res.arms}
    correction = (
        "Holm's correction over the directional sub-tests of each claim"
        if criteria.correction == "holm"
        else "no multiple-comparison correction"
    )
    lines = [
        f"# Claims report — preset `{res.preset}`",
        "",
        f"Scale: {res.scaled_down}. PPO seeds per arm: {seeds}.",
        "",
        f"Statistics: the unit of replication is the run (seed); values are summarised within each run first, then "
        f"compared across runs, paired by seed where the design is paired. Per-arm values: interquartile mean over "
        f"runs [95 % percentile bootstrap]. Directional sub-tests: exact sign-flip test of the paired per-run "
        f"differences, one-sided at α = {criteria.alpha} in each direction, {correction}; with n paired runs the "
        f"smallest attainable p is 2^-n, and a sub-test that cannot reach α under Holm over the claim's m sub-tests "
        f"(m·2^-n > α) is *not testable at this scale*; it still counts in m. Level "
        f"criteria (equivalence, non-inferiority, C3's Jaccard ≥ {criteria.coincidence_jaccard}, C4's persistence ≥ "
        f"{criteria.persistence}): Student-t interval at {1 - 2 * criteria.alpha:.0%} of the per-run values. τ = "
        f"{criteria.tau}; late = last {criteria.late_fraction:.0%} of a run's measurements; a run has learned when its "
        f"late return exceeds its first by ≥ {criteria.learned_gain:g}; margins: C1 final return ±"
        f"{criteria.final_equivalence_margin:.0%} of No-Act's gain, C2 ±{criteria.equivalence_margin:.0%} of the "
        f"random-init MSE, C6 −{criteria.noninferiority_margin:.0%} of the task-0 gain (`ocp.report.Criteria`).",
        "",
        "| claim | statement | unit of replication | measured | verdict |",
        "|---|---|---|---|---|",
    ]
    cell = lambda text: text.replace("|", "\\|")  # noqa: E731  (set notation |A| inside a Markdown table)
    lines += [
        f"| {c.id} | {cell(c.statement)} | {cell(c.unit)} | {cell(c.measured)} | **{cell(c.verdict)}** |"
        for c in claims
    ]
    if res.preset != "paper":
        lines += [
            "",
            "## What this scale cannot conclude",
            "",
            f"These runs are scaled down ({res.scaled_down}). The paper's claims are about 20M-step training; "
            "a verdict here speaks only for the scale run. 'Inconclusive' means the data could have separated "
            "the arms (or shown them equivalent) and did not; 'not testable at this scale' means they could not "
            "have, for the reason given in the row.",
        ]
    if theory_table:
        # One heading level down, so the theory's own headings nest under this section.
        demoted = [("##" + line) if line.startswith("#") else line for line in theory_table.strip().splitlines()]
        lines += ["", "## The theory (Section 3.3), checked by `theory/`", "", *demoted]
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(out)
    return out


def _steps_label(steps: float) -> str:
    """Steps to one decimal of a million (a 1M-step run logs its last update at 999,424), or in thousands below 100k."""
    return f"{round(steps / 1e6, 1):g}M" if steps >= 1e5 else f"{round(steps / 1e3):g}k"


def scale_table(results_roots: Sequence[str | Path], criteria: Criteria = Criteria()) -> str:
    """One Markdown row per claim with its verdict at each scale (one results folder per scale, in the order given),
    the PPO runs behind it, and whether the verdict changes with scale."""
    columns = []
    for root in results_roots:
        res = Results(root)
        seeds = {arm: len(res.runs_of(arm)) for arm in res.arms}
        steps = max(
            max(res.metric_series(arm, "return_recent")[r.seed], default=0.0)
            for arm in res.arms
            for r in res.runs_of(arm)
        )
        switch_seeds = {arm: len(res.scenario_view().runs_of(arm)) for arm in res.scenario_view().arms}
        sample = f"{'/'.join(map(str, seeds.values()))} seeds per arm × {_steps_label(steps)} steps"
        if switch_seeds:
            sample += f"; task switches {max(switch_seeds.values())} seeds per arm"
        columns.append((res.preset, sample, {c.id: c.verdict.split(" (")[0] for c in evaluate_claims(res, criteria)}))
    lines = [
        "| claim | " + " | ".join(f"{name} ({sample})" for name, sample, _ in columns) + " | changes with scale |",
        "|---" * (len(columns) + 2) + "|",
    ]
    for claim in columns[0][2]:
        verdicts = [verdicts[claim] for _, _, verdicts in columns]
        lines.append(f"| {claim} | " + " | ".join(verdicts) + f" | {'yes' if len(set(verdicts)) > 1 else 'no'} |")
    return "\n".join(lines) + "\n"


def scale_table_of(sources: Sequence[str | Path]) -> str:
    """:func:`scale_table` of results folders or archives of ``ocp.tables.pack_tables``, smallest scale first."""
    with tempfile.TemporaryDirectory() as tmp:
        roots = [unpack_tables(p, Path(tmp) / str(i)) if Path(p).is_file() else Path(p) for i, p in enumerate(sources)]
        return scale_table(roots)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """``python -m ocp.report FOLDER_OR_ARCHIVE ... [--out FILE]``: the scale table of the given results (folders, or
    archives of ``ocp.tables.pack_tables`` such as ``docs/tables/quick.tar.gz``), smallest scale first."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("results", nargs="+", help="results folders or tables archives, one per scale")
    parser.add_argument("--out", default=None, help="write the table here (default: print it)")
    args = parser.parse_args(argv)
    table = scale_table_of(args.results)
    if args.out:
        atomic_write_bytes(args.out, table.encode())
    else:
        print(table, end="")


if __name__ == "__main__":
    main()
