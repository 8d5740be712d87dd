"""The claims report's estimators and decision rules, on hand-made tables with hand-computed answers."""

import csv
import json
import math

import numpy as np
import pytest
import torch

from ocp.report import (
    INCONCLUSIVE,
    NOT_SUPPORTED,
    NOT_TESTABLE,
    SUPPORTED,
    Criteria,
    claim_c1,
    claim_c3,
    claim_c4,
    claim_c5,
    claim_c6,
    directional_tests,
    jaccard_per_run,
    level_test,
    scale_table,
    set_stability_per_run,
    steps_to_reach,
)
from ocp.runlog import mask_key, save_masks
from ocp.tables import Results

TAU = 0.025
WIDTH = 4


def _write_csv(path, rows):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _run(root, name, returns, layer_ratios=None, masks=None, switches=None):
    """One run folder. ``returns`` {global_step: return_recent}; ``layer_ratios`` {(net, layer, metric): {step: v}};
    ``masks`` {update: {(net, layer, kind): set of unit indices}}; ``switches`` rows of switches.csv."""
    path = root / name
    path.mkdir()
    _write_csv(
        path / "metrics.csv",
        [{"update": i + 1, "global_step": x, "return_recent": v} for i, (x, v) in enumerate(sorted(returns.items()))],
    )
    rows = []
    for net in ("actor", "critic"):
        for layer in ("l1", "l2", "network"):  # the hidden layers Results.layers reads, and the whole network
            rows += [
                {
                    "update": 1,
                    "global_step": x,
                    "network": net,
                    "layer": layer,
                    "kind": "hidden",
                    "metric": "dormant_ratio",
                    "threshold": TAU,
                    "value": 0.0,
                }
                for x in sorted(returns)
            ]
    for (net, layer, metric), series in (layer_ratios or {}).items():
        rows += [
            {
                "update": 0,
                "global_step": x,
                "network": net,
                "layer": layer,
                "kind": "hidden",
                "metric": metric,
                "threshold": TAU,
                "value": v,
            }
            for x, v in series.items()
        ]
    _write_csv(path / "plasticity.csv", rows)
    for update, sets in (masks or {}).items():
        tensors = {}
        for net in ("actor", "critic"):
            for layer in ("l1", "l2"):
                for kind in ("dormant", "zero_gradient"):
                    units = sets.get((net, layer, kind), set())
                    tensors[mask_key(net, layer, kind, TAU)] = torch.tensor([i in units for i in range(WIDTH)])
        save_masks(path, update, tensors)
    if switches is not None:
        _write_csv(path / "switches.csv", switches)
        _write_csv(path / "recovery.csv", [{"recovered": "0", "recovery_updates": ""}])
    return name


def _results(root, ppo_runs, scenario_runs=(), scenario=None):
    index = {
        "preset": "test",
        "scaled_down": "hand-made",
        "transfer_dir": "transfer",
        "ppo_runs": [{"arm": a, "seed": s, "activation": "relu", "run_dir": d} for a, s, d in ppo_runs],
        "scenario_runs": [{"arm": a, "seed": s, "activation": "relu", "run_dir": d} for a, s, d in scenario_runs],
    }
    if scenario:
        index["scenario"] = scenario
    (root / "index.json").write_text(json.dumps(index))
    return Results(root)


# ---------------------------------------------------------------------------------------------------------------
# Estimators
# ---------------------------------------------------------------------------------------------------------------


def _mask(*units):
    return np.array([i in units for i in range(WIDTH)])


def test_jaccard_per_run_differs_from_pooling_and_states_the_empty_rule():
    # Seed 1: three measurements with D = Z = {0} (J = 1 each). Seed 2: one measurement D = {0}, Z = {1} (J = 0) and
    # one where both are empty. Pooled over cases the mean would be 3/4; per run it is (1 + 0) / 2.
    dormant = {(1, "critic", "l2"): [_mask(0)] * 3, (2, "critic", "l2"): [_mask(0), _mask()]}
    zero = {(1, "critic", "l2"): [_mask(0)] * 3, (2, "critic", "l2"): [_mask(1), _mask()]}
    per_run, with_empty, where = jaccard_per_run(dormant, zero)
    assert per_run == {1: 1.0, 2: 0.0}
    assert with_empty == {1: 1.0, 2: 0.5}  # the both-empty case counted as agreement
    assert where == {"critic/l2": 4}


