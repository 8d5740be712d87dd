"""C2's statistics on tables written by hand: the paired, run-level estimator of the summary, and the decision —
Holm's correction, equivalence, the similar-task control counted in the direction OCP predicts, No-Act left out."""

import math

import pytest

from ocp.statistics import INCONCLUSIVE, NOT_SUPPORTED, NOT_TESTABLE, SUPPORTED
from ocp.transfer_statistics import SUMMARY_COLUMNS, c2_verdict, format_summary, summarise

T_95_2 = 0.9 * math.sqrt(2 / 0.19)  # Student t, 95% quantile, 2 df: (2p − 1)·√(2 / (4p(1 − p))) at p = 0.95

# Final test MSE (epoch 2) per (PPO run, regression seed) of pretrained and random init; at epoch 1 the pretrained
# regressor is 1 higher than at epoch 2 and the random one equal to it. Paired differences per seed and their run means:
#   run A: (2 − 1, 4 − 2) = (1, 2) → 1.5;   run B: (3 − 3.5, 5 − 4.5) = (−0.5, 0.5) → 0;   run C: (3 − 1, 6 − 2) → 3.
FINAL = {"A": [(2.0, 1.0), (4.0, 2.0)], "B": [(3.0, 3.5), (5.0, 4.5)], "C": [(3.0, 1.0), (6.0, 2.0)]}
CORR0 = {"pretrained": 0.6, "random_ppo": 0.1}


def _curves(final=FINAL, task="eq1", arm="relu", activation="relu", as_text=False):
    rows = []
    for run, pairs in final.items():
        for seed, (pretrained, random) in enumerate(pairs):
            for init, value, bump in (("pretrained", pretrained, 1.0), ("random_ppo", random, 0.0)):
                for epoch, mse in ((0, 50.0), (1, value + bump), (2, value)):
                    row = {
                        "task": task,
                        "arm": arm,
                        "activation": activation,
                        "ppo_run": run,
                        "ppo_seed": 0,
                        "init": init,
                        "lr": 0.01,
                        "seed": seed,
                        "epoch": epoch,
                        "train_mse": 0.0,
                        "test_mse": mse,
                        "output_target_corr": CORR0[init] + 0.1 * seed,
                    }
                    rows.append({k: str(v) for k, v in row.items()} if as_text else row)
    return rows


def test_summary_replicates_over_ppo_runs_with_paired_differences():
    rows = summarise(_curves(), alpha=0.05)
    assert [r["metric"] for r in rows] == ["final_test_mse", "mean_test_mse_over_epochs"]
    final, over_epochs = rows
    assert set(final) == set(SUMMARY_COLUMNS)
    assert (final["unit"], final["n_runs"], final["seeds_per_run"], final["epochs"]) == ("PPO run", 3, 2, 2)
    # Run means: pretrained (3, 4, 4.5), random (1.5, 4, 1.5); run-level differences d = (1.5, 0, 3).
    assert final["pretrained_mean"] == pytest.approx(11.5 / 3) and final["random_mean"] == pytest.approx(7 / 3)
    assert final["diff_mean"] == pytest.approx(1.5) and final["diff_sd"] == pytest.approx(1.5)
    assert final["relative_diff"] == pytest.approx(1.5 / (7 / 3))
    half = T_95_2 * 1.5 / math.sqrt(3)  # the 90% (1 − 2α) t-interval over 3 runs, s = 1.5
    assert final["interval_confidence"] == pytest.approx(0.9)
    assert (final["diff_ci_low"], final["diff_ci_high"]) == pytest.approx((1.5 - half, 1.5 + half), abs=1e-12)
    # Sign flips of (1.5, 0, 3): sums 4.5, 4.5, 1.5, 1.5, −1.5, −1.5, −4.5, −4.5 (the 0 flips to itself).
    assert final["p_worse"] == 2 / 8 and final["p_better"] == 1.0
    assert final["smallest_p"] == 1 / 4  # two non-zero run differences
    # Epoch-0 correlation: the mean over runs of each run's mean over seeds (seed 1 adds 0.1).
    assert final["pretrained_corr0"] == pytest.approx(0.65) and final["random_corr0"] == pytest.approx(0.15)
    # Test MSE over epochs 1…2: the pretrained side is 0.5 higher in every pair, so d = (2, 0.5, 3.5).
    assert over_epochs["diff_mean"] == pytest.approx(2.0) and over_epochs["diff_sd"] == pytest.approx(1.5)
    # A CSV's strings give the same rows.
    assert summarise(_curves(as_text=True), alpha=0.05) == rows
    assert "eq1" in format_summary(rows)


