"""Regression tasks for the transfer experiment (paper Section 3.2 / Appendix A).

* :func:`make_eq1_data` — the paper's Eq. 1 (= Eq. 15): a fixed nonlinear function of 17 inputs plus Gaussian noise.
  The paper does not say how X is distributed; the default here is i.i.d. standard normal (``x_distribution="normal"``,
  ``x_scale=1``), with a uniform option on [−x_scale, x_scale]. With ``permutation`` each term reads another input
  (the orthogonal-target control, default :data:`EQ1_PERMUTED_INDICES`).
* :func:`eq1_linear_floor` — var(y) and the test MSE of the best affine fit of Eq. 1, the floor of an
  identity-activation network, per input distribution.
* :func:`collect_return_data` — the similar-task control: states visited by a PPO policy on a MuJoCo task, labelled with
  the discounted return of a re-weighted reward ``w_run · reward_run + w_ctrl · reward_ctrl`` (HalfCheetah's two reward
  terms). With both weights 1 this is exactly the value the critic was trained to predict; other weights give a task
  close to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal, Optional, Sequence

import numpy as np
import torch
from scipy import integrate

from ocp.agent import Agent
from ocp.envs import make_env

EQ1_INPUT_DIM = 17
XDistribution = Literal["normal", "uniform"]


#: Eq. 1's terms that read one input: (input index, coefficient, function), in the paper's order. Every input enters
#: exactly one term; inputs 4, 5 and 13, 14 enter the two product terms of :data:`EQ1_PRODUCT_TERMS`.
EQ1_SINGLE_TERMS: tuple[tuple[int, float, Callable[[np.ndarray], np.ndarray]], ...] = (
    (0, 2.5, lambda v: v),
    (1, -1.2, lambda v: v**2),
    (2, 0.8, np.sin),
    (3, 1.5, np.cos),
    (6, -0.3, lambda v: v**3),
    (7, 1.0, lambda v: np.exp(-0.1 * v**2)),
    (8, 1.1, lambda v: v),
    (9, -0.5, lambda v: v**2),
    (10, 0.9, np.tanh),
    (11, 0.2, lambda v: v**2),
    (12, -0.6, lambda v: np.sqrt(np.abs(v))),
    (15, -0.4, lambda v: v),
    (16, 0.3, lambda v: v),
)
#: Eq. 1's product terms: (first input, second input, coefficient).
EQ1_PRODUCT_TERMS: tuple[tuple[int, int, float], ...] = ((4, 5, 0.7), (13, 14, 0.5))

#: The orthogonal-target control's default: term k of Eq. 1 reads input ``EQ1_PERMUTED_INDICES[k]``. Four swaps (0↔11,
#: 1↔12, 7↔8, 10↔13) move the inputs that sit where HalfCheetah-v4 puts the torso height (0), pitch (1), forward
#: velocity (8) and pitch rate (10) — what a running critic's value depends on most — into Eq. 1's small even terms
#: (0.2X², −0.6√|X|, e^{−0.1X²}) and a product term, none of which is correlated with its input; Eq. 1's large terms
#: (2.5X, −1.2X², 1.1X, 0.9 tanh X) then read joint velocities and a joint angle.
EQ1_PERMUTED_INDICES: tuple[int, ...] = (11, 12, 2, 3, 4, 5, 6, 8, 7, 9, 13, 0, 1, 10, 14, 15, 16)


def check_permutation(indices: Sequence[int]) -> tuple[int, ...]:
    """``indices`` as a tuple if it is a permutation of 0 … 16; ``ValueError`` naming the problem otherwise."""
    out = tuple(int(i) for i in indices)
    if sorted(out) != list(range(EQ1_INPUT_DIM)):
        raise ValueError(f"an Eq. 1 input permutation must hold each of 0 … {EQ1_INPUT_DIM - 1} once, got {out}")
    return out


def eq1_noise_free(x: np.ndarray, permutation: Optional[Sequence[int]] = None) -> np.ndarray:
    """The deterministic part of Eq. 1 for rows of ``x`` (shape (N, 17)) → (N,), in float64. With ``permutation``,
    term k reads input ``permutation[k]`` instead of input k (the orthogonal-target control)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != EQ1_INPUT_DIM:
        raise ValueError(f"Eq. 1 needs inputs of shape (N, {EQ1_INPUT_DIM}), got {x.shape}")
    X = x.T if permutation is None else x.T[list(check_permutation(permutation))]
    products = {a: (b, c) for a, b, c in EQ1_PRODUCT_TERMS}
    singles = {i: (c, f) for i, c, f in EQ1_SINGLE_TERMS}
    total = None
    for i in range(EQ1_INPUT_DIM):  # the paper's order of terms, so the sum rounds the same way as the formula
        if i in singles:
            term = singles[i][0] * singles[i][1](X[i])
        elif i in products:
            term = products[i][1] * X[i] * X[products[i][0]]
        else:
            continue
        total = term if total is None else total + term
    return total


