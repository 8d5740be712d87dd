"""What a reader sees in the figures: titles, axes, and panels that say why they hold no line (the figures of a real
results folder are drawn in test_reproduce.py)."""

import csv
import json
import math

import matplotlib.pyplot as plt
import pytest

from ocp import figures
from ocp.figures import NARROW_PANEL_TICKS, PlainLogFormatter, log_limits, overlap_reason, steps_axis

STEPS = [250_000, 500_000, 750_000, 1_000_000]
TAU = 0.025


def _write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _plasticity(arm, seed):
    """No unit of the policy (and of the value's first layer) is ever dormant or zero-gradient at τ = 0.025; 30 % of
    ReLU's last value layer is, the same units at every measurement. Effective ranks of 1 and 9 in the two seeds."""
    rows = []
    for i, step in enumerate(STEPS):
        for net in ("actor", "critic"):
            for layer, kind in (("0", "hidden"), ("2", "hidden"), ("4", "output")):
                share = 0.3 if (arm, net, layer) == ("relu", "critic", "2") else 0.0
                values = {
                    "dormant_ratio": share,
                    "zero_gradient_ratio": share,
                    "dormant_overlap": 1.0 if share and i else math.nan,
                    "zero_gradient_overlap": 1.0 if share and i else math.nan,
                }
                rows += [
                    {
                        "global_step": step,
                        "network": net,
                        "layer": layer,
                        "kind": kind,
                        "metric": metric,
                        "threshold": TAU,
                        "value": value,
                    }
                    for metric, value in values.items()
                ]
                rows.append(
                    {
                        "global_step": step,
                        "network": net,
                        "layer": layer,
                        "kind": kind,
                        "metric": "effective_rank",
                        "threshold": "",
                        "value": 1 if seed == 1 else 9,
                    }
                )
    return rows


@pytest.fixture
def results(tmp_path):
    """A results folder of 2 arms x 2 seeds x 1M steps, and a transfer table of one PPO run per arm."""
    runs = []
    for arm in ("relu", "no-act"):
        for seed in (1, 2):
            run_dir = f"runs/{arm}-{seed}"
            _write(tmp_path / run_dir / "metrics.csv", [{"global_step": s, "return_recent": s / 1e3} for s in STEPS])
            _write(tmp_path / run_dir / "plasticity.csv", _plasticity(arm, seed))
            runs.append({"arm": arm, "seed": seed, "activation": arm, "run_dir": run_dir})
    curves = [
        {
            "task": task,
            "arm": arm,
            "ppo_run": f"PPO-{arm}-seed1",
            "init": init,
            "lr": lr,
            "epoch": epoch,
            "test_mse": 10.0 / (1 + epoch),
        }
        for task in ("eq1", "similar")
        for arm in ("relu", "no-act")
        for init in ("pretrained", "random_ppo")
        for lr in (0.01, 0.005)
        for epoch in range(3)
    ]
    _write(tmp_path / "transfer" / "curves.csv", curves)
    index = {"preset": "test", "scaled_down": "", "ppo_runs": runs, "transfer_dir": "transfer"}
    (tmp_path / "index.json").write_text(json.dumps(index))
    return figures.Results(tmp_path)


@pytest.fixture
def drawn(monkeypatch, tmp_path):
    """Figures drawn by name, kept open instead of saved."""
    kept = {}

    def keep(fig, data, out, name):
        fig.canvas.draw()
        kept[name] = fig
        return []

    monkeypatch.setattr(figures, "_save", keep)
    yield kept
    for fig in kept.values():
        plt.close(fig)


def _texts(ax):
    return [t.get_text() for t in ax.texts]


def _step_labels(ax):
    """The x tick labels inside the axis (a locator also returns the ticks just beyond it)."""
    low, high = ax.get_xlim()
    return [label.get_text() for label, x in zip(ax.get_xticklabels(), ax.get_xticks()) if low <= x <= high]


