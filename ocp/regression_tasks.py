"""Regression tasks for the transfer experiment (paper Section 3.2 / Appendix A).

* :func:`make_eq1_data` — the paper's Eq. 1 (= Eq. 15): a fixed nonlinear function of 17 inputs plus Gaussian noise.
  The paper does not say how X is distributed; the default here is i.i.d. standard normal (``x_distribution="normal"``,
  ``x_scale=1``), with a uniform option on [−x_scale, x_scale].
* :func:`collect_return_data` — the similar-task control: states visited by a PPO policy on a MuJoCo task, labelled with
  the discounted return of a re-weighted reward ``w_run · reward_run + w_ctrl · reward_ctrl`` (HalfCheetah's two reward
  terms). With both weights 1 this is exactly the value the critic was trained to predict; other weights give a task
  close to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from ocp.agent import Agent
from ocp.envs import make_env

EQ1_INPUT_DIM = 17
XDistribution = Literal["normal", "uniform"]


def eq1_noise_free(x: np.ndarray) -> np.ndarray:
    """The deterministic part of Eq. 1 for rows of ``x`` (shape (N, 17)) → (N,), in float64."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != EQ1_INPUT_DIM:
        raise ValueError(f"Eq. 1 needs inputs of shape (N, {EQ1_INPUT_DIM}), got {x.shape}")
    X = x.T
    return (
        2.5 * X[0]
        - 1.2 * X[1] ** 2
        + 0.8 * np.sin(X[2])
        + 1.5 * np.cos(X[3])
        + 0.7 * X[4] * X[5]
        - 0.3 * X[6] ** 3
        + np.exp(-0.1 * X[7] ** 2)
        + 1.1 * X[8]
        - 0.5 * X[9] ** 2
        + 0.9 * np.tanh(X[10])
        + 0.2 * X[11] ** 2
        - 0.6 * np.sqrt(np.abs(X[12]))
        + 0.5 * X[13] * X[14]
        - 0.4 * X[15]
        + 0.3 * X[16]
    )


def sample_eq1_inputs(n: int, rng: np.random.Generator, distribution: XDistribution = "normal", scale: float = 1.0) -> np.ndarray:
    """``n`` rows of X: i.i.d. N(0, scale²) (``normal``) or U[−scale, scale] (``uniform``) per coordinate."""
    if n < 1:
        raise ValueError(f"need at least one sample, got n={n}")
    if not scale > 0:
        raise ValueError(f"x_scale must be > 0, got {scale}")
    if distribution == "normal":
        return rng.normal(0.0, scale, size=(n, EQ1_INPUT_DIM))
    if distribution == "uniform":
        return rng.uniform(-scale, scale, size=(n, EQ1_INPUT_DIM))
    raise ValueError(f"x_distribution must be 'normal' or 'uniform', got {distribution!r}")


