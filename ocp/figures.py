"""Every data figure of the paper, drawn from the tidy tables of a results folder (never from training code).

Each figure is saved as ``figN.png`` and ``figN.pdf`` with ``figN.csv`` beside it: the exact numbers drawn (one row per
point: panel, series, x, mean, 95% CI over seeds, number of seeds). Seeds are shown as a mean line with a shaded
Student-t confidence band. Sizes are for a two-column paper (7 in wide, 7-pt text). Titles carry the paper's figure
numbers; a panel without a value to draw (no dormant unit, so no overlap) says why in words instead of showing empty
axes.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Callable, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import EngFormatter, LogFormatter, MaxNLocator, PercentFormatter  # noqa: E402

from ocp.statistics import mean_ci  # noqa: E402
from ocp.tables import Results, aggregate, rows_for, to_float  # noqa: E402

__all__ = ["draw_all", "FIGURES", "DEFAULT_TAU"]

#: τ of the dormant and zero-gradient fractions drawn (the tables hold every configured τ). The paper does not state
#: its τ; 0.025 is between exact-zero (τ = 0, where a No-Act network is never dormant) and ReDo's 0.1.
DEFAULT_TAU = 0.025
NETWORK_TITLES = {"actor": "policy", "critic": "value"}
ARM_STYLE = {"relu": dict(color="tab:red", label="PPO-ReLU"), "no-act": dict(color="tab:blue", label="PPO-No-Act")}
plt.rcParams.update(
    {
        "font.size": 7,
        "axes.titlesize": 7,
        "axes.labelsize": 7,
        "legend.fontsize": 6,
        "xtick.labelsize": 6,
        "ytick.labelsize": 6,
        "lines.linewidth": 1.0,
    }
)


class FigureData:
    """Collects the drawn points of one figure for its CSV."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def band(
        self, ax: Any, panel: str, series: str, points: list[dict[str, float]], **style: Any
    ) -> list[dict[str, float]]:
        """Draw a mean line with its CI band, record the points and return them."""
        if not points:
            return points
        xs = [p["x"] for p in points]
        ax.plot(xs, [p["mean"] for p in points], **style)
        ax.fill_between(
            xs,
            [p["ci_low"] for p in points],
            [p["ci_high"] for p in points],
            color=style.get("color"),
            alpha=0.2,
            linewidth=0,
        )
        self.rows += [{"panel": panel, "series": series, **p} for p in points]
        return points

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


def steps_axis(ax: Any, last_step: float, ticks: int = 4) -> None:
    """Environment steps from 0 to the last step, at most ``ticks`` intervals of 1, 2.5 or 5 times a power of ten,
    labelled with SI prefixes (0, 250k, 500k, 750k, 1M): no offset text, the same range in every panel of a figure.
    A run logs its last step a little short of its budget (999,424 of 1M): the axis then reaches the round tick."""
    locator = MaxNLocator(nbins=ticks, steps=[1, 2.5, 5, 10])
    round_top = min(t for t in locator.tick_values(0, last_step) if t >= last_step)
    ax.set_xlabel("environment steps")
    ax.set_xlim(0, round_top if round_top <= 1.05 * last_step else last_step)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))


def _last_step(res: Results) -> float:
    """The last environment step any run of ``res`` logged."""
    return max(x for arm in res.arms for series in res.metric_series(arm, "return_recent").values() for x in series)


def _finite_means(points: list[dict[str, float]]) -> list[float]:
    return [p["mean"] for p in points if math.isfinite(p["mean"])]


#: Step intervals on the x axis of a panel about 1 in wide: four would run their labels together (0 250k500k750k).
NARROW_PANEL_TICKS = 2

#: Tops of a fraction axis: the smallest one above the data is used, so that 3 % reads as a line, not as the floor.
FRACTION_TOPS = (0.05, 0.1, 0.25, 0.5, 1.0)


def _fraction_axis(ax: Any, points: list[dict[str, float]]) -> None:
    """y from 0 % to the smallest of FRACTION_TOPS above every mean and band top; the bottom sits slightly below 0 so
    that a series at 0 is seen above the axis line."""
    highest = max((v for p in points for v in (p["mean"], p["ci_high"]) if math.isfinite(v)), default=0.0)
    top = next((t for t in FRACTION_TOPS if highest <= t), FRACTION_TOPS[-1])
    ax.set_ylim(-0.03 * top, 1.03 * top)
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1, decimals=0 if top >= 0.1 else 1))