def test_jaccard_per_run_without_any_unit_is_nan():
    per_run, with_empty, where = jaccard_per_run({(1, "actor", "l1"): [_mask()]}, {(1, "actor", "l1"): [_mask()]})
    assert math.isnan(per_run[1]) and with_empty == {1: 1.0} and where == {}


def test_persistence_and_definition_3_overlap():
    # Z: {0,1} -> {0} -> {0,2,3}: persistence 1/2 then 1/1; Definition 3: 1/min(2,1) = 1, 1/min(1,3) = 1.
    zero = {(1, "critic", "l2"): [_mask(0, 1), _mask(0), _mask(0, 2, 3)], (2, "critic", "l2"): [_mask(), _mask()]}
    persistence, overlap, pairs = set_stability_per_run(zero)
    assert persistence[1] == 0.75 and overlap[1] == 1.0 and pairs == {1: 2, 2: 0}
    assert math.isnan(persistence[2]) and math.isnan(overlap[2])
    # Two measurements apart: {0,1} -> {0,2,3}: persistence 1/2, overlap 1/min(2,3) = 1/2.
    persistence, overlap, _ = set_stability_per_run(zero, horizon=2)
    assert persistence[1] == 0.5 and overlap[1] == 0.5
    # A fraction of the run: round(1.0 · 2) = 2 measurements apart; round(0.25 · 2) = 0 is raised to 1.
    assert set_stability_per_run(zero, run_fraction=1.0)[0][1] == 0.5
    assert set_stability_per_run(zero, run_fraction=0.25)[0][1] == 0.75


def test_steps_to_reach():
    assert steps_to_reach({0.0: -300.0, 10.0: 0.0, 20.0: 200.0, 30.0: 100.0}, 150.0) == (20.0, True)
    assert steps_to_reach({0.0: -300.0, 10.0: math.nan, 20.0: 0.0}, 150.0) == (20.0, False)


# ---------------------------------------------------------------------------------------------------------------
# Decision rules
# ---------------------------------------------------------------------------------------------------------------


def test_directional_tests_not_testable_with_three_runs():
    verdict, p_for, p_against = directional_tests({"x": [1.0, 2.0, 3.0]}, Criteria())["x"]
    assert verdict.startswith(NOT_TESTABLE) and "2^-3 = 0.125" in verdict
    assert math.isnan(p_for) and math.isnan(p_against)


def test_directional_tests_exact_p_and_holm():
    c = Criteria()
    # Five positive differences: exact one-sided p = 1/32 ≤ 0.05 → supported; five negative → not supported.
    assert directional_tests({"x": [1.0] * 5}, c)["x"] == (SUPPORTED, 1 / 32, 1.0)
    assert directional_tests({"x": [-1.0, -2.0, -3.0, -4.0, -5.0]}, c)["x"][0] == NOT_SUPPORTED
    # Two sub-tests with five runs: Holm needs p ≤ 0.025 but the smallest p is 1/32 · 2 = 0.0625 → not testable.
    two = directional_tests({"a": [1.0] * 5, "b": [1.0] * 5}, c)
    assert all(v[0].startswith(NOT_TESTABLE) and "Holm over 2 tests" in v[0] for v in two.values())
    # Six runs: p = 1/64 each, Holm-adjusted 2/64 and max(2/64, 1/64) = 1/32 → both supported.
    two = directional_tests({"a": [1.0] * 6, "b": [1.0] * 6}, c)
    assert two == {"a": (SUPPORTED, 1 / 32, 1.0), "b": (SUPPORTED, 1 / 32, 1.0)}
    # Without correction five runs suffice for each.
    assert directional_tests({"a": [1.0] * 5, "b": [1.0] * 5}, Criteria(correction="none"))["a"][0] == SUPPORTED
    # Mixed signs: d = (1, -1, 2, 3, 4, 5), observed sum 14. Sums ≥ 14: as observed (14), the -1 flipped (16), both
    # the 1 and the -1 flipped (14) → 3/64. Sums ≤ 14: all but the 16 → 63/64.
    assert directional_tests({"x": [1.0, -1.0, 2.0, 3.0, 4.0, 5.0]}, c)["x"] == (SUPPORTED, 3 / 64, 63 / 64)