@dataclass(frozen=True)
class RegressionData:
    """Train and test inputs (float32, (N, d)) and targets (float32, (N,))."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    @property
    def input_dim(self) -> int:
        return int(self.x_train.shape[1])


def make_eq1_data(
    n_train: int, n_test: int, seed: int, noise_std: float = 0.1, distribution: XDistribution = "normal", scale: float = 1.0
) -> RegressionData:
    """Independent train and test sets of Eq. 1 from one seed (train drawn first, then test)."""
    if noise_std < 0:
        raise ValueError(f"noise_std must be >= 0, got {noise_std}")
    rng = np.random.default_rng(seed)
    parts = []
    for n in (n_train, n_test):
        x = sample_eq1_inputs(n, rng, distribution, scale)
        y = eq1_noise_free(x) + noise_std * rng.standard_normal(n)
        parts += [torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32)]
    return RegressionData(*parts)


def truncated_discounted_returns(rewards: np.ndarray, gamma: float, horizon: int) -> np.ndarray:
    """``G_t = Σ_{k<horizon, t+k<T} γ^k r_{t+k}`` for every t of one reward sequence of length T.

    Computed as the full return-to-go minus γ^horizon times the return-to-go ``horizon`` steps later.
    """
    r = np.asarray(rewards, dtype=np.float64)
    if r.ndim != 1:
        raise ValueError(f"rewards must be one sequence (1-D), got shape {r.shape}")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    full = np.zeros(len(r) + 1)
    for t in range(len(r) - 1, -1, -1):
        full[t] = r[t] + gamma * full[t + 1]
    later = np.zeros(len(r))
    tail = len(r) - horizon
    if tail > 0:
        later[:tail] = full[horizon : horizon + tail]
    return full[:-1] - gamma**horizon * later


@dataclass(frozen=True)
class ReturnTaskSpec:
    """How the similar-task data is collected (see :func:`collect_return_data`)."""

    env_id: str = "HalfCheetah-v4"
    reward_run_weight: float = 1.0
    reward_ctrl_weight: float = 2.0
    gamma: float = 0.99
    horizon: int = 500
    states_per_episode: int = 500
    state_stride: int = 2
    deterministic: bool = False

    def validate(self) -> None:
        if self.horizon < 1 or self.states_per_episode < 1 or self.state_stride < 1:
            raise ValueError(
                f"horizon, states_per_episode and state_stride must be >= 1, got {self.horizon}, "
                f"{self.states_per_episode}, {self.state_stride}"
            )
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {self.gamma}")


def _reward_terms(info: dict) -> tuple[float, float]:
    # HalfCheetah-v4 names the forward term reward_run, v5 reward_forward; reward_ctrl is already negative.
    run = info.get("reward_run", info.get("reward_forward"))
    if run is None or "reward_ctrl" not in info:
        raise ValueError(f"the environment's info lacks HalfCheetah's reward terms (has {sorted(info)})")
    return float(run), float(info["reward_ctrl"])


def rollout_returns(agent: Agent, spec: ReturnTaskSpec, episodes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw observations (M, obs_dim) and re-weighted truncated discounted returns (M,) of ``episodes`` episodes.

    Each episode runs ``(states_per_episode − 1)·state_stride + 1 + horizon`` steps, so every kept state (every
    ``state_stride``-th of the first ones) has a full ``horizon`` of future rewards; the policy acts on observations
    normalised with the agent's frozen statistics, actions clipped to the action space (as PPO training does).
    """
    spec.validate()
    if episodes < 1:
        raise ValueError(f"need at least one episode, got {episodes}")
    span = (spec.states_per_episode - 1) * spec.state_stride + 1
    length = span + spec.horizon
    env = make_env(spec.env_id, max_episode_steps=length)
    low, high = env.action_space.low, env.action_space.high
    generator = torch.Generator().manual_seed(seed)
    observations, targets = [], []
    try:
        for k in range(episodes):
            obs, _ = env.reset(seed=seed * 10_007 + k)
            states, rewards = [], []
            for _ in range(length):
                states.append(obs)
                action = agent.act(torch.as_tensor(obs)[None], spec.deterministic, generator)[0].numpy()
                obs, _, terminated, truncated, info = env.step(np.clip(action, low, high))
                run, ctrl = _reward_terms(info)
                rewards.append(spec.reward_run_weight * run + spec.reward_ctrl_weight * ctrl)
                if terminated:
                    raise ValueError(f"{spec.env_id} terminated an episode; the return task needs non-terminating tasks")
            returns = truncated_discounted_returns(np.array(rewards), spec.gamma, spec.horizon)
            observations.append(np.array(states[:span:spec.state_stride]))
            targets.append(returns[:span:spec.state_stride])
    finally:
        env.close()
    return np.concatenate(observations), np.concatenate(targets)


def collect_return_data(agent: Agent, spec: ReturnTaskSpec, n_train: int, n_test: int, seed: int) -> RegressionData:
    """Similar-task data: train and test states come from different episodes (consecutive states are correlated, so a
    random split would leak). Enough episodes are run for each split; the first ``n`` states are kept. Inputs are raw
    observations and targets raw returns: scaling is the caller's choice."""
    parts = []
    for split, n in enumerate((n_train, n_test)):
        episodes = math.ceil(n / spec.states_per_episode)
        obs, ret = rollout_returns(agent, spec, episodes, seed=2 * seed + split)
        parts += [torch.as_tensor(obs[:n], dtype=torch.float32), torch.as_tensor(ret[:n], dtype=torch.float32)]
    return RegressionData(*parts)
