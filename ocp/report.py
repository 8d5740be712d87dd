"""The claims report: each empirical claim of the paper, the numbers measured for it, and a verdict.

Verdicts follow rules fixed before looking at any result (:class:`Criteria`, every value documented and
configurable): *supported* when the measured effect is in the claimed direction and passes the criterion,
*not supported* when it is significantly in the other direction (or fails a criterion it can be tested against), and
*inconclusive at this scale* otherwise — for example when three seeds cannot separate two arms.

Reads only the tables and stored masks of a results folder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from scipy import stats

from ocp.runlog import load_masks, mask_key
from ocp.statistics import mean_ci, welch_test
from ocp.tables import Results, rows_for, to_float

__all__ = ["Criteria", "Claim", "evaluate_claims", "write_report"]

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive at this scale"


@dataclass(frozen=True)
class Criteria:
    """The pre-registered decision rules."""

    alpha: float = 0.05
    """Significance level of every Welch / paired t-test."""
    tau: float = 0.025
    """Threshold of the dormant and zero-gradient sets (as in the figures)."""
    late_fraction: float = 0.25
    """"Late in training" = the last quarter of the measurements."""
    coincidence_jaccard: float = 0.8
    """C3: mean Jaccard index |D∩Z|/|D∪Z| of the dormant and zero-gradient sets needed to call them coincident."""
    persistence: float = 0.9
    """C4: mean share of zero-gradient units still zero-gradient at the next measurement needed for "no recovery"."""
    equivalence_margin: float = 0.1
    """C2: "learns as well as" means the 95% bootstrap CI of (pretrained − random) final test MSE lies within ±this
    fraction of the random-init mean, for every Eq. 1 comparison (an equivalence test, not an absence of evidence)."""
    perturb_arm: str = "gradient_perturb"
    """C6: the task-switch arm that perturbs trapped (zero-gradient) neurons."""
    constraint_arms: tuple[str, ...] = ("l2_init", "weight_clipping")
    """C6: the task-switch arms that constrain the parameters."""
    noninferiority_margin: float = 0.1
    """C6 "does not hurt": the 95% Welch CI of (perturbation − none) mean post-switch return has its lower end above
    −this fraction of |none's mean| (a non-inferiority test); "hurts" = significantly lower (Welch p < α)."""


@dataclass
class Claim:
    id: str
    statement: str
    measured: str
    verdict: str


def _fmt(x: float, digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}g}"


def _ci(values: list[float]) -> str:
    m, lo, hi = mean_ci(values)
    return f"{_fmt(m)} [{_fmt(lo)}, {_fmt(hi)}] (n={sum(not math.isnan(v) for v in values)})"


def _welch(a: list[float], b: list[float]) -> float:
    """Welch p-value over the non-NaN values; NaN when either side has fewer than two."""
    a = [v for v in a if not math.isnan(v)]
    b = [v for v in b if not math.isnan(v)]
    if len(a) < 2 or len(b) < 2:
        return math.nan
    return welch_test(a, b)[2]


def _directional(a: list[float], b: list[float], alpha: float) -> tuple[str, float]:
    """Verdict of the claim "mean(a) > mean(b)"."""
    p = _welch(a, b)
    if math.isnan(p):
        return INCONCLUSIVE, p
    if p < alpha:
        return (SUPPORTED if np.nanmean(a) > np.nanmean(b) else NOT_SUPPORTED), p
    return INCONCLUSIVE, p


def _late(series: dict[float, float], fraction: float) -> float:
    xs = sorted(x for x, v in series.items() if not math.isnan(v))
    if not xs:
        return math.nan
    late = xs[int(len(xs) * (1 - fraction)) :] or xs[-1:]
    return float(np.mean([series[x] for x in late]))


