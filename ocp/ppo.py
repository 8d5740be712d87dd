"""PPO for continuous control (clipped surrogate, GAE) with plasticity measured during training.

One configuration dataclass (:class:`PPOConfig`), two presets (:func:`presets`), one training loop (:func:`train`),
which reads like CleanRL's ``ppo_continuous_action.py``: collect a rollout (``ocp.rollout``), compute GAE, probe and
intervene when due, update (``ocp.update``: the loss gradient derived by hand in numpy, applied by
``ocp.flat_adam.FlatAdam``), log, checkpoint. The losses are defined here once in torch; the probe uses them and the
update is tested against them. The differences from CleanRL are listed in ``docs/ppo.md`` (gymnasium 1.x autoreset,
bootstrapping at time-limit truncation, normalisers owned by the agent, exact resume, the numpy update).

Run directory (``PPOConfig.run_dir``)::

    config.json            the config (a resume must match it)
    metrics.csv            one row per update (METRIC_COLUMNS)
    plasticity.csv         tidy: one row per (update, network, layer, metric, tau) (PLASTICITY_COLUMNS)
    episodes.csv           one row per finished episode (raw return and length)
    masks/update_*.npz     per-neuron dormant / zero-gradient masks of each measurement, bit-packed (ocp.runlog)
    switches.csv           with a scenario: ratios and set changes around each task switch (ocp.switch_analysis)
    recovery.csv           with a scenario, once finished: return recovery time after each switch (ocp.switch_analysis)
    interventions.csv      with an intervention: what it did, per update (INTERVENTION_COLUMNS)
    tb/                    TensorBoard event files
    checkpoints/*.ckpt     the newest ``keep_checkpoints`` checkpoints (ocp.checkpoint)
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import json
import math
import random
import shutil
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Iterator, Literal, Mapping, Optional, Union

import numpy as np
import torch
import tyro
from torch import nn
from tqdm import tqdm

from ocp import metrics
from ocp.agent import ACTIVATIONS, Activation, Agent, RunningMeanStd, gaussian_entropy, gaussian_log_prob
from ocp.atomic_files import atomic_write_json, write_csv
from ocp.checkpoint import (
    CHECKPOINT_DIR,
    GeneratorState,
    GlobalRandomState,
    RunState,
    TensorsState,
    config_diff,
    load_latest_checkpoint,
    save_rotating,
)
from ocp.envs import VectorEnvState, check_env, make_vector_env
from ocp.flat_adam import FlatAdam
from ocp.interventions import INTERVENTIONS, Intervention, intervention_from_dict
from ocp.probe import PlasticityProbe, ProbeResult, network_ratio
from ocp.rollout import LoopState, Rollout, RolloutCollector, RolloutSettings, compute_gae
from ocp.runlog import MASK_DIR, CsvLog, delete_masks_after, mask_key, save_masks
from ocp.scenarios import Scenario, ScenarioName, TaskSwitchEnv
from ocp.switch_analysis import RECOVERY_COLUMNS, SWITCH_COLUMNS, SwitchMonitor, recovery_rows
from ocp.update import PPOUpdate, UpdateSettings

#: Any registered intervention, each a sub-command named after it on the command line (``intervention:redo``).
InterventionChoice = Union[tuple(Annotated[cls, tyro.conf.subcommand(name)] for name, cls in INTERVENTIONS.items())]  # type: ignore[valid-type]


@dataclass
class PPOConfig:
    """PPO on a gymnasium MuJoCo task with in-training plasticity measurement.

    The defaults are CleanRL's ``ppo_continuous_action`` defaults (the ``cleanrl`` preset); the ``paper`` preset is
    the paper's Appendix B (see :func:`presets`).
    """

    # ----- run -----
    exp_name: str = "cleanrl"
    """Name of the experiment; part of the default run directory."""
    seed: int = 1
    """Seed of torch, numpy, the action sampler and the environments (sub-env i gets seed + i)."""
    run_dir: Optional[str] = None
    """Run directory; default ``runs/<exp_name>__<env_id>__seed<seed>``."""
    resume: bool = False
    """Continue the run in ``run_dir`` from its newest valid checkpoint (the config must match the saved one)."""
    overwrite: bool = False
    """Delete an existing run in ``run_dir`` and start again."""
    torch_threads: int = 1
    """torch intra-op threads. One is fastest for 64-wide MLPs on small batches and leaves cores to the envs."""
    flush_denormal: bool = True
    """Treat subnormal floats as 0 while training (the CPU's flush-to-zero and denormals-are-zero modes, set through
    ``torch.set_flush_denormal`` for the training thread, so numpy's arithmetic there follows too). Under Adam with L2
    weight decay the incoming weights of a dead ReLU unit decay geometrically and stall in the subnormal range, where
    every multiply costs ~40x; a 20M-step ReLU run slowed from ~5,600 to ~2,200 steps/s after 1.5M steps that way.
    Flushed, those weights become exactly 0. It changes the last bits of a run whose values reach the subnormal range,
    so it is part of the config (and of the experiment grid's run keys). The probe always measures in IEEE arithmetic,
    so Definition 1's exact zero at τ = 0 is never a flushed tiny value."""
    progress_bar: bool = True
    """Show a tqdm progress bar (SPS and recent return)."""
    tensorboard: bool = True
    """Write TensorBoard event files to ``run_dir/tb``."""
    checkpoint_interval: int = 10
    """Save a checkpoint every this many updates (and always after the last one)."""
    keep_checkpoints: int = 2
    """How many of the newest checkpoints to keep (an older one is the fallback if the newest fails verification)."""
    return_window: int = 10
    """Number of most recent episodes averaged into ``return_recent`` (progress bar, metrics)."""

    # ----- environment -----
    env_id: str = "HalfCheetah-v4"
    """gymnasium MuJoCo task with Box observation and action spaces (HalfCheetah-v4 is the paper's; v5 works)."""
    num_envs: int = 1
    """Number of parallel environments."""
    vector_mode: Literal["sync", "async"] = "sync"
    """``sync``: envs stepped in this process; ``async``: one subprocess per env (worth it for several envs)."""
    max_episode_steps: Optional[int] = None
    """Override the task's time limit (None: the registered one, 1000 for HalfCheetah)."""
    bootstrap_truncation: bool = True
    """At a time-limit truncation bootstrap with V(final observation). False reproduces older code (CleanRL), which
    treats truncation like termination."""

    # ----- algorithm -----
    total_timesteps: int = 1_000_000
    """Environment steps in total (rounded down to whole updates of ``num_envs * num_steps``)."""
    num_steps: int = 2048
    """Steps per env per rollout."""
    learning_rate: float = 3e-4
    """Adam learning rate (start value when annealed)."""
    anneal_lr: bool = True
    """Anneal the learning rate linearly to 0 over the updates (CleanRL's schedule: update k uses lr·(1−(k−1)/K))."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE λ."""
    num_minibatches: int = 32
    """Minibatches per epoch; must divide ``num_envs * num_steps``."""
    update_epochs: int = 10
    """Epochs over the rollout per update."""
    norm_adv: bool = True
    """Normalise advantages per minibatch (and over the whole batch for the probe objective)."""
    clip_coef: float = 0.2
    """Surrogate clipping coefficient ε."""
    clip_vloss: bool = True
    """Clip the value update around the rollout's values, as CleanRL."""
    ent_coef: float = 0.0
    """Entropy bonus coefficient."""
    vf_coef: float = 0.5
    """Value-loss coefficient."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip over all parameters."""
    target_kl: Optional[float] = None
    """Stop an update's epochs early when the last minibatch's approx KL exceeds this (None: never)."""
    weight_decay: float = 0.0
    """Weight decay on every parameter (weights, biases, log-std)."""
    weight_decay_mode: Literal["l2", "decoupled"] = "l2"
    """``l2``: the maths of ``torch.optim.Adam(weight_decay=...)``, an L2 term added to the gradient inside the
    optimiser step (what a CleanRL-derived script gets by passing weight_decay to Adam; the paper does not say).
    ``decoupled``: AdamW's. Both run in ``ocp.flat_adam.FlatAdam``."""
    adam_eps: float = 1e-5
    """Adam ε (CleanRL's)."""

    # ----- agent -----
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Hidden widths of the actor and of the critic (separate networks)."""
    activation: Activation = "tanh"
    """Hidden activation; ``identity`` is the paper's No-Act network."""
    init_log_std: float = 0.0
    """Initial value of the state-independent log standard deviation."""
    norm_obs: bool = True
    """Normalise observations with running mean/std (statistics held by the agent)."""
    norm_reward: bool = True
    """Scale rewards by the running std of the discounted return (statistics held by the agent)."""
    obs_clip: float = 10.0
    """Clip normalised observations to ±this."""
    reward_clip: float = 10.0
    """Clip normalised rewards to ±this."""
    norm_epsilon: float = 1e-8
    """ε under the square root of the normalisers."""
    reward_norm_reset: Literal["termination", "episode_end"] = "termination"
    """When the discounted return G behind reward scaling restarts. ``termination``: gymnasium's NormalizeReward (what
    CleanRL uses), G_t = γ·(1 − terminated_t)·G_{t−1} + r_t, so G runs on across time-limit truncations.
    ``episode_end``: G restarts from 0 after every episode end, terminated or truncated."""

    # ----- plasticity -----
    probe_interval: int = 10
    """Measure plasticity every this many updates (also at update 1); 0 disables the regular measurements (a scenario or
    an intervention still probes the updates it needs: around switches, when the intervention acts; every measurement is
    logged). The probe batch is the current rollout (normalised observations, actions, log-probs, advantages, returns),
    measured after GAE and before the first optimiser step of the update, where the PPO ratio is 1 (no sample is
    clipped)."""
    probe_thresholds: tuple[float, ...] = (0.0, 0.025, 0.1)
    """Thresholds τ for dormant (score ≤ τ) and zero-gradient (normalised MAGI ≤ τ) neurons."""
    probe_objective: Literal["loss", "optimised", "ppo_loss"] = "loss"
    """The objective whose gradient gives MAGI and the zero-gradient units (every table and every intervention that
    reads the probe uses it). ``loss`` (default): the loss the training step backpropagates, the PPO loss plus the
    intervention's penalty (L2-init's c·Σ‖θ − θ₀‖²), which is what ``.grad`` holds in a PyTorch implementation and
    what the paper's ∂L/∂w is about; the optimiser's own L2 weight decay is left out, as torch's Adam adds it inside
    ``step()`` (with it, a dead unit of a decayed network is never exactly zero-gradient, so Definition 1 at τ = 0
    could never meet Theorem 1's zero gradient). ``optimised``: everything the optimiser follows, ``loss`` plus
    ½·weight_decay·‖θ‖² when ``weight_decay_mode="l2"`` adds weight_decay·θ to the gradient. ``ppo_loss``: the PPO loss
    alone (the measurements before this choice existed). Every arm of one preset shares the weight decay, so only the
    penalty differs between arms under ``loss``. Dormancy does not depend on this choice."""

    # ----- task switches (ocp.scenarios) -----
    scenario: ScenarioName = "none"
    """Task switched every ``scenario_period`` steps (task 0, 1, 0, ...): ``reverse`` negates the forward-reward weight,
    ``ctrl_cost`` multiplies the control-cost weight by ``scenario_scale``, ``mass`` every body's mass and inertia,
    ``friction`` every geom's friction; ``permute_obs`` permutes the observation vector. ``none``: stationary."""
    scenario_period: int = 0
    """Environment steps between switches; a multiple of ``num_envs * num_steps`` (switches fall between updates)."""
    scenario_scale: float = 3.0
    """Factor of ``ctrl_cost``, ``mass`` and ``friction`` in task 1."""
    scenario_seed: int = 0
    """Seed of the fixed ``permute_obs`` permutation (independent of ``seed``, so every seed sees the same task)."""
    reset_normalizers_on_switch: bool = False
    """Reset the observation and return normalisers at every switch. Default: keep their statistics across switches
    (the agent carries them, as it carries its weights)."""
    recovery_fraction: float = 0.9
    """Return recovery after a switch: the first update at which the recent post-switch return reaches this fraction
    of the pre-switch level (``recovery.csv``; see ``ocp.switch_analysis.recovery_rows``)."""

    # ----- interventions (ocp.interventions) -----
    intervention: InterventionChoice = dataclasses.field(default_factory=Intervention)
    """Plasticity intervention on the actor and critic MLPs, with its parameters (each documented on its class in
    ``ocp.interventions``): ``redo`` (recycle dormant units), ``gradient_redo`` (reset or perturb zero-gradient
    units), ``shrink_perturb``, ``l2_init`` (a loss term), ``weight_clipping`` (after every optimiser step). On the
    command line: ``intervention:redo --intervention.every 10``."""

    # ----- derived -----
    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    @property
    def num_updates(self) -> int:
        return self.total_timesteps // self.batch_size

    @property
    def task_scenario(self) -> Scenario:
        return Scenario(self.scenario, self.scenario_period, self.scenario_scale, self.scenario_seed)

    def resolved_run_dir(self) -> Path:
        return Path(self.run_dir) if self.run_dir else Path("runs") / f"{self.exp_name}__{self.env_id}__seed{self.seed}"

    def to_dict(self) -> dict[str, Any]:
        """The config as plain values (JSON-ready; the intervention as ``{"name": ..., **parameters}``)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["intervention"] = self.intervention.to_dict()
        return out

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any]) -> PPOConfig:
        """The config :meth:`to_dict` wrote, read back (lists become tuples). Also reads the layout of earlier
        versions, which kept the intervention's parameters in flat ``intervention_*`` fields."""
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in upgrade_config_dict(stored).items()}
        if isinstance(values.get("intervention"), Mapping):
            values["intervention"] = intervention_from_dict(values["intervention"])
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown PPO config field(s) {unknown}")
        return cls(**values)

    def validate(self) -> None:
        """Raise ``ValueError`` listing every invalid hyper-parameter."""
        errors = []

        def need(ok: bool, msg: str) -> None:
            if not ok:
                errors.append(msg)

        need(self.num_envs >= 1, f"num_envs must be >= 1, got {self.num_envs}")
        need(self.num_steps >= 1, f"num_steps must be >= 1, got {self.num_steps}")
        need(self.num_minibatches >= 1, f"num_minibatches must be >= 1, got {self.num_minibatches}")
        if self.num_envs >= 1 and self.num_steps >= 1 and self.num_minibatches >= 1:
            need(
                self.batch_size % self.num_minibatches == 0,
                f"num_minibatches={self.num_minibatches} does not divide the batch "
                f"num_envs*num_steps={self.batch_size}",
            )
            need(
                self.total_timesteps >= self.batch_size,
                f"total_timesteps={self.total_timesteps} is less than one batch ({self.batch_size})",
            )
        need(self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate}")
        need(0 <= self.gamma <= 1, f"gamma must be in [0, 1], got {self.gamma}")
        need(0 <= self.gae_lambda <= 1, f"gae_lambda must be in [0, 1], got {self.gae_lambda}")
        need(self.update_epochs >= 1, f"update_epochs must be >= 1, got {self.update_epochs}")
        need(self.clip_coef > 0, f"clip_coef must be > 0, got {self.clip_coef}")
        need(self.ent_coef >= 0, f"ent_coef must be >= 0, got {self.ent_coef}")
        need(self.vf_coef >= 0, f"vf_coef must be >= 0, got {self.vf_coef}")
        need(self.max_grad_norm > 0, f"max_grad_norm must be > 0, got {self.max_grad_norm}")
        need(self.target_kl is None or self.target_kl > 0, f"target_kl must be > 0 or None, got {self.target_kl}")
        need(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        need(
            self.weight_decay_mode in ("l2", "decoupled"),
            f"weight_decay_mode must be 'l2' or 'decoupled', got {self.weight_decay_mode!r}",
        )
        need(self.adam_eps > 0, f"adam_eps must be > 0, got {self.adam_eps}")
        need(
            len(self.hidden_sizes) >= 1 and all(h >= 1 for h in self.hidden_sizes),
            f"hidden_sizes must be one or more positive widths, got {self.hidden_sizes}",
        )
        need(
            self.activation in ACTIVATIONS,
            f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}",
        )
        need(self.vector_mode in ("sync", "async"), f"vector_mode must be 'sync' or 'async', got {self.vector_mode!r}")
        need(
            self.max_episode_steps is None or self.max_episode_steps >= 1,
            f"max_episode_steps must be >= 1, got {self.max_episode_steps}",
        )
        need(
            self.obs_clip > 0 and self.reward_clip > 0,
            f"obs_clip and reward_clip must be > 0, got {self.obs_clip}, {self.reward_clip}",
        )
        need(self.norm_epsilon > 0, f"norm_epsilon must be > 0, got {self.norm_epsilon}")
        need(
            self.reward_norm_reset in ("termination", "episode_end"),
            f"reward_norm_reset must be 'termination' or 'episode_end', got {self.reward_norm_reset!r}",
        )
        need(self.probe_interval >= 0, f"probe_interval must be >= 0, got {self.probe_interval}")
        need(
            self.probe_objective in ("loss", "optimised", "ppo_loss"),
            f"probe_objective must be 'loss', 'optimised' or 'ppo_loss', got {self.probe_objective!r}",
        )
        need(
            len(self.probe_thresholds) >= 1 and all(t >= 0 and math.isfinite(t) for t in self.probe_thresholds),
            f"probe_thresholds must be one or more finite values >= 0, got {self.probe_thresholds}",
        )
        need(self.checkpoint_interval >= 1, f"checkpoint_interval must be >= 1, got {self.checkpoint_interval}")
        need(self.keep_checkpoints >= 1, f"keep_checkpoints must be >= 1, got {self.keep_checkpoints}")
        need(self.return_window >= 1, f"return_window must be >= 1, got {self.return_window}")
        need(self.torch_threads >= 1, f"torch_threads must be >= 1, got {self.torch_threads}")
        need(not (self.resume and self.overwrite), "resume and overwrite are mutually exclusive")
        if self.num_envs >= 1 and self.num_steps >= 1:
            errors.extend(self.task_scenario.errors(self.batch_size))
        need(0 < self.recovery_fraction <= 1, f"recovery_fraction must be in (0, 1], got {self.recovery_fraction}")
        if isinstance(self.intervention, Intervention):
            errors.extend(self.intervention.errors())
        else:
            errors.append(f"intervention must be an ocp.interventions.Intervention, got {self.intervention!r}")
        if errors:
            raise ValueError("invalid PPO config:\n  " + "\n  ".join(errors))


#: The earlier flat config fields of each intervention parameter: ``intervention_<old>`` -> parameter.
_FLAT_INTERVENTION_FIELDS = {
    "every": "every",
    "tau": "tau",
    "mode": "mode",
    "adam_step": "adam_step",
    "noise_scale": "noise_scale",
    "shrink": "shrink",
    "perturb": "perturb",
    "l2_coef": "coef",
    "l2_keep_weight_decay": "keep_weight_decay",
    "clip_kappa": "kappa",
}


def upgrade_config_dict(stored: Mapping[str, Any]) -> dict[str, Any]:
    """A stored config dict in today's layout, with exactly the fields it had otherwise (a field an earlier version
    did not have stays absent): the flat ``intervention*`` fields of earlier versions become the intervention's
    ``{"name": ..., **parameters}``."""
    values = dict(stored)
    if isinstance(values.get("intervention"), str):
        values["intervention"] = _flat_intervention(values).to_dict()
    return values


def _flat_intervention(values: dict[str, Any]) -> Intervention:
    """Pop the flat ``intervention*`` fields of an earlier config and build the intervention they describe."""
    name = values.pop("intervention")
    flat = {k: values.pop(f"intervention_{k}") for k in _FLAT_INTERVENTION_FIELDS if f"intervention_{k}" in values}
    cls = INTERVENTIONS.get(name)
    if cls is None:
        raise ValueError(f"unknown intervention {name!r}; choose from {sorted(INTERVENTIONS)}")
    takes = {f.name for f in dataclasses.fields(cls) if f.init}
    params = {_FLAT_INTERVENTION_FIELDS[k]: v for k, v in flat.items() if _FLAT_INTERVENTION_FIELDS[k] in takes}
    return cls(**params)


def build_intervention(cfg: PPOConfig) -> Intervention:
    """A fresh instance of the config's intervention (same parameters, no state), for one run to bind and train with."""
    return dataclasses.replace(cfg.intervention)


def intervention_networks(agent: Agent) -> dict[str, nn.Sequential]:
    """The networks an intervention acts on, named as the probe results (``PlasticityRecorder.measure``) name them."""
    return {"actor": agent.actor, "critic": agent.critic}


#: Fields that may differ between a run and its resume: they do not change what is computed.
RUNTIME_FIELDS = frozenset(
    {"resume", "overwrite", "run_dir", "progress_bar", "torch_threads", "checkpoint_interval", "keep_checkpoints"}
)


def presets() -> dict[str, tuple[str, PPOConfig]]:
    """``cleanrl``: CleanRL ppo_continuous_action defaults. ``paper``: Appendix B of the paper; what it leaves open
    (num_envs, num_steps, Adam+L2 vs AdamW, activation of the main runs) is taken from CleanRL, the code base its
    hyper-parameters match: 1 env × 2048 steps, Adam with L2 weight decay, ReLU (the paper compares ReLU and No-Act;
    use ``--activation identity`` for No-Act)."""
    cleanrl = PPOConfig()
    paper = dataclasses.replace(
        cleanrl,
        exp_name="paper",
        total_timesteps=20_000_000,
        learning_rate=1e-4,
        weight_decay=1e-4,
        weight_decay_mode="l2",
        activation="relu",
    )
    return {
        "cleanrl": (
            "CleanRL ppo_continuous_action defaults: lr 3e-4 annealed, 1 env x 2048 steps, tanh, 1M steps",
            cleanrl,
        ),
        "paper": ("Paper Appendix B: lr 1e-4 annealed, weight decay 1e-4 (Adam L2), ReLU, 20M steps", paper),
    }


# ======================================================================================================================
# Losses and advantages (one definition each; the update and the probe objectives both use them)
# ======================================================================================================================


def normalize_advantages(adv: torch.Tensor) -> torch.Tensor:
    return (adv - adv.mean()) / (adv.std() + 1e-8)


def policy_loss(
    logprob: torch.Tensor, old_logprob: torch.Tensor, advantages: torch.Tensor, clip_coef: float
) -> torch.Tensor:
    """Clipped surrogate: mean(max(−A·r, −A·clip(r, 1−ε, 1+ε))), r = exp(logπ − logπ_old)."""
    ratio = torch.exp(logprob - old_logprob)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1 - clip_coef, 1 + clip_coef)
    return torch.max(unclipped, clipped).mean()