def _explain(ax: Any, reason: str, empty: bool, at_foot: bool = False) -> None:
    """Say in the panel why a series is missing or flat: centred, or at its foot where another series is drawn; an
    empty panel loses its y ticks (there is no value to read)."""
    y, va = (0.04, "bottom") if at_foot else (0.5, "center")
    ax.text(0.5, y, reason, transform=ax.transAxes, ha="center", va=va, fontsize=6, color="0.3")
    if empty:
        ax.set_yticks([])


def _count(counts: Sequence[int], noun: str) -> str:
    """``1 seed``, ``3 seeds``, ``2–3 seeds`` from the distinct counts of the series of a figure."""
    low, high = min(counts), max(counts)
    return f"{low} {noun}" if high == low == 1 else f"{low} {noun}s" if high == low else f"{low}–{high} {noun}s"


def _seeds_per_arm(res: Results) -> str:
    return f"{_count([len(res.runs_of(arm)) for arm in res.arms], 'seed')} per arm"


def _layer_title(res: Results, net: str, layer: str) -> str:
    """``policy hidden 2 of 2`` / ``value output``: the position a reader knows, not the module index in the table."""
    hidden = res.layers(net)
    if layer in hidden:
        return f"{NETWORK_TITLES[net]} hidden {hidden.index(layer) + 1} of {len(hidden)}"
    return f"{NETWORK_TITLES[net]} output"


def fig1_return_and_dormancy(res: Results, out: Path, tau: float = DEFAULT_TAU) -> list[Path]:
    """Figure 1: episodic return, and the dormant fraction of policy and value hidden layers, ReLU vs No-Act."""
    panels = [(net, layer) for net in ("actor", "critic") for layer in res.layers(net)[:2]]
    fig, axes = plt.subplots(1, 1 + len(panels), figsize=(7.0, 2.0), constrained_layout=True)
    data = FigureData()
    drawn: dict[int, list[dict[str, float]]] = {i: [] for i in range(1, len(axes))}  # dormancy panel -> its points
    for arm in res.arms:
        style = ARM_STYLE.get(arm, dict(label=arm))
        data.band(axes[0], "return", arm, aggregate(res.metric_series(arm, "return_recent")), **style)
        for i, (net, layer) in enumerate(panels, start=1):
            points = aggregate(res.plasticity_series(arm, net, layer, "dormant_ratio", tau))
            drawn[i] += data.band(axes[i], f"{net}/{layer}", arm, points, **style)
    last = _last_step(res)
    axes[0].set_title("return\n(mean of last 10 episodes)")
    axes[0].set_ylabel("episodic return")
    for i, (net, layer) in enumerate(panels, start=1):
        ax, means = axes[i], _finite_means(drawn[i])
        ax.set_title(f"{_layer_title(res, net, layer)}\ndormant (τ = {tau:g})")
        ax.set_ylabel("share of units")
        _fraction_axis(ax, drawn[i])
        if not means:
            _explain(ax, f"no measurement\nat τ = {tau:g}", empty=True)
        elif not any(means):
            _explain(ax, f"no dormant unit\nin any run\nat τ = {tau:g}", empty=False)
    for ax in axes:
        steps_axis(ax, last, ticks=NARROW_PANEL_TICKS)
    axes[0].legend(loc="best")
    fig.suptitle(
        f"Figure 1 (paper): return and dormant units, PPO-ReLU vs PPO-No-Act "
        f"(mean and 95% CI over {_seeds_per_arm(res)})"
    )
    return _save(fig, data, out, "fig1")


KIND_LABELS = {"dormant": "dormant", "zero_gradient": "zero-gradient"}
KIND_COLORS = {"dormant": "tab:red", "zero_gradient": "tab:green"}


def overlap_reason(ratios: dict[str, list[dict[str, float]]], kinds: list[str], tau: float) -> str:
    """Why the overlap (Definition 3, undefined when either set is empty) of ``kinds`` has no value."""
    never = [KIND_LABELS[k] for k in kinds if not any(_finite_means(ratios[k]))]
    parts = ["no " + " or\n".join(never) + f"\nunits at τ = {tau:g}"] if never else []
    parts += [
        f"{KIND_LABELS[k]} units never\nin two consecutive\nmeasurements" for k in kinds if KIND_LABELS[k] not in never
    ]
    return ";\n".join(parts) + ":\noverlap undefined"