def claim_c1(res: Results, c: Criteria) -> Claim:
    auc = {arm: [float(np.nanmean(list(s.values()))) if s else math.nan
                 for s in res.metric_series(arm, "return_recent").values()] for arm in res.arms}  # fmt: skip
    final = {arm: [_late(s, c.late_fraction) for s in res.metric_series(arm, "return_recent").values()] for arm in res.arms}
    dorm = {arm: [np.mean([_late(res.plasticity_series(arm, net, "network", "dormant_ratio", c.tau)[r.seed], c.late_fraction)
                           for net in ("actor", "critic")]) for r in res.runs_of(arm)] for arm in res.arms}  # fmt: skip
    speed, p_speed = _directional(auc["relu"], auc["no-act"], c.alpha)
    more_dormant, p_dorm = _directional(dorm["relu"], dorm["no-act"], c.alpha)
    verdict = SUPPORTED if speed == more_dormant == SUPPORTED else NOT_SUPPORTED if NOT_SUPPORTED in (speed, more_dormant) else INCONCLUSIVE
    measured = (
        f"mean return over training (learning speed): ReLU {_ci(auc['relu'])}, No-Act {_ci(auc['no-act'])}, Welch p={_fmt(p_speed)} ({speed}); "
        f"late return: ReLU {_ci(final['relu'])}, No-Act {_ci(final['no-act'])}; "
        f"late dormant fraction (τ={c.tau:g}, mean of actor and critic): ReLU {_ci(dorm['relu'])}, No-Act {_ci(dorm['no-act'])}, "
        f"Welch p={_fmt(p_dorm)} ({more_dormant})"
    )
    return Claim("C1", "ReLU PPO converges faster than No-Act PPO, with more dormant neurons (Fig. 1)", measured, verdict)


def claim_c2(res: Results, c: Criteria) -> Claim:
    summary = res.transfer_table("summary.csv")
    parts, eq1_sig, eq1_equivalent, similar_gap = [], [], [], []
    for row in rows_for(summary, metric="final_test_mse"):
        p, diff = to_float(row["welch_p"]), to_float(row["diff_mean"])
        lo, hi, ref = to_float(row["diff_ci_low"]), to_float(row["diff_ci_high"]), to_float(row["random_mean"])
        parts.append(f"{row['task']} {row['group']} lr {row['lr']}: pretrained − random = {_fmt(diff)} "
                     f"[{_fmt(lo)}, {_fmt(hi)}] (random mean {_fmt(ref)}), d={_fmt(to_float(row['cohens_d']))}, p={_fmt(p)}")  # fmt: skip
        if row["task"] == "eq1":
            eq1_sig.append(p < c.alpha)
            eq1_equivalent.append(max(abs(lo), abs(hi)) <= c.equivalence_margin * abs(ref))
        else:
            similar_gap.append(p < c.alpha and diff < 0)
    if not eq1_sig or not any(eq1_sig) and not all(eq1_equivalent):
        verdict = INCONCLUSIVE
    elif any(eq1_sig):
        verdict = NOT_SUPPORTED
    else:
        verdict = SUPPORTED
    control = (f"similar-task control: pretrained significantly better in {sum(similar_gap)} of {len(similar_gap)} "
               f"comparisons (OCP predicts a gap there)") if similar_gap else "similar-task control: not run"  # fmt: skip
    rule = (f"equivalence: every Eq. 1 difference CI within ±{c.equivalence_margin:.0%} of the random-init MSE "
            f"({sum(eq1_equivalent)} of {len(eq1_equivalent)} are)")  # fmt: skip
    return Claim("C2", "A dormant value network learns a dissimilar task (Eq. 1) as well as a random init (Fig. 3/5)",
                 "; ".join(parts + [rule, control]), verdict)  # fmt: skip


def _mask_sequences(res: Results, arm: str, kind: str, tau: float) -> dict[tuple[int, str, str], list[np.ndarray]]:
    """{(seed, network, layer): [mask at each measurement]} for the hidden layers."""
    out: dict[tuple[int, str, str], list[np.ndarray]] = {}
    for r in res.runs_of(arm):
        measurements = load_masks(r.path)
        for net in ("actor", "critic"):
            for layer in res.layers(net):
                key = mask_key(net, layer, kind, tau)
                out[(r.seed, net, layer)] = [measurements[u][key] for u in sorted(measurements) if key in measurements[u]]
    return out


