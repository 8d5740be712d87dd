"""Task-relevance transfer experiment (paper Section 3.2, Appendix A, Figures 3 and 5) with two controls.

The critic of every PPO run of each arm initialises a regressor that is then trained, whole (no layer frozen), on

* ``eq1`` — the paper's Eq. 1, a task the paper calls unrelated to the critic's (the paper's experiment);
* ``eq1_permuted`` — Eq. 1 with its inputs permuted (``eq1_permutation``), the orthogonal-target control: Eq. 1
  puts its largest linear and quadratic terms on the inputs where HalfCheetah-v4 has the forward velocity, torso
  pitch and height, which the critic already reads, so the pretrained critic starts correlated with Eq. 1's target;
  the permutation moves those inputs into Eq. 1's small even terms;
* ``similar`` — discounted returns of a re-weighted HalfCheetah reward on states visited by the agent's own policy,
  a task close to the critic's (a control the paper does not run: OCP says a critic whose neurons are trapped in its
  task's optimum learns a *similar* task worse than a random init, and a dissimilar one as well),

against random initialisations of the same architecture: PPO's own orthogonal init and PyTorch's default
``nn.Linear`` init, both first-class arms (the paper does not say which it used, and the verdict can differ between
them). Every (task, PPO run, init, lr, regression seed) logs train/test MSE and the test-set correlation of output and
target per epoch, and probes the regressor (``ocp.probe``, MSE objective on the training set) at intervals.
``summary.csv`` compares pretrained and each random init with paired statistics replicated over PPO runs
(:mod:`ocp.transfer_statistics`); ``linear_floor.csv`` gives the best affine fit's test MSE on Eq. 1 per input
distribution, the floor of an identity-activation (No-Act) network.

Choices where the paper is silent (all configurable, see :class:`TransferConfig`):

* Adam (PyTorch defaults besides lr), 200 epochs of minibatches of 100 samples, reshuffled every epoch; 1,000 training
  and 1,000 test samples (the paper's "1,000 samples" may also mean 1,000 in total).
* Regression seed ``s`` of the PPO run with seed ``k`` draws, from a seed derived from (k, s), the data (Eq. 1
  samples, or the similar task's episodes), the random inits and the minibatch order; every init of one (k, s) sees
  the same data in the same order, so the arms differ only by their initial weights.
* Eq. 1 inputs go into the network as they are (``eq1_inputs="raw"``; the paper does not mention the observation
  normaliser); ``eq1_inputs="checkpoint"`` passes them through the checkpoint's normaliser first. Similar-task inputs
  are normalised with the checkpoint's normaliser by default (that is how the critic saw states) and targets divided
  by its return scale √(var(G) + ε), the reward scaling the critic was trained under; every arm gets the same data.

This module is the experiment (:class:`TransferConfig`, the seeds, the per-seed parts, :func:`run_transfer`) and its
CLI (``python -m ocp.transfer``); the critics are loaded by :mod:`ocp.pretrained`, each regressor is trained and probed
by :func:`ocp.regression.train_regressor`.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Mapping, Optional, Sequence

import numpy as np
import torch

from ocp.atomic_files import atomic_write_bytes, stable_key, write_csv
from ocp.envs import check_env
from ocp.pretrained import PretrainedAgent, RandomInit, load_pretrained, pretrained_critic, random_critic
from ocp.probe import DEFAULT_THRESHOLDS
from ocp.regression import train_regressor
from ocp.regression_tasks import (
    EQ1_INPUT_DIM,
    EQ1_PERMUTED_INDICES,
    RegressionData,
    ReturnTaskSpec,
    XDistribution,
    check_permutation,
    collect_return_data,
    eq1_linear_floor,
    make_eq1_data,
)
from ocp.transfer_statistics import (
    LINEAR_FLOOR_COLUMNS,
    SUMMARY_COLUMNS,
    format_summary,
    summarise,
)

Task = Literal["eq1", "eq1_permuted", "similar"]
TASKS = ("eq1", "eq1_permuted", "similar")
InputMode = Literal["raw", "checkpoint"]
TargetScale = Literal["none", "checkpoint"]
X_DISTRIBUTIONS = ("normal", "uniform")

#: Which regressor a row is about: the columns every per-epoch table of the experiment starts with.
REGRESSOR_COLUMNS = ["task", "arm", "ppo_run", "ppo_seed", "init", "activation", "lr", "seed", "epoch"]
CURVE_COLUMNS = [*REGRESSOR_COLUMNS, "train_mse", "test_mse", "output_target_corr"]
PROBE_COLUMNS = [
    *REGRESSOR_COLUMNS,
    "layer",
    "layer_kind",
    "width",
    "tau",
    "dormant_ratio",
    "zero_gradient_ratio",
    "still_dormant",
    "still_zero_gradient",
]


@dataclass(frozen=True)
class TransferConfig:
    """Transfer PPO critics to Eq. 1 (paper Sec. 3.2), its input-permuted control and a similar return-regression task,
    against random inits; one critic per PPO run, regression seeds nested in each run."""

    checkpoints: tuple[Path, ...]
    """PPO checkpoint files, or run directories (their newest valid checkpoint is used); one per PPO run."""
    labels: tuple[str, ...] = ()
    """One name per checkpoint for the ``ppo_run`` column; default ``<activation>:<run>``."""
    arms: tuple[str, ...] = ()
    """One arm name per checkpoint: the PPO runs of an arm are its replicates (distinct PPO seeds); default the
    critic's activation."""
    expected_activations: tuple[str, ...] = ()
    """If given, one per checkpoint: refuse a checkpoint whose critic uses another activation."""
    random_inits: tuple[RandomInit, ...] = ("ppo", "torch")
    """Random-init arms: ``ppo``, PPO's orthogonal init; ``torch``, PyTorch's default nn.Linear init (see
    ocp.pretrained.random_critic)."""
    out_dir: Path = Path("results/transfer")
    """Where curves.csv, probe.csv, summary.csv, linear_floor.csv and config.json are written."""
    tasks: tuple[Task, ...] = TASKS
    """``eq1``: the paper's Eq. 1; ``eq1_permuted``: Eq. 1 with permuted inputs; ``similar``: the similar-task
    control."""
    eq1_permutation: tuple[int, ...] = EQ1_PERMUTED_INDICES
    """Task ``eq1_permuted``: term k of Eq. 1 reads input ``eq1_permutation[k]`` (default: see regression_tasks)."""
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    """Regression seeds per PPO run; seed s of the run with PPO seed k draws, from a seed derived from (k, s), the data,
    the random inits and the minibatch order."""
    lrs: tuple[float, ...] = (0.01, 0.005)
    """Adam learning rates (the paper's two)."""
    epochs: int = 200
    """Passes over the training set (our choice: the paper does not say how long it trains)."""
    batch_size: int = 100
    """Minibatch size (our choice); >= n_train gives full-batch training."""
    n_train: int = 1000
    """Training samples (our reading of the paper's "1,000 samples", which may also mean 1,000 in total)."""
    n_test: int = 1000
    """Test samples (our choice), drawn independently of the training set."""
    noise_std: float = 0.1
    """σ of Eq. 1's noise."""
    x_distribution: XDistribution = "normal"
    """Distribution of each Eq. 1 input (not stated in the paper): N(0, x_scale²) or U[−x_scale, x_scale]."""
    x_scale: float = 1.0
    """Standard deviation (normal) or half-width (uniform) of each Eq. 1 input."""
    eq1_inputs: InputMode = "raw"
    """``raw``: X straight into the network (our choice; the paper does not mention the observation normaliser);
    ``checkpoint``: through the checkpoint's normaliser."""
    similar_task: ReturnTaskSpec = dataclasses.field(default_factory=ReturnTaskSpec)
    """The similar task: which returns of which environment, and how its states are sampled."""
    similar_policy: Optional[Path] = None
    """Checkpoint (or run dir) whose policy collects the similar-task states; default each checkpoint's own policy."""
    similar_inputs: InputMode = "checkpoint"
    """``checkpoint``: observations through the checkpoint's normaliser (as its critic saw them); ``raw``: as they
    are."""
    similar_target_scale: TargetScale = "checkpoint"
    """``checkpoint``: divide returns by the checkpoint's √(var(G) + ε), the scale its critic was trained on."""
    probe_every: int = 20
    """Probe the regressor every k epochs (and at the first and last); 0 turns probing off."""
    probe_thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS
    """τ values for the dormant and zero-gradient ratios."""
    alpha: float = 0.05
    """One-sided level of the summary: the interval of the paired difference is at 1 − 2α (TOST at α)."""
    threads: int = 1
    """torch CPU threads (the networks are tiny; more threads mostly add overhead)."""

    def validate(self) -> None:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise ValueError(msg)

        need(len(self.checkpoints) >= 1, "give at least one checkpoint")
        need(
            not self.labels or len(self.labels) == len(self.checkpoints),
            f"{len(self.labels)} labels for {len(self.checkpoints)} checkpoints",
        )
        need(len(set(self.labels)) == len(self.labels), f"labels must be distinct, got {self.labels}")
        need(
            not self.arms or len(self.arms) == len(self.checkpoints),
            f"{len(self.arms)} arms for {len(self.checkpoints)} checkpoints",
        )
        need(
            not self.expected_activations or len(self.expected_activations) == len(self.checkpoints),
            f"{len(self.expected_activations)} expected activations for {len(self.checkpoints)} checkpoints",
        )
        need(
            len(self.random_inits) >= 1
            and len(set(self.random_inits)) == len(self.random_inits)
            and set(self.random_inits) <= {"ppo", "torch"},
            f"random_inits must be distinct of ppo, torch, got {self.random_inits}",
        )
        need(
            len(self.tasks) >= 1 and len(set(self.tasks)) == len(self.tasks) and set(self.tasks) <= set(TASKS),
            f"tasks must be distinct of {', '.join(TASKS)}, got {self.tasks}",
        )
        check_permutation(self.eq1_permutation)
        need(
            len(self.seeds) >= 1 and len(set(self.seeds)) == len(self.seeds),
            f"need >= 1 distinct seeds, got {self.seeds}",
        )
        need(min(self.seeds) >= 0, f"seeds must be >= 0, got {self.seeds}")
        need(len(self.lrs) >= 1 and all(lr > 0 for lr in self.lrs), f"learning rates must be > 0, got {self.lrs}")
        need(
            self.epochs >= 1 and self.batch_size >= 1,
            f"epochs and batch_size must be >= 1, got {self.epochs}, {self.batch_size}",
        )
        need(
            self.n_train >= 1 and self.n_test >= 1,
            f"n_train and n_test must be >= 1, got {self.n_train}, {self.n_test}",
        )
        need(
            self.noise_std >= 0 and self.x_scale > 0,
            f"need noise_std >= 0 and x_scale > 0, got {self.noise_std}, {self.x_scale}",
        )
        need(self.probe_every >= 0, f"probe_every must be >= 0, got {self.probe_every}")
        need(0 < self.alpha < 0.5, f"alpha must be in (0, 0.5), got {self.alpha}")
        need(
            self.x_distribution in X_DISTRIBUTIONS,
            f"x_distribution must be one of {X_DISTRIBUTIONS}, got {self.x_distribution!r}",
        )
        need(self.threads >= 1, f"threads must be >= 1, got {self.threads}")
        self.similar_task.validate()