def _dormant_vs_zero_gradient(
    res: Results, out: Path, name: str, layers: list[tuple[str, str]], arm: str, tau: float, title: str
) -> list[Path]:
    fig, axes = plt.subplots(
        2, len(layers), figsize=(max(4.2, 1.75 * len(layers)), 3.2), constrained_layout=True, squeeze=False
    )
    data = FigureData()
    last = _last_step(res)
    for col, (net, layer) in enumerate(layers):
        panel = _layer_title(res, net, layer)
        ratios: dict[str, list[dict[str, float]]] = {}
        overlaps: dict[str, list[dict[str, float]]] = {}
        for kind in KIND_LABELS:
            style = dict(color=KIND_COLORS[kind], label=KIND_LABELS[kind])
            points = aggregate(res.plasticity_series(arm, net, layer, f"{kind}_ratio", tau))
            ratios[kind] = data.band(axes[0][col], f"{panel}/{kind}_ratio", KIND_LABELS[kind], points, **style)
            points = aggregate(res.plasticity_series(arm, net, layer, f"{kind}_overlap", tau))
            # markers: an overlap defined only at isolated measurements is a point between gaps, not an invisible line
            overlaps[kind] = data.band(
                axes[1][col], f"{panel}/{kind}_overlap", KIND_LABELS[kind], points, marker="o", markersize=1.5, **style
            )
        ratio_ax, overlap_ax = axes[0][col], axes[1][col]
        ratio_ax.set_title(panel)
        ratio_ax.set_ylabel("share of units")
        _fraction_axis(ratio_ax, [p for points in ratios.values() for p in points])
        ratio_means = [m for points in ratios.values() for m in _finite_means(points)]
        if not ratio_means:
            _explain(ratio_ax, f"no measurement\nat τ = {tau:g}", empty=True)
        elif not any(ratio_means):
            _explain(ratio_ax, f"no dormant or\nzero-gradient unit\nat τ = {tau:g}", empty=False)
        overlap_ax.set_ylabel("overlap with previous")
        overlap_ax.set_ylim(-0.03, 1.03)
        undefined = [kind for kind, points in overlaps.items() if not _finite_means(points)]
        if undefined:
            partial = len(undefined) < len(overlaps)
            _explain(overlap_ax, overlap_reason(ratios, undefined, tau), empty=not partial, at_foot=partial)
        for ax in (ratio_ax, overlap_ax):
            steps_axis(ax, last)
    # below the panels: inside one it would cover the text of a panel without data
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="outside lower center", ncol=len(KIND_LABELS))
    fig.suptitle(
        f"{title}\n{ARM_STYLE.get(arm, dict(label=arm))['label']}, τ = {tau:g}, mean and 95% CI over "
        f"{len(res.runs_of(arm))} seeds; overlap: Definition 3, consecutive measurements"
    )
    return _save(fig, data, out, name)


def fig4_last_layer(res: Results, out: Path, tau: float = DEFAULT_TAU, arm: str = "relu") -> list[Path]:
    """Figure 4: dormant vs zero-gradient fractions in the last hidden layer of policy and value, with the overlap
    coefficient (Definition 3) between consecutive measurements."""
    layers = [(net, res.layers(net)[-1]) for net in ("actor", "critic")]
    title = "Figure 4 (paper): dormant and zero-gradient units,\nlast hidden layer of policy and value"
    return _dormant_vs_zero_gradient(res, out, "fig4", layers, arm, tau, title)


def fig6_every_layer(res: Results, out: Path, tau: float = DEFAULT_TAU, arm: str = "relu") -> list[Path]:
    """Figure 6: the same for every hidden layer of both networks."""
    layers = [(net, layer) for net in ("actor", "critic") for layer in res.layers(net)]
    title = "Figure 6 (paper): dormant and zero-gradient units, every hidden layer of policy and value"
    return _dormant_vs_zero_gradient(res, out, "fig6", layers, arm, tau, title)