@pytest.mark.parametrize(
    "last_step, labels",
    [
        (1_000_000, ["0", "250k", "500k", "750k", "1M"]),
        (20_000_000, ["0", "5M", "10M", "15M", "20M"]),
        (3_072, ["0", "1k", "2k", "3k"]),
    ],
)
def test_steps_axis_reads_in_round_steps_from_zero(last_step, labels):
    fig, ax = plt.subplots()
    steps_axis(ax, last_step)
    fig.canvas.draw()
    assert _step_labels(ax) == labels
    assert ax.get_xlim() == (0, last_step)
    plt.close(fig)


@pytest.mark.parametrize(
    "last_step, ticks, labels, right",
    [
        (999_424, 4, ["0", "250k", "500k", "750k", "1M"], 1_000_000),  # the last logged step of a 1M run
        (1_048_576, 4, ["0", "500k", "1M"], 1_048_576),  # 2^20: a tick at 1.25M would leave a fifth of the axis empty
        (999_424, NARROW_PANEL_TICKS, ["0", "500k", "1M"], 1_000_000),
    ],
)
def test_steps_axis_ends_at_a_round_step_just_above_the_last(last_step, ticks, labels, right):
    fig, ax = plt.subplots()
    steps_axis(ax, last_step, ticks)
    fig.canvas.draw()
    assert _step_labels(ax) == labels
    assert ax.get_xlim() == (0, right)
    plt.close(fig)


def test_titles_carry_the_papers_figure_numbers(results, drawn, tmp_path):
    for fn in figures.FIGURES.values():
        fn(results, tmp_path)
    for name, number in (("fig1", 1), ("fig3", 3), ("fig4", 4), ("fig5", 5), ("fig6", 6), ("fig7", 7), ("fig8", 8)):
        assert drawn[name].get_suptitle().startswith(f"Figure {number} (paper")
    assert "fig_switches" not in drawn  # no task-switch runs in these results


def test_overlap_panel_of_a_layer_without_units_says_why(results, drawn, tmp_path):
    figures.fig4_last_layer(results, tmp_path)
    (policy_share, value_share), (policy_overlap, value_overlap) = drawn["fig4"].axes[:2], drawn["fig4"].axes[2:]
    assert _texts(policy_overlap) == [f"no dormant or\nzero-gradient\nunits at τ = {TAU:g}:\noverlap undefined"]
    assert list(policy_overlap.get_yticks()) == []
    assert _texts(value_overlap) == []
    assert value_overlap.lines[0].get_marker() == "o"  # an overlap defined at isolated measurements stays visible
    assert _texts(policy_share) == [f"no dormant or\nzero-gradient unit\nat τ = {TAU:g}"]
    assert policy_share.get_ylim()[1] == pytest.approx(0.05 * 1.03)  # all zero: a 0-5 % axis, the text says why
    assert value_share.get_ylim()[1] == pytest.approx(0.5 * 1.03)  # 30 %: the smallest of 5, 10, 25, 50, 100 % above
    assert _texts(value_share) == []
    assert policy_share.get_title() == "policy hidden 2 of 2"


def test_dormancy_panels_flat_at_zero_say_so(results, drawn, tmp_path):
    figures.fig1_return_and_dormancy(results, tmp_path)
    reason = f"no dormant unit\nin any run\nat τ = {TAU:g}"
    assert [_texts(ax) for ax in drawn["fig1"].axes[1:]] == [[reason], [reason], [reason], []]
    assert _step_labels(drawn["fig1"].axes[4]) == ["0", "500k", "1M"]


def test_rank_axis_cuts_a_band_reaching_below_zero(results, drawn, tmp_path):
    figures.fig8_ranks(results, tmp_path)
    low, high = drawn["fig8"].axes[0].get_ylim()  # mean 5, t-interval of two seeds about -46 to 56
    assert low == pytest.approx(-0.03 * high)