def upgrade_transfer_config_dict(stored: Mapping[str, Any]) -> dict[str, Any]:
    """A stored ``TransferConfig`` dict in today's layout: earlier versions kept the similar task's settings in flat
    ``similar_<field>`` entries, now ``similar_task``. A field an earlier version did not have stays absent."""
    values = dict(stored)
    names = [f.name for f in dataclasses.fields(ReturnTaskSpec)]
    if "similar_task" not in values and any(f"similar_{n}" in values for n in names):
        values["similar_task"] = {n: values.pop(f"similar_{n}") for n in names if f"similar_{n}" in values}
    return values


def _prepare(data: RegressionData, p: PretrainedAgent, inputs: InputMode, target_scale: TargetScale) -> RegressionData:
    """Apply the checkpoint's observation normaliser and/or return scale, as chosen."""
    x_train, x_test, y_train, y_test = data.x_train, data.x_test, data.y_train, data.y_test
    if inputs == "checkpoint":
        x_train, x_test = (torch.from_numpy(p.agent.normalize_obs(x, update=False)) for x in (x_train, x_test))
    if target_scale == "checkpoint" and p.agent.norm_reward:
        scale = float(torch.sqrt(p.agent.ret_rms.var + p.agent.norm_epsilon))
        y_train, y_test = y_train / scale, y_test / scale
    return RegressionData(x_train, y_train, x_test, y_test)


