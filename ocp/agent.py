"""PPO agent: separate actor and critic MLPs, a state-independent log-std, and the observation/reward normalisers.

The normalisers are torch buffers of the agent, so they are saved with it (``state_dict``) and used when the agent is
evaluated (:meth:`Agent.act`). Every activation is an ``nn.Module`` inside an ``nn.Sequential`` so that
``ocp.probe.PlasticityProbe`` finds the post-activation outputs of each hidden layer; the paper's "No-Act" network
uses ``nn.Identity`` modules in the same positions.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Literal, Mapping

import numpy as np
import torch
from torch import nn

#: The hidden-layer activations, by name (the one list: configs and CLIs take their choices from it).
ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "identity": nn.Identity, "tanh": nn.Tanh}
Activation = Literal[tuple(ACTIVATIONS)]  # type: ignore[valid-type]
#: The run-config fields an :class:`Agent` is built from, besides the environment's dimensions.
AGENT_FIELDS = (
    "hidden_sizes",
    "activation",
    "init_log_std",
    "norm_obs",
    "norm_reward",
    "obs_clip",
    "reward_clip",
    "norm_epsilon",
)
#: log √(2π), the constant of a Gaussian log-density per action dimension.
LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def running_update(mean: np.ndarray, var: np.ndarray, count: np.ndarray, x: np.ndarray) -> None:
    """Fold the float64 batch ``x`` (B, *shape) into the statistics, in place (Chan et al.'s parallel update, as
    gymnasium's ``RunningMeanStd``: population variance of the batch)."""
    batch_count = x.shape[0]
    old, total = float(count), float(count) + batch_count
    if batch_count == 1 and mean.ndim == 0:
        # One number (a return, one env): the same operations in the same order on Python floats, which are IEEE
        # doubles as numpy's float64 is, so the result is bit for bit the array path's, several times cheaper.
        delta = float(x[0]) - float(mean)
        m2 = float(var) * old + delta * delta * (old * batch_count / total)
        mean.fill(float(mean) + delta * (batch_count / total))
        var.fill(m2 / total)
        count.fill(total)
        return
    # One row (one env per step, the common case): its mean is the row and its variance 0, so the reductions are
    # skipped; the values are bit for bit those of the general formula.
    delta = (x[0] if batch_count == 1 else x.mean(axis=0)) - mean
    m2 = var * old
    m2 += np.square(delta) * (old * batch_count / total)
    if batch_count > 1:
        m2 += x.var(axis=0) * batch_count
    mean += delta * (batch_count / total)
    np.divide(m2, total, out=var)
    count.fill(total)


def running_normalize(
    mean: np.ndarray, var: np.ndarray, x: np.ndarray, epsilon: float, clip: float, center: bool = True
) -> np.ndarray:
    """((x − mean) if center else x) / √(var + ε), clipped to ±clip, as a float32 array; ``x`` float64."""
    if x.size == 1 and mean.ndim == 0:  # one number: Python floats, bit for bit the array path's result
        z = ((float(x.flat[0]) - float(mean)) if center else float(x.flat[0])) / math.sqrt(float(var) + epsilon)
        return np.full(x.shape, min(max(z, -clip), clip), dtype=np.float32)
    z = (x - mean) if center else x.copy()
    z /= np.sqrt(var + epsilon)
    np.minimum(z, clip, out=z)
    np.maximum(z, -clip, out=z)
    return z.astype(np.float32)


class RunningMeanStd(nn.Module):
    """Running mean and variance over a stream of batches (:func:`running_update`).

    Statistics are float64 CPU buffers (the count reaches millions; float32 would lose the small updates). The
    arithmetic runs in numpy on views of the buffers: one update per environment step on a handful of numbers is
    several times cheaper in numpy than as a dozen tiny torch ops.
    """

    def __init__(self, shape: tuple[int, ...] = (), initial_count: float = 1e-4):
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("var", torch.ones(shape, dtype=torch.float64))
        # A tiny prior count (gymnasium's 1e-4) keeps the first update well defined.
        self.register_buffer("count", torch.tensor(initial_count, dtype=torch.float64))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """numpy views of (mean, var, count): edits go to the buffers. ``load_state_dict`` copies into the buffers,
        so the views stay valid; ``.to()`` or assigning a buffer replaces it, so take them anew after that."""
        return self.mean.numpy(), self.var.numpy(), self.count.numpy()

    def update(self, x: np.ndarray | torch.Tensor) -> None:
        """Fold a batch ``x`` of shape (B, *shape) into the statistics."""
        running_update(*self.arrays(), _as_float64(x))

    def normalize(self, x: np.ndarray | torch.Tensor, epsilon: float, clip: float, center: bool = True) -> np.ndarray:
        """((x − mean) if center else x) / √(var + ε), clipped to ±clip, as a float32 array."""
        mean, var, _ = self.arrays()
        return running_normalize(mean, var, _as_float64(x), epsilon, clip, center)


def _as_float64(x: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def mlp(
    in_dim: int, hidden_sizes: tuple[int, ...], out_dim: int, activation: Activation, out_gain: float
) -> nn.Sequential:
    """Linear → activation blocks then a linear output layer; orthogonal init (gain √2 hidden, ``out_gain`` output),
    zero biases — CleanRL's ``layer_init``."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    layers: list[nn.Module] = []
    width = in_dim
    for h in hidden_sizes:
        layers += [_linear(width, h, math.sqrt(2.0)), ACTIVATIONS[activation]()]
        width = h
    layers.append(_linear(width, out_dim, out_gain))
    return nn.Sequential(*layers)


def _linear(i: int, o: int, gain: float) -> nn.Linear:
    layer = nn.Linear(i, o)
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    layer.init_gain = gain  # how fresh weights of this layer are drawn (ocp.interventions.layer_initialiser)
    return layer


def gaussian_log_prob(mean: torch.Tensor, log_std: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """log N(actions; mean, exp(log_std)²), summed over action dimensions → (B,)."""
    z = (actions - mean) * torch.exp(-log_std)
    return (-0.5 * z.square() - log_std - LOG_SQRT_2PI).sum(-1)


def gaussian_entropy(log_std: torch.Tensor) -> torch.Tensor:
    """Entropy of a diagonal Gaussian, summed over action dimensions → (B,) or ()."""
    return (0.5 + LOG_SQRT_2PI + log_std).sum(-1)


class Agent(nn.Module):
    """Gaussian policy ``N(actor(o), exp(actor_logstd))`` and value ``critic(o)`` on normalised observations."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden_sizes: tuple[int, ...] = (64, 64),
        activation: Activation = "tanh",
        init_log_std: float = 0.0,
        norm_obs: bool = True,
        norm_reward: bool = True,
        obs_clip: float = 10.0,
        reward_clip: float = 10.0,
        norm_epsilon: float = 1e-8,
    ):
        super().__init__()
        self.actor = mlp(obs_dim, tuple(hidden_sizes), act_dim, activation, out_gain=0.01)
        self.critic = mlp(obs_dim, tuple(hidden_sizes), 1, activation, out_gain=1.0)
        self.actor_logstd = nn.Parameter(torch.full((1, act_dim), float(init_log_std)))
        self.obs_rms = RunningMeanStd((obs_dim,))
        self.ret_rms = RunningMeanStd(())
        self.norm_obs, self.norm_reward = norm_obs, norm_reward
        self.obs_clip, self.reward_clip, self.norm_epsilon = obs_clip, reward_clip, norm_epsilon

    @classmethod
    def from_config(cls, config: Mapping[str, Any], obs_dim: int, act_dim: int) -> Agent:
        """The agent a run config describes (a ``PPOConfig`` dict, or any mapping holding :data:`AGENT_FIELDS`;
        a field it lacks keeps this class's default)."""
        activation = config.get("activation", "tanh")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        return cls(obs_dim, act_dim, **{k: config[k] for k in AGENT_FIELDS if k in config})

    @classmethod
    def from_checkpoint(cls, payload: Any, source: object) -> tuple[Agent, dict[str, Any]]:
        """The agent of a checkpoint payload as ``ocp.ppo`` writes it (``{"config": run config dict, "agent":
        state_dict, ...}``), in eval mode, and the run config. The one reader of that format: widths come from the
        weights, everything else from the config. ``source`` names the payload in errors."""
        if not isinstance(payload, dict) or "agent" not in payload or "config" not in payload:
            keys = sorted(payload) if isinstance(payload, dict) else type(payload).__name__
            raise ValueError(f"{source}: not a PPO checkpoint (need 'agent' and 'config' entries, found {keys})")
        state, config = payload["agent"], payload["config"]
        if not isinstance(config, dict) or not isinstance(state, dict):
            raise ValueError(f"{source}: the checkpoint's 'config' and 'agent' entries must be dicts")
        # Earlier versions named the policy network ``actor_mean``.
        state = {
            ("actor." + k.removeprefix("actor_mean.") if k.startswith("actor_mean.") else k): v
            for k, v in state.items()
        }
        if config.get("activation") not in ACTIVATIONS:
            raise ValueError(
                f"{source}: the checkpoint's config has activation {config.get('activation')!r}, expected one of "
                f"{sorted(ACTIVATIONS)}"
            )
        try:
            names = [k for k in state if k.startswith("critic.") and k.endswith(".weight")]
            critic_weights = [state[k] for k in sorted(names, key=lambda k: int(k.split(".")[1]))]
            obs_dim, act_dim = int(critic_weights[0].shape[1]), int(state["actor_logstd"].shape[-1])
        except (KeyError, IndexError, ValueError) as err:
            raise ValueError(f"{source}: the agent state lacks critic or actor weights ({err!r})") from err
        hidden = tuple(int(w.shape[0]) for w in critic_weights[:-1])
        agent = cls.from_config({**config, "hidden_sizes": hidden}, obs_dim, act_dim)
        try:
            agent.load_state_dict(state)
        except RuntimeError as err:
            raise ValueError(
                f"{source}: the agent state does not fit a {config['activation']} agent with hidden sizes {hidden}: "
                f"{err}"
            ) from err
        return agent.eval(), config

    def normalize_obs(self, obs: np.ndarray | torch.Tensor, update: bool) -> np.ndarray:
        """(obs − mean)/√(var + ε) clipped to ±obs_clip, a float32 array; ``update`` first folds ``obs`` into the
        statistics (the gymnasium ``NormalizeObservation`` order)."""
        return self.obs_normalizer(update)(obs)

    def normalize_reward(self, reward: np.ndarray, discounted_return: np.ndarray, update: bool) -> np.ndarray:
        """reward/√(var(G) + ε) clipped to ±reward_clip, a float32 array, where G is the running discounted return
        per env (held by the caller); ``update`` first folds ``discounted_return`` into the statistics. No mean is
        subtracted (gymnasium's ``NormalizeReward``)."""
        return self.reward_normalizer(update)(reward, discounted_return)

    def obs_normalizer(self, update: bool) -> Callable[[np.ndarray], np.ndarray]:
        """:meth:`normalize_obs` with ``update`` fixed, bound to the current statistics buffers: a rollout takes one
        per rollout and calls it at every step without the module look-ups."""
        if not self.norm_obs:
            return lambda obs: _as_float64(obs).astype(np.float32)
        mean, var, count = self.obs_rms.arrays()
        epsilon, clip = self.norm_epsilon, self.obs_clip

        def normalize(obs: np.ndarray | torch.Tensor) -> np.ndarray:
            obs = _as_float64(obs)
            if update:
                running_update(mean, var, count, obs)
            return running_normalize(mean, var, obs, epsilon, clip)

        return normalize

    def reward_normalizer(self, update: bool) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        """:meth:`normalize_reward` with ``update`` fixed, bound to the current statistics buffers."""
        if not self.norm_reward:
            return lambda reward, discounted_return: _as_float64(reward).astype(np.float32)
        mean, var, count = self.ret_rms.arrays()
        epsilon, clip = self.norm_epsilon, self.reward_clip

        def normalize(reward: np.ndarray, discounted_return: np.ndarray) -> np.ndarray:
            if update:
                running_update(mean, var, count, _as_float64(discounted_return))
            return running_normalize(mean, var, _as_float64(reward), epsilon, clip, center=False)

        return normalize

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(obs).squeeze(-1)

    def evaluate_actions(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(log π(a|o), entropy, V(o)) for a batch of normalised observations and actions."""
        mean = self.actor(obs)
        log_std = self.actor_logstd.expand_as(mean)
        return gaussian_log_prob(mean, log_std, actions), gaussian_entropy(log_std), self.value(obs)

    @torch.no_grad()
    def sample(self, obs: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        """(action, log π(action|o), V(o)) for normalised observations, drawing the noise from ``generator``."""
        mean = self.actor(obs)
        log_std = self.actor_logstd.expand_as(mean)
        noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
        action = mean + torch.exp(log_std) * noise
        # gaussian_log_prob(mean, log_std, action) with (action − mean)/std = noise: fewer ops per env step.
        logprob = (-0.5 * noise.square() - log_std).sum(-1) - LOG_SQRT_2PI * mean.shape[-1]
        return action, logprob, self.value(obs)

    @torch.no_grad()
    def act(
        self, raw_obs: np.ndarray | torch.Tensor, deterministic: bool = True, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Action for raw environment observations, normalised with the stored (frozen) statistics — for evaluation."""
        obs = torch.from_numpy(self.normalize_obs(raw_obs, update=False))
        if deterministic:
            return self.actor(obs)
        if generator is None:
            raise ValueError("a stochastic action needs a torch.Generator for its noise")
        return self.sample(obs, generator)[0]