def test_directional_tests_zero_differences_do_not_count_as_runs():
    verdict = directional_tests({"x": [0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0]}, Criteria())["x"][0]
    assert verdict == SUPPORTED  # five non-zero differences: p = 1/32
    verdict = directional_tests({"x": [0.0, 0.0, 0.0]}, Criteria())["x"][0]
    assert verdict == f"{NOT_TESTABLE} (all 3 paired differences are exactly 0)"


def test_level_test_by_interval_position():
    c = Criteria()  # 90 % t interval; for (0.9, 1.0, 0.95): mean 0.95, s = 0.05, t_{0.95,2} = 2.91999 → ±0.0843
    verdict, m, lo, hi = level_test([0.9, 1.0, 0.95], 0.8, 1.0, c)
    assert verdict == INCONCLUSIVE  # the upper end 1.034 passes 1.0
    assert m == pytest.approx(0.95) and hi - m == pytest.approx(2.919985580355516 * 0.05 / math.sqrt(3))
    assert level_test([0.9, 0.91, 0.92], 0.8, 1.0, c)[0] == SUPPORTED
    assert level_test([0.1, 0.2, 0.15], 0.8, 1.0, c)[0] == NOT_SUPPORTED
    assert level_test([0.9], 0.8, 1.0, c)[0].startswith(NOT_TESTABLE)
    # A criterion with only a lower bound (C3, C4): the same values are supported.
    assert level_test([0.9, 1.0, 0.95], 0.8, math.inf, c)[0] == SUPPORTED


def test_c4_near_full_persistence_is_supported(tmp_path):
    # Three runs with Z = {0, 1} at every measurement: persistence 1 in each; the t interval [1, 1] reaches 0.9.
    masks = {u: {("critic", "l2", "zero_gradient"): {0, 1}} for u in (1, 2, 3)}
    runs = [("relu", s, _run(tmp_path, f"r{s}", {0: 0.0}, masks=masks)) for s in (1, 2, 3)]
    assert claim_c4(_results(tmp_path, runs), Criteria(tau=TAU)).verdict == SUPPORTED


def test_untestable_sub_tests_stay_in_holms_family():
    # "a": sum 8; the sign assignments with a sum ≥ 8 are the observed one, the -1 flipped (10), and the -1 flipped
    # together with one of the three 1s (8 each): 5 of 128. "b" (two runs) and "c" (only zeros) are untestable, yet
    # Holm still multiplies a's p by m = 3: 15/128 > 0.05.
    a = [1.0, 1.0, 1.0, -1.0, 2.0, 2.0, 2.0]
    out = directional_tests({"a": a, "b": [1.0, 2.0], "c": [0.0] * 7}, Criteria())
    assert out["a"] == (INCONCLUSIVE, 3 * 5 / 128, 1.0)
    assert out["b"][0].startswith(NOT_TESTABLE) and out["c"][0].startswith(NOT_TESTABLE)


# ---------------------------------------------------------------------------------------------------------------
# Claims on hand-made results folders
# ---------------------------------------------------------------------------------------------------------------