def _per_layer_metrics(
    res: Results, out: Path, name: str, metrics: Sequence[tuple[str, str]], kinds: Sequence[str], title: str
) -> list[Path]:
    layers = [(net, layer) for net in ("actor", "critic") for layer in res.layers(net, kinds)]
    fig, axes = plt.subplots(
        len(metrics),
        len(layers),
        figsize=(1.2 * len(layers) + 0.6, 1.3 * len(metrics) + 0.3),
        constrained_layout=True,
        squeeze=False,
    )
    data = FigureData()
    last = _last_step(res)
    for r, (metric, ylabel) in enumerate(metrics):
        for c, (net, layer) in enumerate(layers):
            ax = axes[r][c]
            for arm in res.arms:
                style = ARM_STYLE.get(arm, dict(label=arm))
                data.band(
                    ax,
                    f"{net}/{layer}/{metric}",
                    arm,
                    aggregate(res.plasticity_series(arm, net, layer, metric)),
                    **style,
                )
            if r == 0:
                ax.set_title(_layer_title(res, net, layer))
            if c == 0:
                ax.set_ylabel(ylabel)
            steps_axis(ax, last, ticks=NARROW_PANEL_TICKS)
            low, high = ax.get_ylim()
            if low < 0:  # norms and ranks are >= 0: a t-interval reaching below 0 is cut just under the axis
                ax.set_ylim(-0.03 * high, high)
            if r < len(metrics) - 1:
                ax.set_xlabel("")  # the bottom row names the axis for its column
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="outside lower center", ncol=len(res.arms))
    fig.suptitle(f"{title} (mean and 95% CI over {_seeds_per_arm(res)})")
    return _save(fig, data, out, name)


def fig7_weights(res: Results, out: Path) -> list[Path]:
    """Figure 7: weight statistics per layer (output layers included) over training."""
    metrics = [
        ("weight_abs_mean", "mean |W|"),
        ("weight_l2", "‖W‖_F"),
        ("weight_abs_max", "max |W|"),
        ("weight_distance", "‖W − W₀‖_F"),
    ]
    title = "Figure 7 (paper, Appendix C): weight statistics per layer"
    return _per_layer_metrics(res, out, "fig7", metrics, ("hidden", "output"), title)


def fig8_ranks(res: Results, out: Path) -> list[Path]:
    """Figure 8: the four ranks of each hidden layer's features on the probe batch."""
    metrics = [
        ("effective_rank", "effective rank"),
        ("srank", "srank (δ=0.01)"),
        ("stable_rank", "stable rank"),
        ("feature_rank", "feature rank (ε=0.01)"),
    ]
    title = "Figure 8 (paper, Appendix D): ranks of each hidden layer's features"
    return _per_layer_metrics(res, out, "fig8", metrics, ("hidden",), title)


#: The initial weights of a regressor: a critic PPO trained, or one of two random initialisations of the same shape.
INIT_LABELS = {
    "pretrained": "trained critic",
    "random_ppo": "random init (PPO)",
    "random_torch": "random init (PyTorch)",
}
INIT_LINESTYLES = {"pretrained": "-", "random_ppo": "--", "random_torch": ":"}
BAR_INIT_LABELS = {"pretrained": "trained", "random_ppo": "random (PPO)", "random_torch": "random (PyTorch)"}
INIT_HATCHES = {"pretrained": "", "random_ppo": "////", "random_torch": "...."}
TASK_TITLES = {
    "eq1": "Eq. 1 (dissimilar task)",
    "eq1_permuted": "Eq. 1, permuted inputs",
    "similar": "similar task (control)",
}