def test_overlap_reason_tells_empty_sets_from_sets_never_seen_twice_in_a_row():
    once = [{"x": 1, "mean": 0.0}, {"x": 2, "mean": 0.2}, {"x": 3, "mean": 0.0}]
    never = [{"x": 1, "mean": 0.0}, {"x": 2, "mean": math.nan}]
    assert overlap_reason({"dormant": never, "zero_gradient": once}, ["dormant", "zero_gradient"], 0.1) == (
        "no dormant\nunits at τ = 0.1;\nzero-gradient units never\nin two consecutive\nmeasurements:\noverlap undefined"
    )


def test_transfer_bars_of_a_single_ppo_run_have_no_error_bar(results, drawn, tmp_path):
    figures.fig3_transfer(results, tmp_path)
    bars = drawn["fig3"].axes[len(["eq1", "similar"]) :]  # the row of final-MSE panels below the curves
    assert all(len(ax.patches) == 4 and not ax.containers[4:] for ax in bars)  # 2 arms x 2 inits, bars only


def test_transfer_rows_of_an_lr_that_was_not_run_say_so(results, drawn, tmp_path):
    path = tmp_path / "transfer" / "curves.csv"
    with open(path) as f:
        kept = [row for row in csv.DictReader(f) if row["lr"] == "0.01"]
    _write(path, kept)
    figures.fig5_transfer_lrs(figures.Results(tmp_path), tmp_path)
    rows = [drawn["fig5"].axes[i : i + 2] for i in range(0, 8, 2)]  # curves and bars at lr 0.01, then at 0.005
    assert all(_texts(ax) == [] for ax in rows[0] + rows[1])
    assert all(
        _texts(ax) == ["not run at lr 0.005\nin these results"] and not ax.lines and not ax.patches
        for ax in rows[2] + rows[3]
    )
    assert rows[2][0].get_title() == "(b) Eq. 1 (dissimilar task), lr 0.005"


def test_log_axis_labels_are_plain_numbers():
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.set_yscale("log")
    ax.set_ylim(0.05, 30)
    ax.yaxis.set_major_formatter(PlainLogFormatter())
    ax.yaxis.set_minor_formatter(PlainLogFormatter(minor_thresholds=(2, 0.5)))
    fig.canvas.draw()
    low, high = ax.get_ylim()
    labels = [
        label.get_text()
        for which in (False, True)
        for label, y in zip(ax.get_yticklabels(minor=which), ax.get_yticks(minor=which))
        if low <= y <= high and label.get_text()
    ]
    assert sorted(labels, key=float) == ["0.1", "1", "10"]  # three decades: decades only, none written as 1e-01
    ax.set_ylim(0.5, 30)
    fig.canvas.draw()
    labels = [label.get_text() for label in ax.get_yticklabels(minor=True) if label.get_text()]
    assert "0.6" in labels and "20" in labels  # under two decades: some minor ticks too, as plain numbers
    plt.close(fig)


def test_log_axis_limits_follow_the_means_not_a_band_reaching_zero():
    # Few, spread seeds give a t-interval whose lower edge is <= 0 or tiny; the axis must not stretch to it.
    fig, ax = plt.subplots()
    ax.set_yscale("log")
    points = [
        {"x": 0, "mean": 2.0, "ci_low": -1.0, "ci_high": 8.0, "n": 3},
        {"x": 1, "mean": 1.0, "ci_low": 0.001, "ci_high": 3.0, "n": 3},
        {"x": 2, "mean": 1.5, "ci_low": math.nan, "ci_high": math.nan, "n": 1},
    ]
    log_limits(ax, points)
    assert ax.get_ylim() == pytest.approx((0.5, 12.0))  # min mean / 2, max band top * 1.5
    plt.close(fig)


def test_log_axis_limits_leave_an_axis_without_positive_values_alone():
    fig, ax = plt.subplots()
    before = ax.get_ylim()
    log_limits(ax, [{"x": 0, "mean": 0.0, "ci_low": 0.0, "ci_high": 0.0, "n": 2}])
    assert ax.get_ylim() == before
    plt.close(fig)