def claim_c3(res: Results, c: Criteria, arm: str = "relu") -> Claim:
    dormant = _mask_sequences(res, arm, "dormant", c.tau)
    zero = _mask_sequences(res, arm, "zero_gradient", c.tau)
    jaccard, agreement, ratios_d, ratios_z = [], [], [], []
    for key, seq in dormant.items():
        for d, z in zip(seq, zero[key]):
            union = int((d | z).sum())
            if union:
                jaccard.append(int((d & z).sum()) / union)
            agreement.append(float((d == z).mean()))
            ratios_d.append(float(d.mean()))
            ratios_z.append(float(z.mean()))
    corr = float(np.corrcoef(ratios_d, ratios_z)[0, 1]) if len(ratios_d) > 2 and np.std(ratios_d) > 0 and np.std(ratios_z) > 0 else math.nan
    mean_j = float(np.mean(jaccard)) if jaccard else math.nan
    if not jaccard:
        verdict = INCONCLUSIVE + f" (no dormant or zero-gradient unit at τ={c.tau:g} in any measurement)"
    else:
        verdict = SUPPORTED if mean_j >= c.coincidence_jaccard else NOT_SUPPORTED
    measured = (f"{arm} networks, τ={c.tau:g}, every hidden layer and measurement: mean Jaccard |D∩Z|/|D∪Z| = {_fmt(mean_j)} "
                f"over {len(jaccard)} non-empty cases (criterion ≥ {c.coincidence_jaccard}); per-unit agreement "
                f"{_fmt(float(np.mean(agreement)) if agreement else math.nan)}; correlation of layer fractions {_fmt(corr)}")  # fmt: skip
    return Claim("C3", "Dormancy and zero gradient coincide in practice (Fig. 4/6)", measured, verdict)


def claim_c4(res: Results, c: Criteria, arm: str = "relu") -> Claim:
    zero = _mask_sequences(res, arm, "zero_gradient", c.tau)
    persist, ever, left = [], 0, 0
    for seq in zero.values():
        for prev, cur in zip(seq, seq[1:]):
            if prev.any():
                persist.append(float((prev & cur).sum() / prev.sum()))
        if seq:
            seen = np.zeros_like(seq[0])
            for m in seq:
                left += int((seen & ~m).sum())
                seen |= m
            ever += int(seen.sum())
    mean_p = float(np.mean(persist)) if persist else math.nan
    if not persist:
        verdict = INCONCLUSIVE + f" (no zero-gradient unit at τ={c.tau:g})"
    else:
        verdict = SUPPORTED if mean_p >= c.persistence else NOT_SUPPORTED
    measured = (f"{arm} networks, τ={c.tau:g}: mean persistence |Z_t ∩ Z_t+1|/|Z_t| = {_fmt(mean_p)} over {len(persist)} "
                f"consecutive pairs (criterion ≥ {c.persistence}); {ever} units were ever zero-gradient, and "
                f"{left} unit-measurements showed a unit outside the set after it had been in it")  # fmt: skip
    return Claim("C4", "Zero-gradient neurons do not recover (overlap, Fig. 4/6)", measured, verdict)


def claim_c5(res: Results, c: Criteria, arm: str = "relu") -> Claim:
    last, first, parts = [], [], []
    for net in ("actor", "critic"):
        layers = res.layers(net)
        if len(layers) < 2:
            continue
        for r in res.runs_of(arm):
            lo = _late(res.plasticity_series(arm, net, layers[0], "dormant_ratio", c.tau)[r.seed], c.late_fraction)
            hi = _late(res.plasticity_series(arm, net, layers[-1], "dormant_ratio", c.tau)[r.seed], c.late_fraction)
            first.append(lo)
            last.append(hi)
        parts.append(f"{net}: first hidden {_ci(first[-len(res.runs_of(arm)):])}, last hidden {_ci(last[-len(res.runs_of(arm)):])}")
    diffs = [a - b for a, b in zip(last, first) if not (math.isnan(a) or math.isnan(b))]
    if len(diffs) < 2 or np.std(diffs) == 0:
        p = math.nan
        verdict = INCONCLUSIVE if not diffs or all(d == 0 for d in diffs) else (SUPPORTED if min(diffs) > 0 else NOT_SUPPORTED if max(diffs) < 0 else INCONCLUSIVE)
    else:
        p = float(stats.ttest_1samp(diffs, 0.0).pvalue)
        verdict = (SUPPORTED if np.mean(diffs) > 0 else NOT_SUPPORTED) if p < c.alpha else INCONCLUSIVE
    measured = f"{arm}, late dormant fraction (τ={c.tau:g}) — " + "; ".join(parts) + f"; paired t-test over (seed, network) p={_fmt(p)}"
    return Claim("C5", "The last hidden layer has the highest dormancy (Appendix B)", measured, verdict)


