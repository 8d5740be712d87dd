"""Every data figure of the paper, drawn from the tidy tables of a results folder (never from training code).

Each figure is saved as ``figN.png`` and ``figN.pdf`` with ``figN.csv`` beside it: the exact numbers drawn (one row per
point: panel, series, x, mean, 95% CI over seeds, number of seeds). Seeds are shown as a mean line with a shaded
Student-t confidence band. Sizes are for a two-column paper (7 in wide, 7-pt text).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Callable, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import EngFormatter  # noqa: E402

from ocp.statistics import mean_ci  # noqa: E402
from ocp.tables import Results, aggregate, rows_for, to_float  # noqa: E402

__all__ = ["draw_all", "FIGURES", "DEFAULT_TAU"]

#: τ of the dormant and zero-gradient fractions drawn (the tables hold every configured τ). The paper does not state
#: its τ; 0.025 is between exact-zero (τ = 0, where a No-Act network is never dormant) and ReDo's 0.1.
DEFAULT_TAU = 0.025
NETWORK_TITLES = {"actor": "policy", "critic": "value"}
ARM_STYLE = {"relu": dict(color="tab:red", label="PPO-ReLU"), "no-act": dict(color="tab:blue", label="PPO-No-Act")}
plt.rcParams.update({"font.size": 7, "axes.titlesize": 7, "axes.labelsize": 7, "legend.fontsize": 6,
                     "xtick.labelsize": 6, "ytick.labelsize": 6, "lines.linewidth": 1.0})  # fmt: skip


class FigureData:
    """Collects the drawn points of one figure for its CSV."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def band(self, ax: Any, panel: str, series: str, points: list[dict[str, float]], **style: Any) -> None:
        """Draw a mean line with its CI band and record the points."""
        if not points:
            return
        xs = [p["x"] for p in points]
        ax.plot(xs, [p["mean"] for p in points], **style)
        ax.fill_between(xs, [p["ci_low"] for p in points], [p["ci_high"] for p in points],
                        color=style.get("color"), alpha=0.2, linewidth=0)  # fmt: skip
        self.rows += [{"panel": panel, "series": series, **p} for p in points]

    def write(self, path: Path) -> None:
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["panel", "series", "x", "mean", "ci_low", "ci_high", "n"])
            w.writeheader()
            w.writerows(self.rows)


def _save(fig: Any, data: FigureData, out: Path, name: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.pdf", out / f"{name}.csv"]
    fig.savefig(paths[0], dpi=200, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    data.write(paths[2])
    plt.close(fig)
    return paths


def _steps_axis(ax: Any) -> None:
    ax.set_xlabel("environment steps")
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))  # 100k, 1M: no offset text colliding with the label


def fig1_return_and_dormancy(res: Results, out: Path, tau: float = DEFAULT_TAU) -> list[Path]:
    """Figure 1: episodic return, and the dormant fraction of policy and value hidden layers, ReLU vs No-Act."""
    panels = [(net, layer) for net in ("actor", "critic") for layer in res.layers(net)[:2]]
    fig, axes = plt.subplots(1, 1 + len(panels), figsize=(7.0, 1.8), constrained_layout=True)
    data = FigureData()
    for arm in res.arms:
        style = ARM_STYLE.get(arm, dict(label=arm))
        data.band(axes[0], "return", arm, aggregate(res.metric_series(arm, "return_recent")), **style)
        for ax, (net, layer) in zip(axes[1:], panels):
            points = aggregate(res.plasticity_series(arm, net, layer, "dormant_ratio", tau))
            data.band(ax, f"{net}/{layer}", arm, points, **style)
    axes[0].set_title("return\n(mean of last 10 episodes)")
    axes[0].set_ylabel("episodic return")
    for i, (ax, (net, _)) in enumerate(zip(axes[1:], panels)):
        ax.set_title(f"{NETWORK_TITLES[net]} layer {i % 2}\ndormant (τ={tau:g})")
        ax.set_ylabel("fraction of units")
        ax.set_ylim(-0.02, 1.02)
    for ax in axes:
        _steps_axis(ax)
    axes[0].legend(loc="best")
    return _save(fig, data, out, "fig1")