def linear_floor_rows(cfg: TransferConfig) -> list[dict[str, Any]]:
    """The best affine fit's test MSE on Eq. 1 (:func:`ocp.regression_tasks.eq1_linear_floor`) for every input
    distribution the suite offers, at the run's input scale and noise; ``used`` marks the run's distribution."""
    rows = []
    for distribution in X_DISTRIBUTIONS:
        variance, floor = eq1_linear_floor(distribution, cfg.x_scale, cfg.noise_std)
        rows.append(
            {
                "distribution": distribution,
                "x_scale": cfg.x_scale,
                "noise_std": cfg.noise_std,
                "target_variance": variance,
                "linear_floor_mse": floor,
                "floor_share": floor / variance,
                "used": int(distribution == cfg.x_distribution),
            }
        )
    return rows


@dataclass(frozen=True)
class Critic:
    """One PPO run's critic as the experiment uses it: its agent, its arm and its PPO seed."""

    pretrained: PretrainedAgent
    arm: str
    ppo_seed: int


def replicate_seed(ppo_seed: int, seed: int) -> int:
    """The seed of regression seed ``seed`` nested in the PPO run with seed ``ppo_seed``: that pair's data, random
    inits and minibatch order come from it, so they differ between PPO runs of an arm."""
    return int(np.random.SeedSequence([ppo_seed, seed]).generate_state(1)[0])