def test_c3_and_c4_per_run_on_stored_masks(tmp_path):
    # Seed 1: critic l2 has D = Z = {0} at updates 1, 2 and Z = {0, 1} at update 3. Seed 2: D = {0}, Z = {1} once.
    seed1 = {
        1: {("critic", "l2", "dormant"): {0}, ("critic", "l2", "zero_gradient"): {0}},
        2: {("critic", "l2", "dormant"): {0}, ("critic", "l2", "zero_gradient"): {0}},
        3: {("critic", "l2", "dormant"): {0}, ("critic", "l2", "zero_gradient"): {0, 1}},
    }
    seed2 = {1: {("critic", "l2", "dormant"): {0}, ("critic", "l2", "zero_gradient"): {1}}, 2: {}}
    runs = [
        ("relu", 1, _run(tmp_path, "r1", {0: 0.0, 8192: 0.0}, masks=seed1)),
        ("relu", 2, _run(tmp_path, "r2", {0: 0.0}, masks=seed2)),
    ]
    res = _results(tmp_path, runs)
    c3 = claim_c3(res, Criteria(tau=TAU))
    # Seed 1: J = 1, 1, 1/2 → 5/6; seed 2: J = 0 → per-run values 0.833 and 0; every non-empty case in critic/l2.
    assert "n=2: 0.833, 0" in c3.measured and "critic/l2 4" in c3.measured
    assert c3.verdict == INCONCLUSIVE  # the 90 % t interval of (5/6, 0) with one degree of freedom spans 0.8
    c4 = claim_c4(res, Criteria(tau=TAU))
    # Seed 1: persistence 1, 1 → 1; seed 2: Z = {1} then {} → 0. Definition 3: seed 1 (1, 1) → 1; seed 2 no pair.
    assert "n=2: 1, 0) over 3 pairs" in c4.measured and "n=1: 1)" in c4.measured
    # Long horizon, a quarter of the run: round(0.25 · 2) → 1 measurement apart in both runs, so the same values;
    # the whole run: seed 1 {0} → {0, 1} keeps 1, seed 2 {1} → {} keeps 0, one pair each;
    # the longest run is 8,192 steps.
    assert "measurements 25% of the run apart (≈ 2,048 steps) IQM 0.5 [0, 1] (n=2: 1, 0) over 3 pairs" in c4.measured
    c4 = claim_c4(res, Criteria(tau=TAU, long_horizon=1.0))
    assert "measurements 100% of the run apart (≈ 8,192 steps) IQM 0.5 [0, 1] (n=2: 1, 0) over 2 pairs" in c4.measured


def test_c3_without_units_is_not_testable(tmp_path):
    runs = [("relu", s, _run(tmp_path, f"r{s}", {0: 0.0}, masks={1: {}, 2: {}})) for s in (1, 2)]
    claim = claim_c3(_results(tmp_path, runs), Criteria(tau=TAU))
    assert claim.verdict == f"{NOT_TESTABLE} (no dormant or zero-gradient unit at τ=0.025 in any measurement)"


def _ratios(first, last, steps=(100, 200, 300, 400)):
    """Late dormant / zero-gradient ratios of l1 and l2 in both networks (constant over the steps)."""
    out = {}
    for net in ("actor", "critic"):
        for metric in ("dormant_ratio", "zero_gradient_ratio"):
            out[(net, "l1", metric)] = {x: first for x in steps}
            out[(net, "l2", metric)] = {x: last for x in steps}
    return out


def test_c5_pairs_actor_and_critic_within_a_run(tmp_path):
    # Six runs with last − first = 0.25 in both networks and metrics: six per-run values, not twelve; Holm over the
    # two sub-tests: 2 · 1/64 → supported.
    runs = [("relu", s, _run(tmp_path, f"r{s}", {0: 0.0}, layer_ratios=_ratios(0.0, 0.25))) for s in range(1, 7)]
    claim = claim_c5(_results(tmp_path, runs), Criteria(tau=TAU))
    assert claim.verdict == SUPPORTED and "n=6: 0.25, 0.25, 0.25, 0.25, 0.25, 0.25" in claim.measured
    assert "exact p (Holm) 0.0312 for" in claim.measured


def test_c5_with_three_runs_is_not_testable(tmp_path):
    runs = [("relu", s, _run(tmp_path, f"r{s}", {0: 0.0}, layer_ratios=_ratios(0.0, 0.25))) for s in (1, 2, 3)]
    assert claim_c5(_results(tmp_path, runs), Criteria(tau=TAU)).verdict.startswith(NOT_TESTABLE)