def test_a_run_without_a_finite_pair_leaves_the_test():
    final = {**FINAL, "D": [(math.nan, 1.0), (2.0, math.nan)]}
    row = summarise(_curves(final))[0]
    assert (row["n_runs"], row["diff_mean"], row["pretrained_mean"]) == (3, pytest.approx(1.5), pytest.approx(11.5 / 3))


def test_summary_refuses_incomplete_curves_and_a_bad_alpha():
    curves = [r for r in _curves() if not (r["ppo_run"] == "B" and r["epoch"] == 1)]
    with pytest.raises(ValueError, match="epochs \\[0, 2\\], expected 0 … E"):
        summarise(curves)
    with pytest.raises(ValueError, match="appears twice"):
        summarise(_curves() + _curves()[:1])
    with pytest.raises(ValueError, match="alpha must be in"):
        summarise(_curves(), alpha=0.5)


def _row(
    task="eq1",
    arm="relu",
    activation="relu",
    random_init="ppo",
    lr=0.01,
    n=6,
    diff=0.0,
    lo=-0.05,
    hi=0.05,
    random_mean=1.0,
    p_worse=0.5,
    p_better=0.5,
):
    row = {c: "" for c in SUMMARY_COLUMNS}
    row.update(
        task=task,
        arm=arm,
        activation=activation,
        random_init=random_init,
        lr=lr,
        metric="final_test_mse",
        epochs=100,
        unit="PPO run",
        n_runs=n,
        seeds_per_run=5,
        pretrained_mean=random_mean + diff,
        random_mean=random_mean,
        diff_mean=diff,
        diff_sd=0.1,
        relative_diff=diff / random_mean,
        interval_confidence=0.9,
        diff_ci_low=lo,
        diff_ci_high=hi,
        p_worse=p_worse,
        p_better=p_better,
        smallest_p=2.0**-n,
        pretrained_corr0=0.6,
        random_corr0=0.0,
    )
    return row


FLOORS = [
    {
        "distribution": "normal",
        "x_scale": 1.0,
        "noise_std": 0.1,
        "target_variance": 14.37,
        "linear_floor_mse": 5.319,
        "floor_share": 5.319 / 14.37,
        "used": 1,
    },
    {
        "distribution": "uniform",
        "x_scale": 1.0,
        "noise_std": 0.1,
        "target_variance": 3.261,
        "linear_floor_mse": 0.3135,
        "floor_share": 0.3135 / 3.261,
        "used": 0,
    },
]


def test_equivalent_everywhere_is_supported_and_no_act_is_left_out():
    rows = [
        _row(lr=0.01),
        _row(lr=0.005, random_init="torch", lo=-0.099, hi=0.1),
        _row(task="eq1_permuted", lo=-0.08, hi=0.02),
        # No-Act: pretrained far worse with an exact p of 2^-6 — reported, but not part of the verdict.
        _row(arm="no-act", activation="identity", diff=3.0, lo=2.0, hi=4.0, p_worse=1 / 64),
    ]
    measured, verdict = c2_verdict(rows, FLOORS, alpha=0.05, equivalence_margin=0.1)
    assert verdict == SUPPORTED
    assert "within ±10% of the random-init mean in 3 of 3" in measured and "significantly worse in 0" in measured
    assert "eq1_permuted relu vs random (ppo init)" in measured and "unit of replication: the PPO run" in measured
    assert "normal inputs (scale 1, this run): 5.32 = 37.0% of var(y) 14.4" in measured
    assert "uniform inputs (scale 1): 0.314 = 9.6% of var(y) 3.26" in measured
    assert "left out of the verdict" in measured and "similar-task control: not run" in measured
    assert "epoch-0 output–target correlation pretrained 0.6, random 0" in measured