def _load_groups(cfg: TransferConfig) -> tuple[list[Critic], Optional[PretrainedAgent]]:
    """The checkpoints' critics (checked against the tasks' input widths, for distinct labels and for distinct PPO
    seeds within an arm) and the optional shared similar-task policy."""
    task_dims = {"eq1": EQ1_INPUT_DIM, "eq1_permuted": EQ1_INPUT_DIM}
    if "similar" in cfg.tasks:
        task_dims["similar"] = check_env(cfg.similar_task.env_id)[0]
    critics = []
    for i, path in enumerate(cfg.checkpoints):
        p = load_pretrained(
            path,
            cfg.expected_activations[i] if cfg.expected_activations else None,
            label=cfg.labels[i] if cfg.labels else None,
        )
        for task in cfg.tasks:
            if p.obs_dim != task_dims[task]:
                raise ValueError(
                    f"{p.source}: the critic takes {p.obs_dim} inputs, task {task!r} has {task_dims[task]}"
                )
        ppo_seed = p.provenance.get("ppo_seed")
        if not isinstance(ppo_seed, int) or ppo_seed < 0:
            raise ValueError(
                f"{p.source}: the checkpoint's config has PPO seed {ppo_seed!r}; the regression seeds of "
                "a PPO run are derived from it, so it must be an integer >= 0"
            )
        critics.append(Critic(p, cfg.arms[i] if cfg.arms else p.activation, ppo_seed))
    labels = [c.pretrained.label for c in critics]
    if len(set(labels)) != len(labels):
        raise ValueError(f"checkpoints share a label ({labels}); pass distinct --labels")
    runs = [(c.arm, c.ppo_seed) for c in critics]
    if len(set(runs)) != len(runs):
        raise ValueError(
            f"two checkpoints of one arm come from the same PPO seed ((arm, seed): {runs}); an arm's "
            "replicates are its PPO runs, one critic each"
        )
    shared_policy = (
        load_pretrained(cfg.similar_policy, input_dim=task_dims.get("similar")) if cfg.similar_policy else None
    )
    return critics, shared_policy