def test_c1_not_testable_when_nothing_learned(tmp_path):
    flat = {100: -300.0, 200: -290.0, 300: -310.0, 400: -300.0}
    runs = [(arm, s, _run(tmp_path, f"{arm}{s}", flat)) for arm in ("relu", "no-act") for s in (1, 2)]
    claim = claim_c1(_results(tmp_path, runs), Criteria(tau=TAU))
    assert claim.verdict == f"{NOT_TESTABLE} (neither arm learned: gain below 500)"


def test_c1_speed_level_and_steps(tmp_path):
    # ReLU reaches 1,000 at step 200, No-Act at step 400; both end at 1,000 from -300 → level -300 + 0.5 · 1,300 = 350.
    relu = {100: -300.0, 200: 1000.0, 300: 1000.0, 400: 1000.0}
    noact = {100: -300.0, 200: 0.0, 300: 300.0, 400: 1000.0}
    runs = [("relu", s, _run(tmp_path, f"relu{s}", relu)) for s in range(1, 7)]
    runs += [("no-act", s, _run(tmp_path, f"noact{s}", noact)) for s in range(1, 7)]
    claim = claim_c1(_results(tmp_path, runs), Criteria(tau=TAU))
    assert "speed level 350" in claim.measured
    assert "ReLU IQM 200 [200, 200] (n=6" in claim.measured and "No-Act IQM 400 [400, 400] (n=6" in claim.measured
    # 1/64 for six faster runs, times m = 2 (the untestable dormancy sub-test stays in Holm's family).
    assert "faster (No-Act − ReLU steps): exact p (Holm) 0.0312 for" in claim.measured
    # No dormant unit in either arm: the dormancy half cannot be tested, so neither can the claim.
    assert claim.verdict == f"{NOT_TESTABLE} (all 6 paired differences are exactly 0)"


NETS_01 = (("actor", 0.3), ("critic", 0.5))


def test_c1_dormancy_per_network_and_at_every_threshold(tmp_path):
    # ReLU: actor 0.1 and critic 0.3 of their hidden units dormant at τ = 0.025 (mean 0.2);
    # No-Act: none. Two seeds per arm, so only the values are reported.
    relu = {100: -300.0, 200: 1000.0, 300: 1000.0, 400: 1000.0}
    ratios = {
        ("actor", "network", "dormant_ratio"): dict.fromkeys(relu, 0.1),
        ("critic", "network", "dormant_ratio"): dict.fromkeys(relu, 0.3),
    }
    runs = [("relu", s, _run(tmp_path, f"relu{s}", relu, layer_ratios=ratios)) for s in (1, 2)]
    runs += [("no-act", s, _run(tmp_path, f"noact{s}", relu)) for s in (1, 2)]
    for s in (1, 2):  # ReLU's fractions at τ = 0.1 (actor 0.3, critic 0.5), a row per measurement
        with open(tmp_path / f"relu{s}" / "plasticity.csv", "a") as f:
            f.writelines(f"0,{x},{net},network,hidden,dormant_ratio,0.1,{v}\n" for x in relu for net, v in NETS_01)
    claim = claim_c1(_results(tmp_path, runs), Criteria(tau=TAU, other_taus=(0.1,)))
    assert "(τ=0.025, mean of actor and critic): ReLU IQM 0.2 [0.2, 0.2] (n=2: 0.2, 0.2)" in claim.measured
    assert (
        "by network: ReLU actor IQM 0.1 [0.1, 0.1] (n=2: 0.1, 0.1); ReLU critic IQM 0.3 [0.3, 0.3] (n=2: 0.3, 0.3); "
        "No-Act actor IQM 0 [0, 0] (n=2: 0, 0); No-Act critic IQM 0 [0, 0] (n=2: 0, 0)"
    ) in claim.measured
    # At τ = 0.1: ReLU (0.3 + 0.5) / 2; No-Act has no row there, so its fraction is not available.
    assert "mean of actor and critic at τ=0.1: ReLU IQM 0.4 [0.4, 0.4] (n=2: 0.4, 0.4), No-Act n/a" in claim.measured


