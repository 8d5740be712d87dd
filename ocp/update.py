"""The PPO update: epochs of minibatch steps, with the loss and its gradient derived by hand in numpy.

One minibatch step computes, for the actor MLP μ(o), the log-std s and the critic V(o) (``ocp.numpy_nets``):

    z = (a − μ)·e^(−s),  log π = Σ_j (−z_j²/2 − s_j − ½log 2π),  r = exp(log π − log π_old)
    L = mean_i max(−Â_i r_i, −Â_i clip(r_i, 1 ± ε)) − c_ent·H(s) + c_v · ½ mean_i max((V − R)², (V_c − R)²)

with Â the minibatch-normalised advantages and V_c = V_old + clip(V − V_old, ±ε) (``clip_vloss``; otherwise the
plain square). These are the formulas of ``ocp.ppo.policy_loss``, ``value_loss``, ``ocp.agent.gaussian_log_prob``
and ``gaussian_entropy``, the one definition of each, which the probe uses; this module is their hand-derived
gradient, and ``tests/test_update.py`` checks value and gradient against torch autograd on those definitions,
including the points where torch's ``maximum`` splits a tie half and half and ``clamp`` stops the gradient.

    ∂L/∂r_i = −Â_i/B · (w_u + w_c·[1−ε ≤ r_i ≤ 1+ε]),  w = torch.maximum's backward weights (1, ½ at a tie, 0)
    ∂L/∂μ_ij = ∂L/∂r_i · r_i · z_ij e^(−s_j),  ∂L/∂s_j = Σ_i ∂L/∂r_i · r_i (z_ij² − 1) − c_ent
    ∂L/∂V_i = c_v/B · (w_u (V_i − R_i) + w_c (V_c,i − R_i)·[|V_i − V_old,i| ≤ ε])

The gradient is clipped to a global norm and applied by ``ocp.flat_adam.FlatAdam``. An intervention's regulariser
(a torch loss on the parameters, e.g. L2-init) is differentiated by torch autograd and added before the clip, and its
``after_step`` hook follows every step, as in any torch training loop.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional

import numpy as np
import torch
from torch import nn

from ocp.agent import LOG_SQRT_2PI, Agent
from ocp.flat_adam import FlatAdam
from ocp.interventions import Intervention
from ocp.numpy_nets import NumpyMLP


@dataclass(frozen=True)
class UpdateSettings:
    """The hyper-parameters of an update (the matching ``PPOConfig`` fields)."""

    update_epochs: int
    num_minibatches: int
    norm_adv: bool
    clip_coef: float
    clip_vloss: bool
    ent_coef: float
    vf_coef: float
    max_grad_norm: float
    target_kl: Optional[float]

    @classmethod
    def from_config(cls, config: Any) -> UpdateSettings:
        """The settings a run config (``PPOConfig``) holds under the same names."""
        return cls(**{f.name: getattr(config, f.name) for f in dataclasses.fields(cls)})


class PPOUpdate:
    """Trains ``agent`` with ``optimizer`` on rollout batches; one instance for the whole run.

    ``networks`` are the modules an intervention sees (``ocp.ppo.intervention_networks``)."""

    def __init__(
        self,
        agent: Agent,
        optimizer: FlatAdam,
        settings: UpdateSettings,
        intervention: Optional[Intervention] = None,
        networks: Optional[Mapping[str, nn.Sequential]] = None,
    ):
        self.agent, self.optimizer, self.settings = agent, optimizer, settings
        self.intervention, self.networks = intervention, networks
        self.actor, self.critic = NumpyMLP(agent.actor), NumpyMLP(agent.critic)
        self.log_std = agent.actor_logstd.detach().numpy()[0]  # shares memory with the parameter
        grads = optimizer.grad_view
        self.actor_grads = ([grads(m.weight) for m in self.actor.linears], [grads(m.bias) for m in self.actor.linears])
        self.critic_grads = (
            [grads(m.weight) for m in self.critic.linears],
            [grads(m.bias) for m in self.critic.linears],
        )
        self.log_std_grad = grads(agent.actor_logstd)[0]
        self._reg_params = [p for net in (networks or {}).values() for p in net.parameters()]
        self._reg_grads = [grads(p) for p in self._reg_params]

    def run(self, batch: Mapping[str, np.ndarray], generator: torch.Generator) -> dict[str, float]:
        """``update_epochs`` passes of ``num_minibatches`` minibatches over ``batch`` (flat arrays ``obs``,
        ``actions``, ``logprobs``, ``values``, ``advantages``, ``returns``), in an order drawn from ``generator``.

        Returns the means over every minibatch of policy loss, value loss, entropy and clip fraction, and the KL
        estimates of the last minibatch (the ones ``target_kl`` tests, as CleanRL)."""
        s = self.settings
        for net in (self.actor, self.critic):
            net.check_aliasing()
        self.optimizer.check_aliasing()
        size = len(batch["obs"])
        mb = size // s.num_minibatches
        sums = {"policy_loss": 0.0, "value_loss": 0.0, "entropy": 0.0, "clipfrac": 0.0}
        n_mb = epochs_run = 0
        kl = (0.0, 0.0)
        for _ in range(s.update_epochs):
            epochs_run += 1
            order = torch.randperm(size, generator=generator).numpy()
            shuffled = {k: v[order] for k, v in batch.items()}  # one gather per epoch; minibatches are then slices
            for start in range(0, size, mb):
                part = {k: v[start : start + mb] for k, v in shuffled.items()}
                stats = self.minibatch_gradient(part, want_kl=start + mb >= size)
                self._apply_gradient()
                for k in sums:
                    sums[k] += stats[k]
                n_mb += 1
            kl = stats["old_approx_kl"], stats["approx_kl"]
            if s.target_kl is not None and kl[1] > s.target_kl:
                break
        out = {k: v / n_mb for k, v in sums.items()}
        out.update(old_approx_kl=kl[0], approx_kl=kl[1], epochs_run=epochs_run)
        return out

    def _apply_gradient(self) -> None:
        if self.intervention is not None:
            regulariser = self.intervention.regulariser(self.networks)
            if regulariser is not None:
                grads = torch.autograd.grad(regulariser, self._reg_params, allow_unused=True)
                for view, g in zip(self._reg_grads, grads):
                    if g is not None:
                        view += g.numpy()
        self.optimizer.clip_grad_norm_(self.settings.max_grad_norm)
        self.optimizer.step()
        if self.intervention is not None:
            self.intervention.after_step(self.networks)

    def minibatch_gradient(self, mb: Mapping[str, np.ndarray], want_kl: bool = True) -> dict[str, float]:
        """Write the gradient of the PPO loss on minibatch ``mb`` into ``optimizer.grad``; return the loss terms
        (and the KL estimates when ``want_kl``)."""
        s = self.settings
        obs, actions, old_logprob = mb["obs"], mb["actions"], mb["logprobs"]
        B = len(obs)
        lo, hi = np.float32(1.0 - s.clip_coef), np.float32(1.0 + s.clip_coef)
        adv = mb["advantages"]
        if s.norm_adv:  # (A − mean) / (unbiased std + 1e-8), as ocp.ppo.normalize_advantages
            centred = adv - np.float32(adv.sum() / B)
            adv = centred / np.float32(math.sqrt(float(np.dot(centred, centred)) / (B - 1)) + 1e-8)

        # ----- actor: log π, ratio, clipped surrogate -----
        actor_inputs: list[np.ndarray] = []
        mean = self.actor.forward(obs, actor_inputs)
        inv_std = np.exp(-self.log_std)
        z = (actions - mean) * inv_std
        z_sq = z * z
        logprob = (np.float32(-0.5) * z_sq - self.log_std).sum(-1) - np.float32(LOG_SQRT_2PI * mean.shape[-1])
        logratio = logprob - old_logprob
        ratio = np.exp(logratio)
        unclipped_term = -adv * ratio
        clipped_term = -adv * np.minimum(np.maximum(ratio, lo), hi)
        policy_loss = float(np.maximum(unclipped_term, clipped_term).sum()) / B
        # torch.maximum's gradient weights sum to 1 at a tie, and inside the clip range the two terms tie and clamp
        # passes the gradient: the weight is 1 there; outside it is 1 where the unclipped term is the larger
        # (a tie outside the range needs A = 0, where the gradient is 0 either way).
        passes = ((ratio >= lo) & (ratio <= hi)) | (unclipped_term > clipped_term)
        grad_logprob = (adv * ratio) * (passes * np.float32(-1.0 / B))
        grad_mean = (grad_logprob[:, None] * inv_std) * z
        self.log_std_grad[...] = grad_logprob @ (z_sq - np.float32(1.0)) - s.ent_coef
        self.actor.backward(grad_mean, actor_inputs, *self.actor_grads)
        entropy = float((0.5 + LOG_SQRT_2PI + self.log_std).sum())

        # ----- critic: (clipped) value loss -----
        critic_inputs: list[np.ndarray] = []
        value = self.critic.forward(obs, critic_inputs)[:, 0]
        returns = mb["returns"]
        error = value - returns
        sq = error * error
        if s.clip_vloss:
            old_value = mb["values"]
            delta = value - old_value
            clipped_error = (old_value + np.minimum(np.maximum(delta, -s.clip_coef), s.clip_coef)) - returns
            sq_clipped = clipped_error * clipped_error
            value_loss = 0.5 * float(np.maximum(sq, sq_clipped).sum()) / B
            # torch.maximum's backward: all to the larger square, half each at a tie; clamp passes inside ±ε.
            w_sq = (sq > sq_clipped) + np.float32(0.5) * (sq == sq_clipped)
            w_clipped = (np.float32(1.0) - w_sq) * ((delta >= -s.clip_coef) & (delta <= s.clip_coef))
            grad_value = (w_sq * error + w_clipped * clipped_error) * np.float32(s.vf_coef / B)
        else:
            value_loss = 0.5 * float(sq.sum()) / B
            grad_value = error * np.float32(s.vf_coef / B)
        self.critic.backward(grad_value[:, None], critic_inputs, *self.critic_grads)

        out = {
            "policy_loss": policy_loss,
            "value_loss": value_loss,
            "entropy": entropy,
            "clipfrac": int(np.count_nonzero(np.abs(ratio - np.float32(1.0)) > s.clip_coef)) / B,
        }
        if want_kl:
            out["old_approx_kl"] = -float(logratio.sum()) / B
            out["approx_kl"] = float(((ratio - np.float32(1.0)) - logratio).sum()) / B
        return out