def part_key(cfg: TransferConfig, critics: Sequence[Critic], shared_policy: Optional[PretrainedAgent]) -> str:
    """What a per-seed part depends on: every setting but the output folder, with checkpoints, labels and the
    similar-task policy as resolved (the files actually read, the labels used). A run directory that gained a newer
    checkpoint thus gives a new key, and the config a worker gets (pinned to those files, see :func:`run_transfer`)
    the same key as the one the user gave."""
    settings = {
        k: v
        for k, v in dataclasses.asdict(cfg).items()
        if k not in ("out_dir", "checkpoints", "labels", "similar_policy")
    }
    return stable_key(
        {
            "settings": settings,
            "sources": [[str(c.pretrained.source), c.pretrained.label] for c in critics],
            "similar_policy": None if shared_policy is None else str(shared_policy.source),
        },
        length=16,
    )


def transfer_seed(cfg: TransferConfig, seed: int) -> dict[str, Any]:
    """Every (PPO run, task, init, lr) of one regression seed: the unit of work a pool runs in parallel. Runs with
    ``cfg.threads`` torch threads wherever it runs, so a seed's numbers do not depend on the process it ran in."""
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        critics, shared_policy = _load_groups(cfg)
        curves: list[dict[str, Any]] = []
        probes: list[dict[str, Any]] = []
        eq1_cache: dict[tuple[str, int], RegressionData] = {}
        shared_returns: dict[int, RegressionData] = {}
        inits = ("pretrained", *(f"random_{scheme}" for scheme in cfg.random_inits))
        for critic in critics:
            p, pair_seed = critic.pretrained, replicate_seed(critic.ppo_seed, seed)
            for task in cfg.tasks:
                if task in ("eq1", "eq1_permuted"):
                    # Both Eq. 1 variants of one (run, seed) share inputs and noise; only the target's wiring differs.
                    permutation = cfg.eq1_permutation if task == "eq1_permuted" else None
                    raw = eq1_cache.get((task, pair_seed))
                    if raw is None:
                        raw = eq1_cache[(task, pair_seed)] = make_eq1_data(
                            cfg.n_train,
                            cfg.n_test,
                            pair_seed,
                            cfg.noise_std,
                            cfg.x_distribution,
                            cfg.x_scale,
                            permutation,
                        )
                    data = _prepare(raw, p, cfg.eq1_inputs, "none")
                else:
                    if shared_policy is not None:
                        if pair_seed not in shared_returns:
                            shared_returns[pair_seed] = collect_return_data(
                                shared_policy.agent, cfg.similar_task, cfg.n_train, cfg.n_test, pair_seed
                            )
                        raw = shared_returns[pair_seed]
                    else:
                        raw = collect_return_data(p.agent, cfg.similar_task, cfg.n_train, cfg.n_test, pair_seed)
                    data = _prepare(raw, p, cfg.similar_inputs, cfg.similar_target_scale)
                for init in inits:
                    for lr in cfg.lrs:
                        model = (
                            pretrained_critic(p)
                            if init == "pretrained"
                            else random_critic(p, pair_seed, init.removeprefix("random_"))
                        )
                        c, pr = train_regressor(
                            model,
                            data,
                            lr,
                            cfg.epochs,
                            cfg.batch_size,
                            pair_seed,
                            cfg.probe_every,
                            cfg.probe_thresholds,
                        )
                        meta = {
                            "task": task,
                            "arm": critic.arm,
                            "ppo_run": p.label,
                            "ppo_seed": critic.ppo_seed,
                            "init": init,
                            "activation": p.activation,
                            "lr": lr,
                            "seed": seed,
                        }
                        curves += [{**meta, **row} for row in c]
                        probes += [{**meta, **row} for row in pr]
        return {"seed": seed, "key": part_key(cfg, critics, shared_policy), "curves": curves, "probe": probes}
    finally:
        torch.set_num_threads(previous_threads)


def _part_path(cfg: TransferConfig, seed: int) -> Path:
    return Path(cfg.out_dir) / "parts" / f"seed_{seed}.json"


def _load_part(path: Path, key: str) -> Optional[dict[str, Any]]:
    """A finished seed's rows, or None when the file is missing, unreadable or from other settings."""
    try:
        part = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return part if isinstance(part, dict) and part.get("key") == key else None