def value_loss(
    new_values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, clip_coef: float, clip_vloss: bool
) -> torch.Tensor:
    """0.5·mean((V − R)²), or with ``clip_vloss`` 0.5·mean(max((V − R)², (V_old + clip(V − V_old, ±ε) − R)²))."""
    unclipped = (new_values - returns).square()
    if not clip_vloss:
        return 0.5 * unclipped.mean()
    clipped = old_values + torch.clamp(new_values - old_values, -clip_coef, clip_coef)
    return 0.5 * torch.max(unclipped, (clipped - returns).square()).mean()


def explained_variance(pred: np.ndarray, target: np.ndarray) -> float:
    var = float(np.var(target, ddof=1))
    return math.nan if var == 0 else 1.0 - float(np.var(target - pred, ddof=1)) / var


def optimizer_weight_decay(cfg: PPOConfig) -> float:
    """The optimiser's weight decay: ``weight_decay``, unless the intervention replaces it (``l2_init`` told not to
    keep it)."""
    return cfg.intervention.optimiser_weight_decay(cfg.weight_decay)


def make_optimizer(agent: Agent, cfg: PPOConfig) -> FlatAdam:
    """Adam (``weight_decay_mode="l2"``) or AdamW (``"decoupled"``) over every agent parameter, which it moves into
    one flat buffer (``ocp.flat_adam``)."""
    return FlatAdam(
        agent.parameters(),
        lr=cfg.learning_rate,
        eps=cfg.adam_eps,
        weight_decay=optimizer_weight_decay(cfg),
        decoupled=cfg.weight_decay_mode == "decoupled",
    )