def _switch_rows(after):
    return [{"switch": 1, "layer": "network", "kind": "zero_gradient", "threshold": TAU, "after_ratio": after}]


def test_c6_not_testable_when_task_0_was_not_learned(tmp_path):
    returns = {100: -300.0, 200: -250.0, 300: -300.0, 400: -320.0}
    runs = [
        (arm, s, _run(tmp_path, f"{arm}{s}", returns, switches=_switch_rows(0.01)))
        for arm in ("none", "gradient_perturb")
        for s in (1, 2)
    ]
    res = _results(
        tmp_path,
        [("relu", 1, _run(tmp_path, "p", {0: 0.0}))],
        runs,
        scenario={"name": "reverse", "period": 200, "switch_steps": [200]},
    )
    claim = claim_c6(res, Criteria(tau=TAU))
    assert claim.verdict == f"{NOT_TESTABLE} (the agent did not learn task 0 before the first switch: gain 50 < 500)"


def test_c6_noninferiority_margin_is_a_share_of_the_task_0_gain(tmp_path):
    # none: first return -300, pre-switch 700 (gain 1,000 → margin 100); post-switch 500. Perturbation: post-switch
    # 500 - 20 · k for seeds k = 1..6 → paired differences -20..-120: mean -70, interval reaches below -100.
    runs = []
    for s in range(1, 7):
        runs.append(
            ("none", s, _run(tmp_path, f"none{s}", {100: -300.0, 200: 700.0, 300: 500.0}, switches=_switch_rows(0.0)))
        )
        runs.append(
            (
                "gradient_perturb",
                s,
                _run(tmp_path, f"gp{s}", {100: -300.0, 200: 700.0, 300: 500.0 - 20 * s}, switches=_switch_rows(0.0)),
            )
        )
    res = _results(
        tmp_path,
        [("relu", 1, _run(tmp_path, "p", {0: 0.0}))],
        runs,
        scenario={"name": "reverse", "period": 200, "switch_steps": [200]},
    )
    claim = claim_c6(res, Criteria(tau=TAU))
    assert "non-inferiority margin −100" in claim.measured
    # All six differences negative: p against = 1/64, Holm over one sub-test → the perturbation hurts.
    assert "(a) does not hurt" in claim.measured and claim.verdict == NOT_SUPPORTED


def _switch_grid(root, post_returns, after_zero_gradient):
    """Task-switch runs only: first return -300, 700 before the switch at step 100 (a task-0 gain of 1,000), then
    post-switch rows ret ± 1 (mean ret); the zero-gradient fraction after the switch as given, per seed."""
    runs = []
    for arm, per_seed in post_returns.items():
        for seed, ret in enumerate(per_seed, start=1):
            returns = {10: -300.0, 50: 700.0, 150: ret - 1, 200: ret + 1}
            zg = after_zero_gradient[arm][seed - 1]
            rows = [
                {
                    "switch": 1,
                    "network": net,
                    "layer": "network",
                    "kind": "zero_gradient",
                    "threshold": TAU,
                    "after_ratio": zg,
                }
                for net in ("actor", "critic")
            ]
            runs.append((arm, seed, _run(root, f"{arm}-{seed}", returns, switches=rows)))
    return _results(
        root,
        [("relu", 1, _run(root, "p", {0: 0.0}))],
        runs,
        scenario={"name": "reverse", "period": 100, "switch_steps": [100]},
    )


NONE_ZG = [0.30, 0.32, 0.28, 0.31, 0.29, 0.30]