def run_transfer(
    cfg: TransferConfig,
    log: Callable[[str], None] = lambda s: None,
    map_seeds: Callable[..., Iterable[dict[str, Any]]] = map,
) -> dict[str, list[dict[str, Any]]]:
    """Run every (task, checkpoint, init, lr, seed), write the CSVs and config.json to ``cfg.out_dir``, return the rows
    (``curves``, ``probe``, ``summary``, ``linear_floor``).

    Seeds are independent units (:func:`transfer_seed`); ``map_seeds(fn, cfgs, seeds)`` runs them — the builtin
    ``map`` in this process, or an executor's parallel map (``ocp.experiments``). Each finished seed is kept in
    ``out_dir/parts/seed_<s>.json`` (atomic write), so an interrupted run redoes only the seeds it had not finished;
    a part written under other settings or other checkpoint files is recomputed.
    """
    cfg.validate()
    started = time.perf_counter()
    critics, shared_policy = _load_groups(cfg)
    key = part_key(cfg, critics, shared_policy)
    parts = {s: _load_part(_part_path(cfg, s), key) for s in cfg.seeds}
    todo = [s for s in cfg.seeds if parts[s] is None]
    if len(todo) < len(cfg.seeds):
        log(f"reusing {len(cfg.seeds) - len(todo)} finished seed(s) from {Path(cfg.out_dir) / 'parts'}")
    # Workers read exactly the checkpoint files resolved here: a run directory that gains a newer checkpoint while
    # the seeds run must not give different seeds different critics.
    pinned = dataclasses.replace(
        cfg,
        checkpoints=tuple(c.pretrained.source for c in critics),
        labels=tuple(c.pretrained.label for c in critics),
        similar_policy=None if shared_policy is None else shared_policy.source,
    )
    for part in map_seeds(transfer_seed, [pinned] * len(todo), todo):
        if part["key"] != key:
            raise RuntimeError(f"seed {part['seed']} ran on other checkpoint files or settings than this run resolved")
        atomic_write_bytes(_part_path(cfg, part["seed"]), (json.dumps(part) + "\n").encode())
        parts[part["seed"]] = part
        for r in part["curves"]:
            if r["epoch"] == cfg.epochs:
                what = f"seed {r['seed']} {r['task']:<12} {r['ppo_run']} {r['init']:<12} lr {r['lr']:g}"
                log(f"{what}: final test MSE {r['test_mse']:.4g}")
    curves = [row for s in cfg.seeds for row in parts[s]["curves"]]
    probes = [row for s in cfg.seeds for row in parts[s]["probe"]]
    summary = summarise(curves, cfg.alpha)
    floors = linear_floor_rows(cfg)
    out = Path(cfg.out_dir)
    write_csv(out / "curves.csv", curves, CURVE_COLUMNS)
    write_csv(out / "probe.csv", probes, PROBE_COLUMNS)
    write_csv(out / "summary.csv", summary, SUMMARY_COLUMNS)
    write_csv(out / "linear_floor.csv", floors, LINEAR_FLOOR_COLUMNS)
    info = {
        "config": json.loads(json.dumps(dataclasses.asdict(cfg), default=str)),
        "checkpoints": {c.pretrained.label: str(c.pretrained.source) for c in critics},
        "arms": {c.pretrained.label: c.arm for c in critics},
        "provenance": {c.pretrained.label: c.pretrained.provenance for c in critics},
        "similar_policy": None if shared_policy is None else str(shared_policy.source),
        "seeds_computed_now": todo,
        "wall_seconds": time.perf_counter() - started,
    }
    atomic_write_bytes(out / "config.json", (json.dumps(info, indent=2) + "\n").encode())
    return {"curves": curves, "probe": probes, "summary": summary, "linear_floor": floors}


def main(argv: Optional[Sequence[str]] = None) -> None:
    import tyro

    cfg = tyro.cli(TransferConfig, args=argv)
    try:
        result = run_transfer(cfg, log=lambda s: print(s, file=sys.stderr, flush=True))
    except ValueError as err:
        raise SystemExit(f"error: {err}") from err
    print(format_summary(result["summary"]))
    print(f"wrote {cfg.out_dir}/curves.csv, probe.csv, summary.csv, linear_floor.csv, config.json")


if __name__ == "__main__":
    main()