# ======================================================================================================================
# Plasticity measurement
# ======================================================================================================================

PLASTICITY_COLUMNS = [
    "update",
    "global_step",
    "network",
    "layer",
    "layer_kind",
    "width",
    "activation",
    "metric",
    "tau",
    "value",
]


class PlasticityRecorder:
    """Runs :class:`ocp.probe.PlasticityProbe` on actor (``agent.actor``) and critic with the training objective.

    Objectives are the parts of the PPO loss that reach each network: actor ``policy_loss − ent_coef·entropy`` (the
    entropy of a state-independent Gaussian does not depend on the actor MLP, so it adds no gradient there), critic
    ``vf_coef·value_loss``. With ``probe_objective="loss"`` each also gets ``intervention``'s penalty (L2-init) on that
    network; ``optimised`` adds ½·weight_decay·‖θ‖² as well when the optimiser adds L2 weight decay to the gradient
    (``weight_decay_mode="l2"``). The probe's gradient is not norm-clipped: the loop clips each
    minibatch's PPO-plus-penalty gradient by one factor, and the probe batch is the whole rollout, which no step sees
    at once. Advantages are normalised over the whole probe batch when ``norm_adv``. Weight distances are from the
    parameters at initialisation.
    """

    def __init__(
        self,
        agent: Agent,
        cfg: PPOConfig,
        initial_state: dict[str, torch.Tensor],
        intervention: Optional[Intervention] = None,
    ):
        self.agent, self.cfg = agent, cfg
        self.intervention = intervention if cfg.probe_objective in ("loss", "optimised") else None
        optimised = cfg.probe_objective == "optimised" and cfg.weight_decay_mode == "l2"
        self.l2_weight_decay = optimizer_weight_decay(cfg) if optimised else 0.0
        self.thresholds = tuple(cfg.probe_thresholds)
        self.probes = {}
        for net in ("actor", "critic"):
            model: nn.Sequential = getattr(agent, net)
            reference = {
                name: (initial_state[f"{net}.{name}.weight"], initial_state[f"{net}.{name}.bias"])
                for name, m in model.named_modules()
                if isinstance(m, nn.Linear)
            }
            self.probes[net] = PlasticityProbe(model, thresholds=self.thresholds, reference=reference)
        self.previous_masks: dict[str, torch.Tensor] = {}

    def measure(self, batch: dict[str, torch.Tensor]) -> dict[str, ProbeResult]:
        with flushing_denormals(False):  # a flushed subnormal activation would read as an exact zero
            return self._measure(batch)

    def _measure(self, batch: dict[str, torch.Tensor]) -> dict[str, ProbeResult]:
        cfg, agent = self.cfg, self.agent
        adv = normalize_advantages(batch["advantages"]) if cfg.norm_adv else batch["advantages"]
        log_std = agent.actor_logstd.detach()

        def actor_objective(mean: torch.Tensor) -> torch.Tensor:
            ls = log_std.expand_as(mean)
            logp = gaussian_log_prob(mean, ls, batch["actions"])
            loss = policy_loss(logp, batch["logprobs"], adv, cfg.clip_coef) - cfg.ent_coef * gaussian_entropy(ls).mean()
            return self._with_regularisers(loss, "actor", agent.actor)

        def critic_objective(v: torch.Tensor) -> torch.Tensor:
            new_v = v.squeeze(-1)
            loss = cfg.vf_coef * value_loss(new_v, batch["values"], batch["returns"], cfg.clip_coef, cfg.clip_vloss)
            return self._with_regularisers(loss, "critic", agent.critic)

        return {
            "actor": self.probes["actor"].measure(batch["obs"], actor_objective),
            "critic": self.probes["critic"].measure(batch["obs"], critic_objective),
        }

    def _with_regularisers(self, loss: torch.Tensor, name: str, net: nn.Sequential) -> torch.Tensor:
        """``loss`` plus the regularisers the optimiser follows on network ``name`` (none for ``ppo_loss``)."""
        if self.intervention is not None:
            penalty = self.intervention.penalty({name: net})
            if penalty is not None:
                loss = loss + penalty
        if self.l2_weight_decay:
            loss = loss + 0.5 * self.l2_weight_decay * sum(p.square().sum() for p in net.parameters())
        return loss

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The masks of the last measurement (the next one's overlaps compare against them)."""
        return self.previous_masks

    def load_state_dict(self, masks: Optional[dict[str, torch.Tensor]]) -> None:
        self.previous_masks = dict(masks or {})

    def record(
        self, results: dict[str, ProbeResult], update: int, step: int
    ) -> tuple[list[dict], dict[str, torch.Tensor]]:
        """Tidy rows (PLASTICITY_COLUMNS) and this measurement's masks, and advance: overlaps are against the
        previous measurement's masks, which this measurement's then replace."""
        rows: list[dict[str, Any]] = []
        masks: dict[str, torch.Tensor] = {}

        def add(
            net: str, layer: str, kind: str, width: int, activation: str, metric: str, value: float, tau: Any = ""
        ) -> None:
            rows.append(
                dict(
                    update=update,
                    global_step=step,
                    network=net,
                    layer=layer,
                    layer_kind=kind,
                    width=width,
                    activation=activation,
                    metric=metric,
                    tau=tau,
                    value=float(value),
                )
            )

        for net, res in results.items():
            summaries = res.summaries(self.thresholds)  # one host read for every ratio and flag of the measurement
            hidden_width = sum(r.width for r in res.hidden)
            for i, tau in enumerate(self.thresholds):
                for kind in ("dormant", "zero_gradient"):
                    ratio = network_ratio(summaries[: len(res.hidden)], kind, i)
                    add(net, "network", "hidden", hidden_width, "", f"{kind}_ratio", ratio, tau)
            for r, s in zip(res.layers, summaries):
                meta = (net, r.name, r.kind, r.width, r.activation)
                # summaries() has checked these scores: their masks at every threshold, with no read.
                dormant, _ = metrics.masks_deferred(r.dormancy_scores, self.thresholds, "scores")
                zero_gradient, _ = metrics.masks_deferred(r.gradient_scores, self.thresholds, "z")
                for i, tau in enumerate(self.thresholds):
                    for kind, mask, units in (
                        ("dormant", dormant[i], s.dormant_units[i]),
                        ("zero_gradient", zero_gradient[i], s.zero_gradient_units[i]),
                    ):
                        key = mask_key(net, r.name, kind, tau)
                        masks[key] = mask.detach().cpu()
                        prev = self.previous_masks.get(key)
                        overlap = math.nan if prev is None else metrics.overlap_coefficient(prev, masks[key])
                        add(*meta, f"{kind}_ratio", units / r.width, tau)
                        add(*meta, f"{kind}_overlap", overlap, tau)
                add(*meta, "magi_mean", s.magi_mean)
                add(*meta, "magi_min", s.magi_min)
                add(*meta, "magi_max", s.magi_max)
                add(*meta, "degenerate", s.degenerate)
                add(*meta, "gradient_degenerate", s.gradient_degenerate)
                for name, value in s.weight_stats.items():
                    add(*meta, name, value)
                for name, value in r.ranks().items():
                    add(*meta, name, value)
        self.previous_masks = masks
        return rows, masks


# ======================================================================================================================
# The training loop
# ======================================================================================================================

METRIC_COLUMNS = [
    "update",
    "global_step",
    "learning_rate",
    "episodic_return",
    "episodic_length",
    "episodes",
    "return_recent",
    "policy_loss",
    "value_loss",
    "entropy",
    "old_approx_kl",
    "approx_kl",
    "clipfrac",
    "explained_variance",
    "log_std_mean",
    "epochs_run",
    "probed",
    "sps",
    "time_s",
    "probe_time_s",
]
#: Columns that depend on wall-clock time (excluded when comparing a resumed run with an uninterrupted one).
WALL_CLOCK_COLUMNS = ("sps", "time_s", "probe_time_s")
EPISODE_COLUMNS = ["global_step", "update", "env", "episodic_return", "episodic_length"]
#: What an intervention did: ``on_schedule`` counts (e.g. network ``actor``, quantity ``units_reset``) in the updates
#: it acts, and its per-update log (``Intervention.update_log``: e.g. the L2-init term, clipped weights) every update.
INTERVENTION_COLUMNS = ["update", "global_step", "intervention", "network", "quantity", "value"]


_denormal_mode = threading.local()


@contextlib.contextmanager
def flushing_denormals(enabled: bool) -> Iterator[None]:
    """Inside: subnormal floats flushed to 0 in this thread (torch and numpy alike) when ``enabled``, IEEE arithmetic
    when not; the previous mode again after (blocks nest)."""
    previous = getattr(_denormal_mode, "flushing", False)
    if enabled != previous:
        _denormal_mode.flushing = torch.set_flush_denormal(enabled) and enabled
    try:
        yield
    finally:
        if _denormal_mode.__dict__.get("flushing", False) != previous:
            torch.set_flush_denormal(previous)
            _denormal_mode.flushing = previous


def train(cfg: PPOConfig, stop_after_updates: Optional[int] = None) -> Optional[Path]:
    """Train (or resume) the run described by ``cfg``; return its run directory, or ``None`` if there was nothing to
    do (the run had already finished). Subnormal floats are flushed to 0 meanwhile if ``cfg.flush_denormal``.

    ``stop_after_updates`` stops this invocation after that many updates (counted from where it starts), leaving a
    checkpoint behind as an interrupted run would; used to test resume.
    """
    with flushing_denormals(cfg.flush_denormal):
        return _train(cfg, stop_after_updates)


def _train(cfg: PPOConfig, stop_after_updates: Optional[int]) -> Optional[Path]:
    cfg.validate()
    obs_dim, act_dim = check_env(cfg.env_id, cfg.max_episode_steps)
    run_dir = cfg.resolved_run_dir()
    start = _prepare_run_dir(cfg, run_dir)
    if start.finished:
        return None
    checkpoint = start.checkpoint

    # ----- seeding, agent, optimiser, environments -----
    torch.set_num_threads(cfg.torch_threads)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    sampler = torch.Generator().manual_seed(cfg.seed)  # action noise and minibatch order
    agent = Agent.from_config(cfg.to_dict(), obs_dim, act_dim)
    # Weight distances are measured from the initial parameters (a resumed run takes them from its checkpoint).
    initial_state = {k: v.clone() for k, v in agent.state_dict().items()}
    optimizer = make_optimizer(agent, cfg)
    scenario = cfg.task_scenario
    wrap = functools.partial(TaskSwitchEnv, scenario=scenario) if scenario.active else None
    envs = make_vector_env(cfg.env_id, cfg.num_envs, cfg.vector_mode, cfg.max_episode_steps, wrap)
    raw_obs, _ = envs.reset(seed=cfg.seed)
    N = cfg.num_envs
    state = LoopState(
        next_obs=agent.normalize_obs(raw_obs, update=True),
        discounted_return=np.zeros(N),
        episode_return=np.zeros(N),
        episode_length=np.zeros(N, dtype=np.int64),
        recent_returns=deque(maxlen=cfg.return_window),
    )

    # ----- plasticity: intervention, task-switch monitor, probe -----
    networks = intervention_networks(agent)
    intervention = build_intervention(cfg)
    intervention.bind(networks)  # the agent holds its initial weights here (a resume restores the bound state below)
    intervention_rng = torch.Generator().manual_seed(cfg.seed + 1)  # fresh weights drawn by an intervention
    monitor = (
        SwitchMonitor(scenario, cfg.batch_size, cfg.num_updates * cfg.batch_size, cfg.probe_thresholds)
        if scenario.active
        else None
    )
    needs_recorder = cfg.probe_interval > 0 or monitor is not None or intervention.needs_probe
    recorder = PlasticityRecorder(agent, cfg, initial_state, intervention) if needs_recorder else None

    logs = RunLogs(run_dir, cfg, scenario_logs=monitor is not None)

    # ----- everything a checkpoint holds: saved and restored as one registry -----
    parts = RunState()
    parts.register("agent", agent)
    parts.register("initial_agent", TensorsState(initial_state))
    parts.register("optimizer", optimizer)
    parts.register("rng", GlobalRandomState(sampler))
    parts.register("envs", VectorEnvState(envs))
    parts.register("loop", state)
    parts.register("log_offsets", logs)
    parts.register("intervention", intervention)
    parts.register("intervention_rng", GeneratorState(intervention_rng))
    if recorder is not None:
        parts.register("previous_masks", recorder)
    if monitor is not None:
        parts.register("switch_monitor", monitor)
    if checkpoint is not None:
        parts.load_state_dict(checkpoint)
    delete_masks_after(run_dir, state.update)
    logs.open(state)

    collector = RolloutCollector(agent, envs, RolloutSettings.from_config(cfg))
    learner = PPOUpdate(
        agent,
        optimizer,
        UpdateSettings.from_config(cfg),
        intervention if cfg.intervention.name != "none" else None,
        networks,
    )
    buf = Rollout.empty(cfg.num_steps, N, obs_dim, act_dim)
    bar = tqdm(
        total=cfg.num_updates * cfg.batch_size,
        initial=state.global_step,
        unit="step",
        disable=not cfg.progress_bar,
        dynamic_ncols=True,
    )
    start_time, start_step, updates_here = time.perf_counter(), state.global_step, 0
    try:
        while state.update < cfg.num_updates:
            if stop_after_updates is not None and updates_here >= stop_after_updates:
                break
            state.update += 1
            updates_here += 1
            lr = (
                cfg.learning_rate * (1.0 - (state.update - 1.0) / cfg.num_updates)
                if cfg.anneal_lr
                else cfg.learning_rate
            )
            optimizer.param_groups[0]["lr"] = lr
            if scenario.active:
                _apply_task(scenario, cfg, agent, envs, state)

            # ----- rollout and advantages -----
            episodes = collector.collect(state, buf, sampler)
            advantages, returns = compute_gae(
                buf.rewards, buf.values, buf.next_values, buf.terminated, buf.dones, cfg.gamma, cfg.gae_lambda
            )
            batch = buf.flat(advantages, returns)

            # ----- plasticity: probe (regular, around a switch, for an intervention), then the intervention acts -----
            probed, probe_time, results = False, 0.0, {}
            regular = cfg.probe_interval > 0 and (state.update == 1 or state.update % cfg.probe_interval == 0)
            at_switch = monitor is not None and monitor.due(state.update)
            acting = intervention.due(state.update)
            if regular or at_switch or (acting and intervention.needs_probe):
                t0 = time.perf_counter()
                results = recorder.measure({k: torch.from_numpy(v) for k, v in batch.items()})
                logs.plasticity(state, *recorder.record(results, state.update, state.global_step))
                probed, probe_time = True, time.perf_counter() - t0
                if at_switch:
                    logs.write("switches", monitor.observe(state.update, results))
            if acting:  # after the probe, before the update's first optimiser step
                done = intervention.on_schedule(networks, optimizer, results, intervention_rng)
                logs.write("interventions", _intervention_rows(state, intervention, done))

            # ----- PPO update -----
            stats = learner.run(batch, sampler)
            if cfg.intervention.name != "none":
                logs.write("interventions", _intervention_rows(state, intervention, intervention.update_log()))

            # ----- logging and checkpoint -----
            for ep in episodes:
                state.recent_returns.append(ep["episodic_return"])
            elapsed = time.perf_counter() - start_time
            row = {
                "update": state.update,
                "global_step": state.global_step,
                "learning_rate": lr,
                "episodic_return": float(np.mean([e["episodic_return"] for e in episodes])) if episodes else math.nan,
                "episodic_length": float(np.mean([e["episodic_length"] for e in episodes])) if episodes else math.nan,
                "episodes": len(episodes),
                "return_recent": float(np.mean(state.recent_returns)) if state.recent_returns else math.nan,
                **stats,
                "explained_variance": explained_variance(batch["values"], batch["returns"]),
                "log_std_mean": float(agent.actor_logstd.detach().mean()),
                "probed": int(probed),
                "sps": (state.global_step - start_step) / elapsed,
                "time_s": elapsed,
                "probe_time_s": probe_time,
            }
            logs.update(state, row, episodes)
            bar.update(cfg.batch_size)
            bar.set_postfix(sps=f"{row['sps']:.0f}", ret=f"{row['return_recent']:.0f}")

            if state.update % cfg.checkpoint_interval == 0 or state.update == cfg.num_updates:
                meta = {
                    "format": CHECKPOINT_FORMAT,
                    "config": cfg.to_dict(),
                    "update": state.update,
                    "global_step": state.global_step,
                    "finished": state.update >= cfg.num_updates,
                }
                save_rotating(run_dir, state.update, {**meta, **parts.state_dict()}, cfg.keep_checkpoints)
    finally:
        bar.close()
        logs.close()
        envs.close()
    if scenario.active and state.update >= cfg.num_updates:
        _write_recovery(run_dir, cfg)
    return run_dir


class RunLogs:
    """The run's tables (``metrics.csv``, ``plasticity.csv``, ``episodes.csv``, and ``switches.csv`` /
    ``interventions.csv`` when the run has a scenario / an intervention), its mask files and TensorBoard events.

    A checkpoint part: its state is each table's byte length (flushed to disk first), and a resume opens each table
    cut back to the length its checkpoint recorded, dropping rows of updates the run will redo."""

    def __init__(self, run_dir: Path, cfg: PPOConfig, scenario_logs: bool):
        self.run_dir, self.cfg = run_dir, cfg
        self.tables = {"metrics": METRIC_COLUMNS, "plasticity": PLASTICITY_COLUMNS, "episodes": EPISODE_COLUMNS}
        if scenario_logs:
            self.tables["switches"] = SWITCH_COLUMNS
        if cfg.intervention.name != "none":
            self.tables["interventions"] = INTERVENTION_COLUMNS
        self._offsets: dict[str, int] = {name: 0 for name in self.tables}
        self.logs: dict[str, CsvLog] = {}
        self.writer = None

    def load_state_dict(self, offsets: Mapping[str, int]) -> None:
        missing = sorted(set(self.tables) - set(offsets))
        if missing:
            raise ValueError(f"the checkpoint records no length for table(s) {missing}")
        self._offsets = {name: int(offsets[name]) for name in self.tables}

    def open(self, state: LoopState) -> None:
        """Open every table at its recorded length (0 for a fresh run) and the TensorBoard writer."""
        self.logs = {
            name: CsvLog(self.run_dir / f"{name}.csv", columns, truncate_to=self._offsets[name])
            for name, columns in self.tables.items()
        }
        if self.cfg.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step drops events a killed run logged after its last checkpoint.
            purge = state.global_step + 1 if state.update else None
            self.writer = SummaryWriter(str(self.run_dir / "tb"), purge_step=purge)

    def write(self, table: str, rows: list[dict[str, Any]]) -> None:
        self.logs[table].write(rows)

    def plasticity(self, state: LoopState, rows: list[dict[str, Any]], masks: dict[str, torch.Tensor]) -> None:
        self.logs["plasticity"].write(rows)
        save_masks(self.run_dir, state.update, masks)
        if self.writer is not None:
            for row in rows:
                if row["layer"] == "network" or row["metric"].endswith("_ratio"):
                    tag = f"plasticity/{row['network']}/{row['layer']}/{row['metric']}@{row['tau']}"
                    self.writer.add_scalar(tag, row["value"], state.global_step)

    def update(self, state: LoopState, row: dict[str, Any], episodes: list[dict[str, Any]]) -> None:
        self.logs["metrics"].write([row])
        self.logs["episodes"].write([{**e, "update": state.update} for e in episodes])
        if self.writer is not None:
            for key in METRIC_COLUMNS[2:]:
                if key != "probed" and not (isinstance(row[key], float) and math.isnan(row[key])):
                    self.writer.add_scalar(f"ppo/{key}", row[key], state.global_step)

    def state_dict(self) -> dict[str, int]:
        """Flush everything to disk; return each table's byte length (what a checkpoint records)."""
        if self.writer is not None:
            self.writer.flush()
        return {name: log.sync() for name, log in self.logs.items()}

    def close(self) -> None:
        for log in self.logs.values():
            log.close()
        if self.writer is not None:
            self.writer.close()


def _apply_task(scenario: Scenario, cfg: PPOConfig, agent: Agent, envs: Any, state: LoopState) -> None:
    """Set every sub-env to the task of the coming rollout. At a switch, optionally reset the normalisers, and
    re-read the current observation when its meaning changed (a permutation, or fresh normaliser statistics)."""
    envs.set_attr("task", [scenario.task_at(state.global_step)] * cfg.num_envs)
    if state.global_step == 0 or state.global_step % scenario.period:
        return
    if cfg.reset_normalizers_on_switch:
        for rms in (agent.obs_rms, agent.ret_rms):
            rms.load_state_dict(RunningMeanStd(tuple(rms.mean.shape)).state_dict())
    if scenario.name == "permute_obs" or cfg.reset_normalizers_on_switch:
        raw = np.stack(envs.get_attr("current_observation"))
        state.next_obs = agent.normalize_obs(raw, update=cfg.reset_normalizers_on_switch)


def _intervention_rows(state: LoopState, intervention: Intervention, log: Mapping[str, float]) -> list[dict[str, Any]]:
    rows = []
    for key, value in log.items():
        network, _, quantity = key.rpartition("/")
        rows.append(
            dict(
                update=state.update,
                global_step=state.global_step,
                intervention=intervention.name,
                network=network or "all",
                quantity=quantity,
                value=float(value),
            )
        )
    return rows


def _write_recovery(run_dir: Path, cfg: PPOConfig) -> None:
    """``recovery.csv`` of a finished run with a scenario, from its ``episodes.csv`` (see ``recovery_rows``)."""
    with open(run_dir / "episodes.csv", newline="") as f:
        episodes = list(csv.DictReader(f))
    rows = recovery_rows(
        episodes,
        cfg.task_scenario,
        cfg.num_updates * cfg.batch_size,
        cfg.batch_size,
        cfg.num_envs,
        cfg.return_window,
        cfg.recovery_fraction,
    )
    write_csv(run_dir / "recovery.csv", rows, RECOVERY_COLUMNS)


# ======================================================================================================================
# Run directory, checkpoints, resume
# ======================================================================================================================


@dataclass(frozen=True)
class RunStart:
    """Where a run starts: from scratch (no checkpoint), from ``checkpoint``, or not at all (``finished``)."""

    checkpoint: Optional[dict[str, Any]] = None
    finished: bool = False


def _prepare_run_dir(cfg: PPOConfig, run_dir: Path) -> RunStart:
    """Decide what to do with ``run_dir`` before anything is built (see :class:`RunStart`). Raises ``ValueError`` for
    every refusal."""
    config_path = run_dir / "config.json"
    saved = json.loads(config_path.read_text()) if config_path.is_file() else None
    if cfg.resume:
        if not run_dir.is_dir():
            raise ValueError(f"cannot resume: run directory {run_dir} does not exist")
        if saved is None:
            raise ValueError(f"cannot resume: {run_dir} holds no run (no config.json)")
        _refuse_config_change(saved, cfg, run_dir)
        found = load_latest_checkpoint(run_dir)
        if found is None:  # killed before its first checkpoint: start again in place
            _clear_outputs(run_dir)
            atomic_write_json(config_path, cfg.to_dict())
            return RunStart()
        path, checkpoint = found
        if checkpoint.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(
                f"cannot resume: {path} has checkpoint format {checkpoint.get('format')!r}, this version writes and "
                f"reads format {CHECKPOINT_FORMAT} (what it holds differs); start the run again with --overwrite"
            )
        if checkpoint["finished"]:
            print(f"{run_dir}: run already finished at step {checkpoint['global_step']}; nothing to do")
            return RunStart(finished=True)
        return RunStart(checkpoint)
    if saved is not None:
        if cfg.overwrite:
            shutil.rmtree(run_dir)
        else:
            _refuse_config_change(saved, cfg, run_dir)
            found = load_latest_checkpoint(run_dir)
            if found is not None and found[1]["finished"]:
                print(f"{run_dir}: run already finished; nothing to do (pass --overwrite to train again)")
                return RunStart(finished=True)
            raise ValueError(
                f"{run_dir} holds an unfinished run: pass --resume to continue it or --overwrite to restart"
            )
    elif run_dir.exists() and any(run_dir.iterdir()):
        raise ValueError(f"{run_dir} exists, is not empty and holds no run config; choose another --run-dir")
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(config_path, cfg.to_dict())
    return RunStart()


def _refuse_config_change(saved: dict[str, Any], cfg: PPOConfig, run_dir: Path) -> None:
    try:
        saved = PPOConfig.from_dict(saved).to_dict()  # an earlier version's layout compares by meaning
    except (TypeError, ValueError) as err:
        raise ValueError(f"{run_dir}/config.json cannot be read as a PPO config: {err}") from err
    diff = config_diff(saved, cfg.to_dict(), ignore=RUNTIME_FIELDS)
    if diff:
        raise ValueError(
            f"{run_dir} holds a run with a different config; refusing to mix them. Differing fields:\n  "
            + "\n  ".join(diff)
            + "\n(use another --run-dir, or --overwrite to discard the old run)"
        )


def _clear_outputs(run_dir: Path) -> None:
    for name in ("metrics.csv", "plasticity.csv", "episodes.csv"):
        (run_dir / name).unlink(missing_ok=True)
    for name in ("tb", MASK_DIR, CHECKPOINT_DIR):
        shutil.rmtree(run_dir / name, ignore_errors=True)


#: Version of the checkpoint payload. 3: one entry per registered part (``RunState``), the loop state with its update
#: and step; 2: FlatAdam optimiser state, numpy loop state; 1: torch.optim.Adam's.
CHECKPOINT_FORMAT = 3


def load_agent(run_dir: str | Path) -> tuple[Agent, PPOConfig]:
    """The agent (normalisers included) of a run's newest valid checkpoint, in eval mode, and the run's config."""
    found = load_latest_checkpoint(run_dir)
    if found is None:
        raise ValueError(f"{run_dir} has no checkpoint")
    agent, config = Agent.from_checkpoint(found[1], found[0])
    return agent, PPOConfig.from_dict(config)


def evaluate(
    agent: Agent, env_id: str, episodes: int, seed: int, max_episode_steps: Optional[int] = None
) -> list[float]:
    """Returns of ``episodes`` episodes of the deterministic policy (mean action), observations normalised with the
    agent's frozen statistics."""
    from ocp.envs import make_env

    env = make_env(env_id, max_episode_steps)
    low, high = env.action_space.low, env.action_space.high
    returns = []
    try:
        for k in range(episodes):
            obs, _ = env.reset(seed=seed + k)
            total, done = 0.0, False
            while not done:
                action = agent.act(torch.from_numpy(obs)[None], deterministic=True)[0].numpy()
                obs, reward, terminated, truncated, _ = env.step(np.clip(action, low, high))
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
    finally:
        env.close()
    return returns