def _dormant_vs_zero_gradient(res: Results, out: Path, name: str, layers: list[tuple[str, str]], arm: str,
                              tau: float) -> list[Path]:  # fmt: skip
    fig, axes = plt.subplots(2, len(layers), figsize=(1.75 * len(layers), 2.8), constrained_layout=True, squeeze=False)
    data = FigureData()
    for col, (net, layer) in enumerate(layers):
        title = f"{NETWORK_TITLES[net]} {layer}"
        for kind, color in (("dormant", "tab:red"), ("zero_gradient", "tab:green")):
            label = "dormant" if kind == "dormant" else "zero gradient"
            for row, metric in ((0, f"{kind}_ratio"), (1, f"{kind}_overlap")):
                points = aggregate(res.plasticity_series(arm, net, layer, metric, tau))
                data.band(axes[row][col], f"{title}/{metric}", label, points, color=color, label=label)
        axes[0][col].set_title(f"{title} ({arm}, τ={tau:g})")
        axes[0][col].set_ylabel("fraction of units")
        axes[1][col].set_ylabel("overlap with previous")
        for row in (0, 1):
            axes[row][col].set_ylim(-0.02, 1.02)
            _steps_axis(axes[row][col])
    axes[0][0].legend(loc="best")
    return _save(fig, data, out, name)


def fig4_last_layer(res: Results, out: Path, tau: float = DEFAULT_TAU, arm: str = "relu") -> list[Path]:
    """Figure 4: dormant vs zero-gradient fractions in the last hidden layer of policy and value, with the overlap
    coefficient (Definition 3) between consecutive measurements."""
    layers = [(net, res.layers(net)[-1]) for net in ("actor", "critic")]
    return _dormant_vs_zero_gradient(res, out, "fig4", layers, arm, tau)


def fig6_every_layer(res: Results, out: Path, tau: float = DEFAULT_TAU, arm: str = "relu") -> list[Path]:
    """Figure 6: the same for every hidden layer of both networks."""
    layers = [(net, layer) for net in ("actor", "critic") for layer in res.layers(net)]
    return _dormant_vs_zero_gradient(res, out, "fig6", layers, arm, tau)


def _per_layer_metrics(res: Results, out: Path, name: str, metrics: Sequence[tuple[str, str]],
                       kinds: Sequence[str]) -> list[Path]:  # fmt: skip
    layers = [(net, layer) for net in ("actor", "critic") for layer in res.layers(net, kinds)]
    fig, axes = plt.subplots(len(metrics), len(layers), figsize=(1.2 * len(layers) + 0.6, 1.3 * len(metrics)),
                             constrained_layout=True, squeeze=False)  # fmt: skip
    data = FigureData()
    for r, (metric, ylabel) in enumerate(metrics):
        for c, (net, layer) in enumerate(layers):
            ax = axes[r][c]
            for arm in res.arms:
                style = ARM_STYLE.get(arm, dict(label=arm))
                data.band(ax, f"{net}/{layer}/{metric}", arm, aggregate(res.plasticity_series(arm, net, layer, metric)), **style)
            if r == 0:
                ax.set_title(f"{NETWORK_TITLES[net]} {layer}")
            if c == 0:
                ax.set_ylabel(ylabel)
            _steps_axis(ax)
    axes[0][0].legend(loc="best")
    return _save(fig, data, out, name)


def fig7_weights(res: Results, out: Path) -> list[Path]:
    """Figure 7: weight statistics per layer (output layers included) over training."""
    metrics = [("weight_abs_mean", "mean |W|"), ("weight_l2", "‖W‖_F"), ("weight_abs_max", "max |W|"),
               ("weight_distance", "‖W − W₀‖_F")]  # fmt: skip
    return _per_layer_metrics(res, out, "fig7", metrics, ("hidden", "output"))


def fig8_ranks(res: Results, out: Path) -> list[Path]:
    """Figure 8: the four ranks of each hidden layer's features on the probe batch."""
    metrics = [("effective_rank", "effective rank"), ("srank", "srank (δ=0.01)"), ("stable_rank", "stable rank"),
               ("feature_rank", "feature rank (ε=0.01)")]  # fmt: skip
    return _per_layer_metrics(res, out, "fig8", metrics, ("hidden",))