def _transfer(res: Results, out: Path, name: str, lrs: Sequence[float], title: str) -> list[Path]:
    """Per task: test-loss curves and final test MSE of each arm's pretrained critics and random inits. The unit is the
    PPO run: each run's curve is the mean over its regression seeds, the band and bars the 95% t-interval over runs.
    Colour is the arm, line style (and hatching of the bars) the initial weights."""
    curves = res.transfer_table("curves.csv")
    tasks = list(dict.fromkeys(r["task"] for r in curves))
    arms = list(dict.fromkeys(r["arm"] for r in curves))
    inits = list(dict.fromkeys(r["init"] for r in curves))
    # per task a column; per lr a row of loss curves above a row of final-MSE bars
    fig, axes = plt.subplots(
        2 * len(lrs),
        len(tasks),
        figsize=(2.4 * len(tasks), 3.3 * len(lrs) + 0.7),
        constrained_layout=True,
        squeeze=False,
    )
    data = FigureData()
    handles = {}
    for r, lr in enumerate(lrs):
        part = f"({'abcdefgh'[r]}) " if len(lrs) > 1 else ""
        for t, task in enumerate(tasks):
            ax_curve, ax_bar = axes[2 * r][t], axes[2 * r + 1][t]
            if not rows_for(curves, task=task, lr=lr):  # a preset may fit at one lr only
                for ax, what in ((ax_curve, TASK_TITLES.get(task, task)), (ax_bar, "final test MSE")):
                    ax.set_title(f"{part}{what}, lr {lr:g}")
                    ax.set_xticks([])
                    _explain(ax, f"not run at lr {lr:g}\nin these results", empty=True)
                continue
            labels, means, errs, bar_styles = [], [], [], []
            drawn: list[dict[str, float]] = []
            for arm in arms:
                for init in inits:
                    rows = rows_for(curves, task=task, arm=arm, init=init, lr=lr)
                    if not rows:
                        continue
                    per_seed: dict[str, dict[float, list[float]]] = {}
                    for row in rows:
                        per_seed.setdefault(row["ppo_run"], {}).setdefault(to_float(row["epoch"]), []).append(
                            to_float(row["test_mse"])
                        )
                    series = {run: {x: sum(v) / len(v) for x, v in epochs.items()} for run, epochs in per_seed.items()}
                    arm_label = ARM_STYLE.get(arm, dict(label=arm))["label"]
                    label = f"{arm_label}, {INIT_LABELS.get(init, init)}"
                    color = ARM_STYLE.get(arm, dict(color="0.4"))["color"]
                    points = aggregate(series)
                    data.band(
                        ax_curve,
                        f"{task}/lr={lr:g}/curve",
                        label,
                        points,
                        color=color,
                        label=label,
                        linestyle=INIT_LINESTYLES.get(init, "-."),
                    )
                    handles.setdefault(label, ax_curve.lines[-1])
                    drawn += points
                    finals = [s[max(s)] for s in series.values()]
                    m, lo, hi = mean_ci(finals)
                    data.rows.append(
                        {
                            "panel": f"{task}/lr={lr:g}/final",
                            "series": label,
                            "x": max(next(iter(series.values()))),
                            "mean": m,
                            "ci_low": lo,
                            "ci_high": hi,
                            "n": len(finals),
                        }
                    )
                    labels.append(f"{arm_label.removeprefix('PPO-')} {BAR_INIT_LABELS.get(init, init)}")
                    means.append(m)
                    errs.append(hi - m)
                    bar_styles.append(dict(color=color, hatch=INIT_HATCHES.get(init, "xx")))
            ax_curve.set_yscale("log")
            ax_curve.yaxis.set_major_formatter(PlainLogFormatter())
            ax_curve.yaxis.set_minor_formatter(PlainLogFormatter(minor_thresholds=(2, 0.5)))
            log_limits(ax_curve, drawn)
            ax_curve.set_title(f"{part}{TASK_TITLES.get(task, task)}, lr {lr:g}")
            ax_curve.set_xlabel("epoch")
            ax_curve.set_ylabel("test MSE")
            ax_curve.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
            for i, (m, err, style) in enumerate(zip(means, errs, bar_styles)):
                ax_bar.bar(i, m, color=style["color"], hatch=style["hatch"], edgecolor="white", linewidth=0)
                if math.isfinite(err):  # one PPO run has no interval: no error bar rather than a zero-length one
                    ax_bar.errorbar(i, m, yerr=err, color="black", capsize=2, linewidth=0.8)
            ax_bar.set_xticks(range(len(means)), labels, fontsize=5, rotation=30, ha="right")
            ax_bar.set_ylim(bottom=0)  # an MSE is >= 0: a t-interval reaching below 0 is cut at the axis
            ax_bar.set_title(f"{part}final test MSE, lr {lr:g}")
            ax_bar.set_ylabel("test MSE")
    fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncol=len(arms))
    runs = [len({r["ppo_run"] for r in curves if r["arm"] == arm}) for arm in arms]
    fig.suptitle(
        f"{title}\n(mean and 95% CI over {_count(runs, 'PPO run')} per arm, each the mean over its regression seeds)"
    )
    return _save(fig, data, out, name)


class PlainLogFormatter(LogFormatter):
    """The ticks matplotlib's log formatter labels, written as plain numbers (0.6, 4, 20) instead of 6e-01 or 6×10⁰."""

    def __call__(self, x: float, pos: int | None = None) -> str:
        return f"{x:g}" if super().__call__(x, pos) else ""


def log_limits(ax: Any, points: list[dict[str, float]]) -> None:
    """Log-axis limits from the means (bottom) and the band tops: a t-interval whose lower edge is near or below 0
    (few, spread seeds) then runs off the bottom of the panel instead of stretching the axis over decades."""
    lows = [p["mean"] for p in points if p["mean"] > 0 and math.isfinite(p["mean"])]
    highs = [v for p in points for v in (p["mean"], p["ci_high"]) if v > 0 and math.isfinite(v)]
    if lows and highs:
        ax.set_ylim(min(lows) / 2, max(highs) * 1.5)