def sample_eq1_inputs(
    n: int, rng: np.random.Generator, distribution: XDistribution = "normal", scale: float = 1.0
) -> np.ndarray:
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
    n_train: int,
    n_test: int,
    seed: int,
    noise_std: float = 0.1,
    distribution: XDistribution = "normal",
    scale: float = 1.0,
    permutation: Optional[Sequence[int]] = None,
) -> RegressionData:
    """Independent train and test sets of Eq. 1 from one seed (train drawn first, then test); ``permutation`` as in
    :func:`eq1_noise_free` (the same inputs and noise, another target)."""
    if noise_std < 0:
        raise ValueError(f"noise_std must be >= 0, got {noise_std}")
    rng = np.random.default_rng(seed)
    parts = []
    for n in (n_train, n_test):
        x = sample_eq1_inputs(n, rng, distribution, scale)
        y = eq1_noise_free(x, permutation) + noise_std * rng.standard_normal(n)
        parts += [torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32)]
    return RegressionData(*parts)


def input_expectation(g: Callable[[np.ndarray], np.ndarray], distribution: XDistribution, scale: float) -> float:
    """E[g(X)] for one Eq. 1 input X ~ N(0, scale²) or U[−scale, scale], by adaptive quadrature (split at 0, where
    √|x| has its kink)."""
    if not scale > 0:
        raise ValueError(f"x_scale must be > 0, got {scale}")
    if distribution == "normal":
        density, low, high = (
            (lambda v: math.exp(-0.5 * (v / scale) ** 2) / (scale * math.sqrt(2 * math.pi))),
            -math.inf,
            math.inf,
        )
    elif distribution == "uniform":
        density, low, high = (lambda v: 0.5 / scale), -scale, scale
    else:
        raise ValueError(f"x_distribution must be 'normal' or 'uniform', got {distribution!r}")

    def weighted(v: float) -> float:
        return float(g(np.float64(v))) * density(v)

    return sum(
        integrate.quad(weighted, a, b, epsabs=1e-13, epsrel=1e-12, limit=200)[0] for a, b in ((low, 0.0), (0.0, high))
    )


def eq1_linear_floor(
    distribution: XDistribution = "normal", scale: float = 1.0, noise_std: float = 0.1
) -> tuple[float, float]:
    """(var(y), the test MSE of the best affine predictor of y) for Eq. 1 with i.i.d. inputs and noise σ: what an
    identity-activation (No-Act) network, an affine map, can reach at best with unlimited data.

    Every input enters one term and the inputs are independent, so the least-squares fit decouples: MSE = var(y) −
    Σⱼ cov(Xⱼ, y)² / var(Xⱼ), where cov(Xⱼ, y) is the covariance of Xⱼ with its own term. The same under any input
    permutation, and under an affine transform of each input (an observation normaliser)."""
    if noise_std < 0:
        raise ValueError(f"noise_std must be >= 0, got {noise_std}")
    mean = input_expectation(lambda v: v, distribution, scale)
    second = input_expectation(lambda v: v**2, distribution, scale)
    var_x = second - mean**2
    variance, explained = noise_std**2, 0.0
    for _, c, f in EQ1_SINGLE_TERMS:
        m_f = input_expectation(f, distribution, scale)
        variance += c**2 * (input_expectation(lambda v, f=f: f(v) ** 2, distribution, scale) - m_f**2)
        explained += (c * (input_expectation(lambda v, f=f: v * f(v), distribution, scale) - mean * m_f)) ** 2 / var_x
    for _, _, c in EQ1_PRODUCT_TERMS:
        variance += c**2 * (second**2 - mean**4)
        explained += 2 * (c * mean * var_x) ** 2 / var_x  # cov(Xa, c·Xa·Xb) = c·E[Xb]·var(Xa), and the same for Xb
    return variance, variance - explained


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
    """Environment of the similar task (HalfCheetah's reward terms are needed)."""
    reward_run_weight: float = 1.0
    """Weight of HalfCheetah's forward-velocity reward term in the similar task (1 as in training)."""
    reward_ctrl_weight: float = 2.0
    """Weight of the (negative) control-cost term; 1 is the training reward, so the default doubles the cost."""
    gamma: float = 0.99
    """Discount of the similar task's returns (PPO's)."""
    horizon: int = 500
    """Rewards summed per target (γ^500 ≈ 0.007, so the truncation is small); episodes run long enough for it."""
    states_per_episode: int = 500
    """States kept per episode; train and test use ⌈n / this⌉ separate episodes each."""
    state_stride: int = 2
    """Keep every k-th state of an episode (consecutive states are nearly identical)."""
    deterministic: bool = False
    """Roll out the policy's mean action instead of sampling (the critic learned the stochastic policy's value)."""

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
                    raise ValueError(
                        f"{spec.env_id} terminated an episode; the return task needs non-terminating tasks"
                    )
            returns = truncated_discounted_returns(np.array(rewards), spec.gamma, spec.horizon)
            observations.append(np.array(states[: span : spec.state_stride]))
            targets.append(returns[: span : spec.state_stride])
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
