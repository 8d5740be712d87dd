"""Claim C2's statistics from the transfer tables alone (no torch, no training code): the summary of ``curves.csv``
and the claims report's decision.

**Unit of replication: the PPO run.** Each arm transfers the critic of every PPO run (one critic per PPO seed), and
each critic is trained with several regression seeds nested in its run. A regression seed's pretrained and random
regressors see the same data and minibatch order, so they are paired. Within each (task, arm, random init, lr,
PPO run) the paired differences pretrained − random are averaged over the regression seeds first; the tests then run
across PPO runs, so the spread between PPO runs is in every interval and p-value:

* ``p_worse`` / ``p_better``: the exact one-sided sign-flip test (:func:`ocp.statistics.sign_flip_test`) of the
  run-level differences, > 0 (pretrained worse) and < 0 (pretrained better);
* ``diff_ci_low`` / ``diff_ci_high``: the Student-t interval of the run-level differences at 1 − 2α, the interval of
  the two one-sided tests (TOST) for equivalence at level α.

:func:`c2_verdict` decides claim C2 from these rows: Holm's correction over the comparisons the verdict rests on, an
equivalence margin relative to the random-init mean, the similar-task control counted in the direction OCP predicts,
the epoch-0 correlations and No-Act's linear floor reported beside it.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ocp.statistics import (
    INCONCLUSIVE,
    NOT_SUPPORTED,
    NOT_TESTABLE,
    SUPPORTED,
    holm,
    mean_ci,
    paired_differences,
    sign_flip_test,
    smallest_sign_flip_p,
)

__all__ = [
    "SUMMARY_COLUMNS",
    "LINEAR_FLOOR_COLUMNS",
    "DISSIMILAR_TASKS",
    "CONTROL_TASK",
    "VERDICT_METRIC",
    "run_values",
    "summarise",
    "c2_verdict",
    "format_summary",
]

#: Tasks unrelated to the critic's: the paper's Eq. 1 and its input-permuted control.
DISSIMILAR_TASKS = ("eq1", "eq1_permuted")
#: The task close to the critic's (OCP predicts the pretrained critic learns it worse).
CONTROL_TASK = "similar"
#: The metric the verdict rests on; the other is reported in the summary.
VERDICT_METRIC = "final_test_mse"
#: An identity-activation (No-Act) network is an affine map: both of its inits reach the same least-squares fit.
LINEAR_ACTIVATION = "identity"
PRETRAINED, RANDOM_PREFIX = "pretrained", "random_"
UNIT = "PPO run"

SUMMARY_COLUMNS = [
    "task",
    "arm",
    "activation",
    "random_init",
    "lr",
    "metric",
    "epochs",
    "unit",
    "n_runs",
    "seeds_per_run",
    "pretrained_mean",
    "random_mean",
    "diff_mean",
    "diff_sd",
    "relative_diff",
    "interval_confidence",
    "diff_ci_low",
    "diff_ci_high",
    "p_worse",
    "p_better",
    "smallest_p",
    "pretrained_corr0",
    "random_corr0",
]
LINEAR_FLOOR_COLUMNS = [
    "distribution",
    "x_scale",
    "noise_std",
    "target_variance",
    "linear_floor_mse",
    "floor_share",
    "used",
]

_METRICS = ("final_test_mse", "mean_test_mse_over_epochs")


def run_values(curves: Iterable[Mapping[str, Any]]) -> dict[tuple, dict[str, float]]:
    """Per regressor — key (task, arm, activation, ppo_run, lr, init, seed) — its final test MSE, its test MSE averaged
    over epochs 1 … E, its epoch-0 correlation of output and target, and E. Rows may hold numbers or the strings of a
    CSV; a regressor whose epochs are not exactly 0 … E is refused."""
    series: dict[tuple, dict[int, tuple[float, float]]] = {}
    for r in curves:
        key = (r["task"], r["arm"], r["activation"], r["ppo_run"], float(r["lr"]), r["init"], int(r["seed"]))
        epoch = int(float(r["epoch"]))
        if epoch in series.setdefault(key, {}):
            raise ValueError(f"curves: epoch {epoch} of {key} appears twice")
        series[key][epoch] = (float(r["test_mse"]), float(r["output_target_corr"]))
    out = {}
    for key, s in series.items():
        last = max(s)
        if sorted(s) != list(range(last + 1)) or last < 1:
            raise ValueError(f"curves: {key} has epochs {sorted(s)}, expected 0 … E with E >= 1")
        out[key] = {
            "final_test_mse": s[last][0],
            "mean_test_mse_over_epochs": float(np.mean([s[e][0] for e in range(1, last + 1)])),
            "corr0": s[0][1],
            "epochs": last,
        }
    return out


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else math.nan


def summarise(curves: Iterable[Mapping[str, Any]], alpha: float = 0.05) -> list[dict[str, Any]]:
    """The summary rows: pretrained against each random init per (task, arm, lr, metric), replicated over PPO runs
    (see the module docstring). ``alpha`` is the one-sided level; the interval is at 1 − 2α."""
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha}")
    values = run_values(curves)
    runs: dict[tuple, dict[str, dict[str, dict[int, dict[str, float]]]]] = {}
    for (task, arm, activation, ppo_run, lr, init, seed), v in values.items():
        runs.setdefault((task, arm, activation, lr), {}).setdefault(ppo_run, {}).setdefault(init, {})[seed] = v
    rows = []
    for task, arm, activation, lr in sorted(runs, key=lambda k: (k[0], k[1], -k[3])):
        by_run = runs[(task, arm, activation, lr)]
        randoms = sorted({i for inits in by_run.values() for i in inits if i.startswith(RANDOM_PREFIX)})
        for random_init in randoms:
            paired = {
                name: inits
                for name, inits in by_run.items()
                if set(inits.get(PRETRAINED, {})) & set(inits.get(random_init, {}))
            }
            if not paired:
                continue
            seeds = {name: sorted(set(inits[PRETRAINED]) & set(inits[random_init])) for name, inits in paired.items()}
            corr0 = {
                init: _mean([_mean([paired[n][init][s]["corr0"] for s in seeds[n]]) for n in sorted(paired)])
                for init in (PRETRAINED, random_init)
            }
            epochs = {
                v["epochs"] for inits in paired.values() for per_seed in inits.values() for v in per_seed.values()
            }
            for metric in _METRICS:
                p_run, r_run, d_run = [], [], []
                for name in sorted(paired):
                    p = [paired[name][PRETRAINED][s][metric] for s in seeds[name]]
                    r = [paired[name][random_init][s][metric] for s in seeds[name]]
                    p_run.append(_mean(p))
                    r_run.append(_mean(r))
                    d_run.append(_mean(paired_differences(p, r)))
                # A run whose every pair has a NaN (a diverged regressor) has no difference: it leaves the test.
                kept = ~np.isnan(d_run)
                d = np.asarray(d_run)[kept]
                mean, lo, hi = mean_ci(d, 1 - 2 * alpha)
                random_mean = _mean(np.asarray(r_run)[kept])
                rows.append(
                    {
                        "task": task,
                        "arm": arm,
                        "activation": activation,
                        "random_init": random_init[len(RANDOM_PREFIX) :],
                        "lr": lr,
                        "metric": metric,
                        "epochs": max(epochs),
                        "unit": UNIT,
                        "n_runs": len(d),
                        "seeds_per_run": min(len(s) for s in seeds.values()),
                        "pretrained_mean": _mean(np.asarray(p_run)[kept]),
                        "random_mean": random_mean,
                        "diff_mean": mean,
                        "diff_sd": float(d.std(ddof=1)) if d.size > 1 else math.nan,
                        "relative_diff": mean / random_mean if random_mean != 0 else math.nan,
                        "interval_confidence": 1 - 2 * alpha,
                        "diff_ci_low": lo,
                        "diff_ci_high": hi,
                        "p_worse": sign_flip_test(d, "greater"),
                        "p_better": sign_flip_test(d, "less"),
                        "smallest_p": smallest_sign_flip_p(int(np.count_nonzero(d))),
                        "pretrained_corr0": corr0[PRETRAINED],
                        "random_corr0": corr0[random_init],
                    }
                )
    return rows


# ----------------------------------------------------------------------------------------------------------------
# The decision
# ----------------------------------------------------------------------------------------------------------------


def _fmt(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.3g}"


#: The summary's columns that hold numbers (the others name the comparison).
_NUMERIC = tuple(c for c in SUMMARY_COLUMNS if c not in ("task", "arm", "activation", "random_init", "metric", "unit"))


def _parse(row: Mapping[str, Any]) -> dict[str, Any]:
    missing = [c for c in SUMMARY_COLUMNS if c not in row]
    if missing:
        raise ValueError(
            f"transfer summary row lacks columns {missing} (written by an older version? re-run the transfer)"
        )
    return {**row, **{c: float(row[c]) if row[c] != "" else math.nan for c in _NUMERIC}}


def _name(r: Mapping[str, Any]) -> str:
    return f"{r['task']} {r['arm']} vs random ({r['random_init']} init) lr {r['lr']:g}"


def _one_sided(rows: list[dict[str, Any]], column: str, alpha: float) -> tuple[list[float], list[bool], list[bool]]:
    """Holm-adjusted one-sided p-values over ``rows``, whether each is significant, and whether each could have been
    (m · the smallest exact p ≤ α: Holm's first step); a comparison that could not be is left out (NaN)."""
    m = len(rows)
    reachable = [m * r["smallest_p"] <= alpha for r in rows]
    adjusted = holm([r[column] if ok else math.nan for r, ok in zip(rows, reachable)])
    return adjusted, [p <= alpha for p in adjusted], reachable


def _unreachable(rows: list[dict[str, Any]], alpha: float) -> str:
    n = int(min(r["n_runs"] for r in rows))
    return (
        f"with {n} PPO runs the exact test's smallest one-sided p is 2^-{n} = {_fmt(2.0**-n)}; "
        f"Holm over {len(rows)} comparisons needs ≤ {_fmt(alpha / len(rows))}"
    )


def c2_verdict(
    summary_rows: Sequence[Mapping[str, Any]],
    linear_floor_rows: Sequence[Mapping[str, Any]],
    alpha: float,
    equivalence_margin: float,
) -> tuple[str, str]:
    """Claim C2 — a dormant value network learns a dissimilar task as well as a random init — from ``summary.csv``
    and ``linear_floor.csv`` rows. Returns (what was measured, verdict).

    The verdict rests on the final test MSE of every comparison on a dissimilar task (Eq. 1 and, when run, its
    input-permuted control) of every arm with a nonlinear activation, against every random init, at every lr:

    * *not supported* when the pretrained critic is significantly worse in any of them (exact one-sided sign-flip
      test over PPO runs, Holm-adjusted over the comparisons, p ≤ α);
    * *supported* when every (1 − 2α) interval of the difference lies within ±``equivalence_margin`` × the random-init
      mean (TOST at α for each; requiring all of them is an intersection–union test, which needs no correction);
    * *not testable at this scale* when neither could have happened for lack of PPO runs, else *inconclusive*.

    No-Act (identity) arms are reported but left out: an affine network reaches the same least-squares fit from any
    init, so its comparison measures optimisation speed, not plasticity.
    """
    if not 0 < alpha < 0.5 or not equivalence_margin > 0:
        raise ValueError(f"need 0 < alpha < 0.5 and equivalence_margin > 0, got {alpha}, {equivalence_margin}")
    rows = [_parse(r) for r in summary_rows if r["metric"] == VERDICT_METRIC]
    tested = [r for r in rows if r["task"] in DISSIMILAR_TASKS and r["activation"] != LINEAR_ACTIVATION]
    control = [r for r in rows if r["task"] == CONTROL_TASK and r["activation"] != LINEAR_ACTIVATION]
    linear = [r for r in rows if r["activation"] == LINEAR_ACTIVATION]
    level = f"{1 - 2 * alpha:.0%}"
    parts = [
        f"unit of replication: the {UNIT} (one critic per PPO seed; each run's paired differences pretrained − "
        f"random averaged over its regression seeds first); final test MSE; {level} paired t-interval over runs; "
        f"exact one-sided sign-flip p over runs, Holm over the comparisons of each family"
    ]

    for r in tested:
        margin = equivalence_margin * abs(r["random_mean"])
        parts.append(
            f"{_name(r)}: diff {_fmt(r['diff_mean'])} [{_fmt(r['diff_ci_low'])}, {_fmt(r['diff_ci_high'])}] "
            f"over {int(r['n_runs'])} runs (random mean {_fmt(r['random_mean'])}, margin ±{_fmt(margin)}), "
            f"p_worse {_fmt(r['p_worse'])}; epoch-0 output–target correlation pretrained "
            f"{_fmt(r['pretrained_corr0'])}, random {_fmt(r['random_corr0'])}"
        )
    equivalent = [
        abs(r["random_mean"]) * -equivalence_margin <= r["diff_ci_low"]
        and r["diff_ci_high"] <= abs(r["random_mean"]) * equivalence_margin
        for r in tested
    ]
    if tested:
        adjusted, worse, reachable = _one_sided(tested, "p_worse", alpha)
        worse_text = (
            f"pretrained significantly worse in {sum(worse)} (Holm-adjusted p {', '.join(_fmt(p) for p in adjusted)})"
            if any(reachable)
            else f"a worse pretrained critic cannot be shown: {_unreachable(tested, alpha)}"
        )
        parts.append(
            f"dissimilar tasks ({', '.join(sorted({r['task'] for r in tested}))}), {len(tested)} comparisons: "
            f"{worse_text}; {level} interval within ±{equivalence_margin:.0%} of the random-init mean in "
            f"{sum(equivalent)} of {len(tested)}"
        )
        if any(worse):
            verdict = NOT_SUPPORTED
        elif all(equivalent):
            verdict = SUPPORTED
        elif not any(reachable):
            runs = int(min(r["n_runs"] for r in tested))
            verdict = (
                f"{NOT_TESTABLE} (a worse pretrained critic cannot be shown with {runs} PPO runs, and not every "
                "interval is within the margin)"
            )
        else:
            verdict = INCONCLUSIVE
    else:
        verdict = f"{NOT_TESTABLE} (no dissimilar-task comparison of a nonlinear critic in the transfer summary)"

    if control:
        _, worse_c, reachable_c = _one_sided(control, "p_worse", alpha)
        _, better_c, _ = _one_sided(control, "p_better", alpha)
        text = (
            f"similar-task control (OCP predicts the pretrained critic WORSE): significantly worse in "
            f"{sum(worse_c)} of {len(control)}, significantly better (positive transfer) in {sum(better_c)} of "
            f"{len(control)} (Holm over the {len(control)} in each direction); diffs "
            + ", ".join(
                f"{_name(r)} {_fmt(r['diff_mean'])} [{_fmt(r['diff_ci_low'])}, {_fmt(r['diff_ci_high'])}]"
                for r in control
            )
        )
        parts.append(
            text if any(reachable_c) else f"{text}; not testable at this scale: {_unreachable(control, alpha)}"
        )
    else:
        parts.append("similar-task control: not run")

    if linear:
        floors = "; ".join(
            f"{f['distribution']} inputs (scale {_fmt(float(f['x_scale']))}"
            f"{', this run' if str(f['used']) in ('1', 'True') else ''}): "
            f"{_fmt(float(f['linear_floor_mse']))} = {float(f['floor_share']):.1%} of var(y) "
            f"{_fmt(float(f['target_variance']))}"
            for f in linear_floor_rows
        )
        measured = ", ".join(
            f"{r['task']} {r['arm']} vs {r['random_init']} lr {r['lr']:g}: pretrained "
            f"{_fmt(r['pretrained_mean'])}, random {_fmt(r['random_mean'])}"
            for r in linear
        )
        parts.append(
            f"No-Act (identity) critics are affine maps: both inits converge to the same least-squares fit, so "
            f"their comparison measures optimisation speed towards a shared optimum, not plasticity, and is "
            f"left out of the verdict; best affine test MSE on Eq. 1 (population, any input permutation) — "
            f"{floors or 'not given'}; measured final test MSE {measured}"
        )
    return "; ".join(parts), verdict


def format_summary(rows: Sequence[Mapping[str, Any]]) -> str:
    """The summary as a fixed-width table (the command line's view of ``summary.csv``)."""
    head = (
        f"{'task':<13} {'arm':<12} {'random':<6} {'lr':>6}  {'metric':<26} {'runs':>4} {'pretrained':>10} "
        f"{'random':>10} {'diff [interval]':>32} {'p_worse':>8} {'p_better':>8} {'corr0 p/r':>12}"
    )
    lines = [head]
    for r in map(_parse, rows):
        interval = f"{_fmt(r['diff_mean'])} [{_fmt(r['diff_ci_low'])}, {_fmt(r['diff_ci_high'])}]"
        lines.append(
            f"{r['task']:<13} {r['arm']:<12} {r['random_init']:<6} {r['lr']:>6g}  {r['metric']:<26} "
            f"{int(r['n_runs']):>4} {_fmt(r['pretrained_mean']):>10} {_fmt(r['random_mean']):>10} {interval:>32} "
            f"{_fmt(r['p_worse']):>8} {_fmt(r['p_better']):>8} "
            f"{_fmt(r['pretrained_corr0']) + '/' + _fmt(r['random_corr0']):>12}"
        )
    return "\n".join(lines)