def fig3_transfer(res: Results, out: Path) -> list[Path]:
    """Figure 3: transfer at lr 0.01 — test-loss curves and final test MSE, Eq. 1 beside its controls."""
    title = (
        "Figure 3 (paper): critics trained by PPO, then fitted to a new regression task\nat lr 0.01, beside random "
        "inits"
    )
    return _transfer(res, out, "fig3", [0.01], title)


def fig5_transfer_lrs(res: Results, out: Path) -> list[Path]:
    """Figure 5: the same at lr 0.01 (top) and 0.005 (bottom)."""
    title = "Figure 5 (paper): the transfer of Figure 3 at lr 0.01 (a) and lr 0.005 (b)"
    return _transfer(res, out, "fig5", [0.01, 0.005], title)


def _entering_per_seed(view: Results, arm: str, tau: float) -> list[float]:
    """Per seed: units entering the zero-gradient set across a switch (actor + critic hidden units, τ), averaged over
    the switches."""
    out = []
    for run in view.runs_of(arm):
        per_switch: dict[str, float] = {}
        for row in view.table(run, "switches.csv"):
            if row["layer"] == "network" and row["unit_set"] == "zero_gradient" and float(row["tau"]) == tau:
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
    fig, axes = plt.subplots(1, 4, figsize=(7.0, 2.2), constrained_layout=True)
    data = FigureData()
    colors = plt.get_cmap("tab10")
    arms = view.arms
    fractions: dict[str, list[dict[str, float]]] = {"actor": [], "critic": []}
    for i, arm in enumerate(arms):
        style = dict(color=colors(i), label=arm)
        data.band(axes[0], "return", arm, aggregate(view.metric_series(arm, "return_recent")), **style)
        for ax, net in zip(axes[1:3], ("actor", "critic")):
            points = aggregate(view.plasticity_series(arm, net, "network", "zero_gradient_ratio", tau))
            fractions[net] += data.band(ax, f"{net}/zero_gradient_ratio", arm, points, **style)
    seeds = []
    for i, arm in enumerate(arms):
        values = _entering_per_seed(view, arm, tau)
        m, lo, hi = mean_ci(values)
        n = sum(not math.isnan(v) for v in values)
        seeds.append(n)
        data.rows.append(
            {"panel": "entering_zero_gradient", "series": arm, "x": i, "mean": m, "ci_low": lo, "ci_high": hi, "n": n}
        )
        axes[3].bar(i, m, color=colors(i))
        if math.isfinite(hi):  # one seed has no interval: no error bar rather than a zero-length one
            axes[3].errorbar(i, m, yerr=hi - m, color="black", capsize=2, linewidth=0.8)
        # each seed as a dot: with two or three seeds the interval alone hides what they measured
        axes[3].plot([i] * len(values), values, linestyle="none", marker="o", markersize=2, color="black")
    axes[3].set_xticks(range(len(arms)), arms, fontsize=5, rotation=30, ha="right")
    scenario = res.scenario or {}
    last = _last_step(view)
    for ax in axes[:3]:
        for step in scenario.get("switch_steps", []):
            ax.axvline(step, color="0.5", linestyle=":", linewidth=0.8)
        steps_axis(ax, last, ticks=NARROW_PANEL_TICKS)
    period = scenario.get("period")
    axes[0].set_title("return\n(mean of last 10 episodes)")
    axes[0].set_ylabel("episodic return")
    for ax, net in zip(axes[1:3], ("actor", "critic")):
        ax.set_title(f"{NETWORK_TITLES[net]} hidden units\nzero gradient (τ = {tau:g})")
        ax.set_ylabel("share of units")
        _fraction_axis(ax, fractions[net])
        means = _finite_means(fractions[net])
        if not means:
            _explain(ax, f"no measurement\nat τ = {tau:g}", empty=True)
        elif not any(means):
            _explain(ax, f"no zero-gradient\nunit in any run\nat τ = {tau:g}", empty=False)
    axes[3].set_title("units entering the zero-\ngradient set per switch (dots: seeds)")
    axes[3].set_ylabel("units (policy + value)")
    axes[3].set_ylim(bottom=0)  # a count is >= 0: a t-interval reaching below 0 is cut at the axis
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=len(arms))
    every = f" every {period:,} steps" if period else ""
    fig.suptitle(
        f"Task switches (no figure in the paper; they test the hypothesis its Figure 2 illustrates)\n"
        f"{scenario.get('name', 'switch')}{every} (dotted), mean and 95% CI over "
        f"{_count(seeds, 'seed')} per intervention"
    )
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