def _after_switch_zero_gradient(view: Results, arm: str, tau: float) -> list[float]:
    """Per seed: the zero-gradient fraction of all hidden units (mean of actor and critic) at the first probe after a
    switch, averaged over the switches (``switches.csv``)."""
    out = []
    for run in view.runs_of(arm):
        values = [to_float(r["after_ratio"]) for r in view.table(run, "switches.csv")
                  if r["layer"] == "network" and r["kind"] == "zero_gradient" and float(r["threshold"]) == tau]  # fmt: skip
        out.append(float(np.mean(values)) if values else math.nan)
    return out


def _post_switch_return(view: Results, arm: str, first_switch: float) -> list[float]:
    """Per seed: the mean recent return over the updates after the first switch."""
    return [float(np.mean([v for x, v in s.items() if x > first_switch and not math.isnan(v)] or [math.nan]))
            for s in view.metric_series(arm, "return_recent").values()]  # fmt: skip


def _recovery(view: Results, arm: str) -> str:
    rows = [r for run in view.runs_of(arm) for r in view.table(run, "recovery.csv")]
    done = [to_float(r["recovery_updates"]) for r in rows if r["recovered"] == "1"]
    return f"{len(done)}/{len(rows)} switches recovered" + (f", median {_fmt(float(np.median(done)))} updates" if done else "")