@pytest.mark.parametrize(
    "perturb, verdict",
    [
        ([101.0, 99.0, 102.0, 98.0, 101.0, 99.0], SUPPORTED),  # differences ±1, ±2: 90 % interval ±1.27 above −100
        ([50.0] * 6, NOT_SUPPORTED),
    ],  # 50 below in every seed: p against 1/64, Holm over 3 → 3/64 ≤ 0.05: it hurts
)
def test_c6_rules(tmp_path, perturb, verdict):
    none = [100.0] * 6
    zg = {
        "none": NONE_ZG,
        "gradient_perturb": NONE_ZG,
        "l2_init": [v - 0.2 for v in NONE_ZG],
        "weight_clipping": [v - 0.25 for v in NONE_ZG],
    }
    res = _switch_grid(
        tmp_path, {"none": none, "gradient_perturb": perturb, "l2_init": none, "weight_clipping": none}, zg
    )
    claim = claim_c6(res, Criteria(tau=TAU))
    assert claim.verdict == verdict
    assert "gain on task 0 before the first switch (pre-switch − first return) IQM 1e+03" in claim.measured
    assert "non-inferiority margin −100 (10% of the task-0 gain)" in claim.measured
    # Each constraint arm is below none in all six seeds: p = 1/64, Holm over the three sub-tests → 3/64.
    assert (
        "l2_init reduces trapped neurons (none − l2_init zero-gradient fraction): exact p (Holm) 0.0469 for"
        in claim.measured
    )
    assert claim.measured.endswith("(b) constraints reduce trapped neurons → supported")
    if verdict == SUPPORTED:
        # d = (1, −1, 2, −2, 1, −1): mean 0, s = √2.4, t_{0.95,5} = 2.015 → ±1.27.
        assert "gradient_perturb − none post-switch return 0 [-1.27, 1.27] (90% t)" in claim.measured


def test_c6_constraints_not_testable_without_trapped_units(tmp_path):
    zeros = [0.0] * 6
    res = _switch_grid(tmp_path, {"none": [100.0] * 6, "l2_init": [100.0] * 6}, {"none": zeros, "l2_init": zeros})
    claim = claim_c6(res, Criteria(tau=TAU))
    assert (
        "(b) constraints reduce trapped neurons → not testable at this scale (the none arm has no zero-gradient"
        in claim.measured
    )


def test_scale_table_marks_verdicts_that_change(tmp_path):
    # Two scales: at the first no unit is ever in either set (C3 not testable), at the second D = Z everywhere (C3
    # supported, per-run Jaccard 1 in three runs, interval [1, 1]).
    def scale(name, masks, steps):
        root = tmp_path / name
        root.mkdir()
        runs = [("relu", s, _run(root, f"r{s}", {steps: 0.0}, masks=masks)) for s in (1, 2, 3)]
        runs += [("no-act", s, _run(root, f"n{s}", {steps: 0.0}, masks=masks)) for s in (1, 2, 3)]
        (root / "transfer").mkdir()
        _write_csv(root / "transfer" / "summary.csv", [{"task": "eq1", "metric": "final_train_mse"}])
        _write_csv(root / "transfer" / "linear_floor.csv", [{"distribution": "normal"}])
        return _results(root, runs).root

    both = {("critic", "l2", "dormant"): {0}, ("critic", "l2", "zero_gradient"): {0}}
    small = scale("small", {1: {}, 2: {}}, 999_424)
    large = scale("large", {1: both, 2: both}, 20_000_000)
    rows = scale_table([small, large], Criteria(tau=TAU)).splitlines()
    assert rows[0] == (
        "| claim | test (3/3 seeds per arm × 1M steps) | test (3/3 seeds per arm × 20M steps) | changes with scale |"
    )
    assert "| C3 | not testable at this scale | supported | yes |" in rows


def test_c3_and_c4_name_missing_masks(tmp_path):
    runs = [("relu", 1, _run(tmp_path, "r1", {0: 0.0}, masks={1: {}})), ("relu", 2, _run(tmp_path, "r2", {0: 0.0}))]
    res = _results(tmp_path, runs)
    for claim in (claim_c3(res, Criteria(tau=TAU)), claim_c4(res, Criteria(tau=TAU))):
        assert claim.verdict == f"{NOT_TESTABLE} (no stored neuron masks for seeds 2)"