def _transfer(res: Results, out: Path, name: str, lrs: Sequence[float]) -> list[Path]:
    """Per task: test-loss curves and final test MSE of each arm's pretrained critics and random inits. The unit is the
    PPO run: each run's curve is the mean over its regression seeds, the band and bars the 95% t-interval over runs."""
    curves = res.transfer_table("curves.csv")
    tasks = list(dict.fromkeys(r["task"] for r in curves))
    arms = list(dict.fromkeys(r["arm"] for r in curves))
    inits = list(dict.fromkeys(r["init"] for r in curves))
    fig, axes = plt.subplots(len(lrs), 2 * len(tasks), figsize=(3.5 * len(tasks), 1.9 * len(lrs)), constrained_layout=True,
                             squeeze=False)  # fmt: skip
    colors = plt.get_cmap("tab10")
    data = FigureData()
    task_title = {"eq1": "Eq. 1 (dissimilar task)", "eq1_permuted": "Eq. 1, permuted inputs", "similar": "similar task (control)"}
    for r, lr in enumerate(lrs):
        for t, task in enumerate(tasks):
            ax_curve, ax_bar = axes[r][2 * t], axes[r][2 * t + 1]
            labels, means, errs, bar_colors = [], [], [], []
            drawn: list[dict[str, float]] = []
            for g, arm in enumerate(arms):
                for i, init in enumerate(inits):
                    rows = rows_for(curves, task=task, arm=arm, init=init, lr=lr)
                    if not rows:
                        continue
                    per_seed: dict[str, dict[float, list[float]]] = {}
                    for row in rows:
                        per_seed.setdefault(row["ppo_run"], {}).setdefault(to_float(row["epoch"]), []).append(to_float(row["test_mse"]))
                    series = {run: {x: sum(v) / len(v) for x, v in epochs.items()} for run, epochs in per_seed.items()}
                    label = f"{arm} {init}"
                    color = colors((len(inits) * g + i) % 10)
                    style = dict(color=color, label=label, linestyle="-" if init == "pretrained" else "--")
                    points = aggregate(series)
                    data.band(ax_curve, f"{task}/lr={lr:g}/curve", label, points, **style)
                    drawn += points
                    finals = [s[max(s)] for s in series.values()]
                    m, lo, hi = mean_ci(finals)
                    data.rows.append({"panel": f"{task}/lr={lr:g}/final", "series": label, "x": max(next(iter(series.values()))),
                                      "mean": m, "ci_low": lo, "ci_high": hi, "n": len(finals)})  # fmt: skip
                    labels.append(f"{arm}\n{init.replace('pretrained', 'pretr.').replace('random_', '')}")
                    means.append(m)
                    errs.append(0.0 if math.isnan(hi) else hi - m)
                    bar_colors.append(color)
            ax_curve.set_yscale("log")
            _log_limits(ax_curve, drawn)
            ax_curve.set_title(f"{task_title.get(task, task)}, lr {lr:g}", fontsize=7)
            ax_curve.set_xlabel("epoch")
            ax_curve.set_ylabel("test MSE")
            ax_bar.bar(range(len(means)), means, yerr=errs, color=bar_colors, capsize=2)
            ax_bar.set_xticks(range(len(means)), labels, fontsize=4)
            ax_bar.set_ylim(bottom=0)  # an MSE is >= 0: a t-interval reaching below 0 is cut at the axis
            ax_bar.set_title("final test MSE (95% CI over PPO runs)", fontsize=7)
            ax_bar.set_ylabel("test MSE")
    axes[0][0].legend(loc="best", fontsize=4)
    return _save(fig, data, out, name)


def _log_limits(ax: Any, points: list[dict[str, float]]) -> None:
    """Log-axis limits from the means (bottom) and the band tops: a t-interval whose lower edge is near or below 0
    (few, spread seeds) then runs off the bottom of the panel instead of stretching the axis over decades."""
    lows = [p["mean"] for p in points if p["mean"] > 0 and math.isfinite(p["mean"])]
    highs = [v for p in points for v in (p["mean"], p["ci_high"]) if v > 0 and math.isfinite(v)]
    if lows and highs:
        ax.set_ylim(min(lows) / 2, max(highs) * 1.5)


def fig3_transfer(res: Results, out: Path) -> list[Path]:
    """Figure 3: transfer at lr 0.01 — test-loss curves and final test MSE, Eq. 1 beside its controls."""
    return _transfer(res, out, "fig3", [0.01])