def claim_c6(res: Results, c: Criteria) -> Claim:
    statement = ("Perturbing trapped (zero-gradient) neurons does not hurt and may help; parameter constraints reduce "
                 "trapped neurons (Sec. 1, 3.1)")  # fmt: skip
    view = res.scenario_view()
    if not view.runs or "none" not in view.arms:
        return Claim("C6", statement, "no task-switch runs in these results", INCONCLUSIVE + " (not run)")
    switches = (res.scenario or {}).get("switch_steps") or [math.inf]
    ret = {arm: _post_switch_return(view, arm, switches[0]) for arm in view.arms}
    zg = {arm: _after_switch_zero_gradient(view, arm, c.tau) for arm in view.arms}
    parts = [f"scenario {res.scenario['name']} every {res.scenario['period']} steps, {len(switches)} switches; "
             f"post-switch mean return / zero-gradient fraction after a switch (τ={c.tau:g}) / recovery per arm: "
             + "; ".join(f"{arm}: {_ci(ret[arm])} / {_ci(zg[arm])} / {_recovery(view, arm)}" for arm in view.arms)]  # fmt: skip

    # (a) perturbation does not hurt (non-inferiority), may help (significantly better)
    if c.perturb_arm not in view.arms:
        perturb, p_text = INCONCLUSIVE + " (perturbation arm not run)", ""
    else:
        a, b = [v for v in ret[c.perturb_arm] if not math.isnan(v)], [v for v in ret["none"] if not math.isnan(v)]
        if len(a) < 2 or len(b) < 2:
            perturb, p_text = INCONCLUSIVE, f"{c.perturb_arm} vs none: fewer than 2 seeds each"
        else:
            test = stats.ttest_ind(a, b, equal_var=False)
            ci = test.confidence_interval(1 - c.alpha)
            margin = c.noninferiority_margin * abs(float(np.mean(b)))
            hurts = test.pvalue < c.alpha and np.mean(a) < np.mean(b)
            helps = test.pvalue < c.alpha and np.mean(a) > np.mean(b)
            perturb = NOT_SUPPORTED if hurts else SUPPORTED if ci.low > -margin else INCONCLUSIVE
            p_text = (f"{c.perturb_arm} − none post-switch return {_fmt(float(np.mean(a) - np.mean(b)))} "
                      f"[{_fmt(float(ci.low))}, {_fmt(float(ci.high))}], Welch p={_fmt(float(test.pvalue))}; "
                      f"non-inferiority margin −{_fmt(margin)}; {'helps (significantly better)' if helps else 'no significant gain'}")  # fmt: skip
    # (b) constraints reduce trapped neurons: every constraint arm significantly below "none"
    present = [arm for arm in c.constraint_arms if arm in view.arms]
    verdicts = {arm: _directional(zg["none"], zg[arm], c.alpha) for arm in present}
    if not present:
        constrain = INCONCLUSIVE + " (no constraint arm run)"
    elif any(v == NOT_SUPPORTED for v, _ in verdicts.values()):
        constrain = NOT_SUPPORTED
    elif all(v == SUPPORTED for v, _ in verdicts.values()):
        constrain = SUPPORTED
    else:
        constrain = INCONCLUSIVE
    c_text = "; ".join(f"none > {arm} zero-gradient fraction: Welch p={_fmt(p)} ({v})" for arm, (v, p) in verdicts.items())
    parts += [f"(a) perturbation: {p_text} → {perturb}", f"(b) constraints: {c_text} → {constrain}"]
    both = (perturb, constrain)
    verdict = (SUPPORTED if all(v == SUPPORTED for v in both)
               else NOT_SUPPORTED if any(v == NOT_SUPPORTED for v in both) else INCONCLUSIVE)  # fmt: skip
    return Claim("C6", statement, "; ".join(parts), verdict)


def evaluate_claims(res: Results, criteria: Criteria = Criteria()) -> list[Claim]:
    return [claim_c1(res, criteria), claim_c2(res, criteria), claim_c3(res, criteria), claim_c4(res, criteria),
            claim_c5(res, criteria), claim_c6(res, criteria)]  # fmt: skip


def write_report(results_root: str | Path, path: str | Path, theory_table: Optional[str] = None,
                 criteria: Criteria = Criteria()) -> Path:  # fmt: skip
    """Write the Markdown claims report of one preset's results."""
    res = Results(results_root)
    claims = evaluate_claims(res, criteria)
    seeds = {arm: sorted(r.seed for r in res.runs_of(arm)) for arm in res.arms}
    lines = [
        f"# Claims report — preset `{res.preset}`",
        "",
        f"Scale: {res.scaled_down}. PPO seeds per arm: {seeds}. Decision rules: α = {criteria.alpha}, τ = {criteria.tau}, "
        f"late = last {criteria.late_fraction:.0%} of measurements, C3 Jaccard ≥ {criteria.coincidence_jaccard}, "
        f"C4 persistence ≥ {criteria.persistence}, C2 equivalence margin ±{criteria.equivalence_margin:.0%}, "
        f"C6 non-inferiority margin {criteria.noninferiority_margin:.0%} (`ocp.report.Criteria`).",
        "",
        "| claim | statement | measured | verdict |",
        "|---|---|---|---|",
    ]
    cell = lambda text: text.replace("|", "\\|")  # noqa: E731  (set notation |A| inside a Markdown table)
    lines += [f"| {c.id} | {cell(c.statement)} | {cell(c.measured)} | **{c.verdict}** |" for c in claims]
    if res.preset != "paper":
        lines += ["", "## What this scale cannot conclude", "",
                  f"These runs are scaled down ({res.scaled_down}). The paper's claims are about 20M-step training; "
                  "a verdict here speaks only for the scale run. With few seeds, Welch tests have little power: "
                  "'inconclusive' means the data cannot separate the arms (or, for C2, cannot show them equivalent), "
                  "not that they are equal."]  # fmt: skip
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