def test_holm_decides_whether_a_worse_pretrained_critic_refutes_the_claim():
    # Two comparisons, p_worse 0.02 and 0.03: Holm gives 0.04 and 0.04, both ≤ 0.05 → not supported.
    worse = [_row(diff=0.5, lo=0.2, hi=0.8, p_worse=0.02), _row(lr=0.005, diff=0.5, lo=0.2, hi=0.8, p_worse=0.03)]
    measured, verdict = c2_verdict(worse, FLOORS, 0.05, 0.1)
    assert verdict == NOT_SUPPORTED and "significantly worse in 2 (Holm-adjusted p 0.04, 0.04)" in measured
    # p_worse 0.03 and 0.04: Holm gives 0.06 and 0.06 → nothing significant, nothing equivalent: inconclusive.
    unclear = [_row(diff=0.5, lo=0.2, hi=0.8, p_worse=0.03), _row(lr=0.005, diff=0.5, lo=0.2, hi=0.8, p_worse=0.04)]
    measured, verdict = c2_verdict(unclear, FLOORS, 0.05, 0.1)
    assert verdict == INCONCLUSIVE and "Holm-adjusted p 0.06, 0.06" in measured


def test_too_few_ppo_runs_is_not_testable():
    # 3 runs: the exact test's smallest p is 1/8 > 0.05, so a worse critic could never be shown.
    rows = [_row(n=3, diff=0.5, lo=-0.2, hi=1.2, p_worse=0.125)]
    measured, verdict = c2_verdict(rows, FLOORS, 0.05, 0.1)
    assert (
        verdict == f"{NOT_TESTABLE} (a worse pretrained critic cannot be shown with 3 PPO runs, and not every "
        "interval is within the margin)"
    )
    assert (
        "cannot be shown: with 3 PPO runs the exact test's smallest one-sided p is 2^-3 = 0.125; Holm over 1 "
        "comparisons needs ≤ 0.05" in measured
    )
    # Equivalence needs no exact p: 3 runs can still support the claim.
    assert c2_verdict([_row(n=3, lo=-0.05, hi=0.05, p_worse=0.5)], FLOORS, 0.05, 0.1)[1] == SUPPORTED
    assert c2_verdict([], FLOORS, 0.05, 0.1)[1].startswith(NOT_TESTABLE)


def test_the_similar_task_control_counts_a_worse_pretrained_critic():
    # OCP predicts the pretrained critic learns the similar task WORSE (a positive difference). Built from curves:
    # six PPO runs where pretrained ends 1 above random in every seed, and six where it ends 1 below.
    worse_runs = {f"w{k}": [(2.0 + k, 1.0 + k)] for k in range(6)}
    better_runs = {f"b{k}": [(1.0 + k, 2.0 + k)] for k in range(6)}
    summary = summarise(_curves(worse_runs, task="similar", arm="relu-worse")) + summarise(
        _curves(better_runs, task="similar", arm="relu-better")
    )
    final = {r["arm"]: r for r in summary if r["metric"] == "final_test_mse"}
    assert final["relu-worse"]["p_worse"] == 1 / 64 and final["relu-better"]["p_better"] == 1 / 64
    measured, _ = c2_verdict(summary, FLOORS, 0.05, 0.1)
    # Holm over the 2 comparisons in each direction: 2/64 ≤ 0.05 once each way.
    assert (
        "similar-task control (OCP predicts the pretrained critic WORSE): significantly worse in 1 of 2, "
        "significantly better (positive transfer) in 1 of 2" in measured
    )
    # Only positive transfer: the control counts it as better, never as the gap OCP predicts.
    measured, _ = c2_verdict([r for r in summary if r["arm"] == "relu-better"], FLOORS, 0.05, 0.1)
    assert "significantly worse in 0 of 1, significantly better (positive transfer) in 1 of 1" in measured


def test_rows_of_an_older_summary_are_refused():
    old = {"task": "eq1", "group": "PPO-relu", "metric": "final_test_mse", "welch_p": "0.5"}
    with pytest.raises(ValueError, match="lacks columns"):
        c2_verdict([old], FLOORS, 0.05, 0.1)
    with pytest.raises(ValueError, match="equivalence_margin"):
        c2_verdict([], FLOORS, 0.05, 0.0)