def fig5_transfer_lrs(res: Results, out: Path) -> list[Path]:
    """Figure 5: the same at lr 0.01 (top) and 0.005 (bottom)."""
    return _transfer(res, out, "fig5", [0.01, 0.005])


def _entering_per_seed(view: Results, arm: str, tau: float) -> list[float]:
    """Per seed: units entering the zero-gradient set across a switch (actor + critic hidden units, τ), averaged over
    the switches."""
    out = []
    for run in view.runs_of(arm):
        per_switch: dict[str, float] = {}
        for row in view.table(run, "switches.csv"):
            if row["layer"] == "network" and row["kind"] == "zero_gradient" and float(row["threshold"]) == tau:
                per_switch[row["switch"]] = per_switch.get(row["switch"], 0.0) + to_float(row["entering"])
        out.append(sum(per_switch.values()) / len(per_switch) if per_switch else math.nan)
    return out


def fig_switches(res: Results, out: Path, tau: float = DEFAULT_TAU) -> list[Path]:
    """Task switches: return and the zero-gradient fraction (all hidden units of policy and value) over training per
    intervention, switches marked; and the units entering the zero-gradient set across a switch. Mean and 95% CI
    over seeds. Nothing is drawn when the results hold no task-switch runs."""
    view = res.scenario_view()
    if not view.runs:
        return []
    fig, axes = plt.subplots(1, 4, figsize=(7.0, 1.9), constrained_layout=True)
    data = FigureData()
    colors = plt.get_cmap("tab10")
    arms = view.arms
    for i, arm in enumerate(arms):
        style = dict(color=colors(i), label=arm)
        data.band(axes[0], "return", arm, aggregate(view.metric_series(arm, "return_recent")), **style)
        for ax, net in zip(axes[1:3], ("actor", "critic")):
            points = aggregate(view.plasticity_series(arm, net, "network", "zero_gradient_ratio", tau))
            data.band(ax, f"{net}/zero_gradient_ratio", arm, points, **style)
    means, errs = [], []
    for i, arm in enumerate(arms):
        values = _entering_per_seed(view, arm, tau)
        m, lo, hi = mean_ci(values)
        data.rows.append({"panel": "entering_zero_gradient", "series": arm, "x": i, "mean": m, "ci_low": lo,
                          "ci_high": hi, "n": sum(not math.isnan(v) for v in values)})  # fmt: skip
        means.append(m)
        errs.append(0.0 if math.isnan(hi) else hi - m)
    axes[3].bar(range(len(arms)), means, yerr=errs, color=[colors(i) for i in range(len(arms))], capsize=2)
    axes[3].set_xticks(range(len(arms)), arms, fontsize=5, rotation=45, ha="right")
    scenario = res.scenario or {}
    for ax in axes[:3]:
        for step in scenario.get("switch_steps", []):
            ax.axvline(step, color="0.5", linestyle=":", linewidth=0.8)
        _steps_axis(ax)
    axes[0].set_title(f"return ({scenario.get('name', '?')} every {scenario.get('period', '?'):,} steps)")
    axes[0].set_ylabel("episodic return (recent)")
    for ax, net in zip(axes[1:3], ("actor", "critic")):
        ax.set_title(f"{NETWORK_TITLES[net]}: zero gradient (τ={tau:g})")
        ax.set_ylabel("fraction of hidden units")
        ax.set_ylim(-0.02, 1.02)
    axes[3].set_title("units entering the zero-\ngradient set per switch")
    axes[3].set_ylabel("units (policy + value)")
    axes[0].legend(loc="best", fontsize=5)
    return _save(fig, data, out, "fig_switches")


FIGURES: dict[str, Callable[..., list[Path]]] = {
    "fig1": fig1_return_and_dormancy,
    "fig3": fig3_transfer,
    "fig4": fig4_last_layer,
    "fig5": fig5_transfer_lrs,
    "fig6": fig6_every_layer,
    "fig7": fig7_weights,
    "fig8": fig8_ranks,
    "fig_switches": fig_switches,
}


def draw_all(results_root: str | Path, out: str | Path) -> list[Path]:
    """Draw every figure of one preset's results folder into ``out``."""
    res = Results(results_root)
    out = Path(out)
    return [p for fn in FIGURES.values() for p in fn(res, out)]
