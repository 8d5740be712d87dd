"""Collecting a PPO rollout, and GAE over it.

The rollout is the loop's hot path: one actor forward at batch ``num_envs`` per vector step (numpy,
``ocp.numpy_nets``), action noise drawn once per rollout, every number written into preallocated float32 arrays.
Values are computed after the rollout in one batched critic pass (the critic does not change during a rollout), and so
are the values of the final observations that bootstrap time-limit truncations.

Observation statistics see every observation an environment returns, as gymnasium's ``NormalizeObservation`` wrapper
does inside each sub-env: at an episode end first the final observation, then the reset observation. The final
observation is normalised between the two updates, as the wrapper would have returned it. The statistics are pooled
over sub-envs (one ``RunningMeanStd`` per agent), where a per-sub-env wrapper keeps one set per sub-env; with one env,
the default, the two are the same.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ocp.agent import LOG_SQRT_2PI, Agent
from ocp.envs import final_observations
from ocp.numpy_nets import NumpyMLP


@dataclass
class Rollout:
    """One rollout, (T, N, ...) float32 arrays; ``obs`` are the normalised observations the policy saw."""

    obs: np.ndarray
    actions: np.ndarray
    logprobs: np.ndarray
    values: np.ndarray
    rewards: np.ndarray  # normalised
    next_values: np.ndarray  # V of the state each step led to (of the final observation at an episode end)
    terminated: np.ndarray  # terminations (or every episode end when bootstrap_truncation is off)
    dones: np.ndarray

    @classmethod
    def empty(cls, T: int, N: int, obs_dim: int, act_dim: int) -> "Rollout":
        z = lambda *s: np.zeros(s, dtype=np.float32)  # noqa: E731
        return cls(z(T, N, obs_dim), z(T, N, act_dim), z(T, N), z(T, N), z(T, N), z(T, N), z(T, N), z(T, N))

    def flat(self, advantages: np.ndarray, returns: np.ndarray) -> dict[str, np.ndarray]:
        """The batch of an update: every array with the (T, N) axes merged."""
        T, N, obs_dim = self.obs.shape
        return {
            "obs": self.obs.reshape(T * N, obs_dim),
            "actions": self.actions.reshape(T * N, -1),
            "logprobs": self.logprobs.reshape(-1),
            "values": self.values.reshape(-1),
            "advantages": advantages.reshape(-1),
            "returns": returns.reshape(-1),
        }


@dataclass
class LoopState:
    """Everything besides agent, optimiser, RNGs and env internals that the next step depends on (checkpointed)."""

    next_obs: np.ndarray  # normalised observation (float32, (N, obs_dim)) the next step acts on
    discounted_return: np.ndarray  # per env, for reward normalisation
    episode_return: np.ndarray  # per env, raw reward sum of the running episode
    episode_length: np.ndarray
    recent_returns: deque = field(default_factory=deque)
    update: int = 0
    global_step: int = 0

    def state_dict(self) -> dict[str, Any]:
        return {
            "update": self.update,
            "global_step": self.global_step,
            "next_obs": self.next_obs,
            "discounted_return": self.discounted_return.copy(),
            "episode_return": self.episode_return.copy(),
            "episode_length": self.episode_length.copy(),
            "recent_returns": list(self.recent_returns),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.update, self.global_step = int(state["update"]), int(state["global_step"])
        self.next_obs = state["next_obs"]
        self.discounted_return = np.array(state["discounted_return"])
        self.episode_return = np.array(state["episode_return"])
        self.episode_length = np.array(state["episode_length"])
        self.recent_returns.clear()
        self.recent_returns.extend(state["recent_returns"])


@dataclass(frozen=True)
class RolloutSettings:
    """The hyper-parameters of a rollout (the matching ``PPOConfig`` fields)."""

    num_steps: int
    gamma: float
    bootstrap_truncation: bool
    reward_norm_reset: str  # "termination" or "episode_end"

    @classmethod
    def from_config(cls, config: Any) -> RolloutSettings:
        """The settings a run config (``PPOConfig``) holds under the same names."""
        return cls(**{f.name: getattr(config, f.name) for f in dataclasses.fields(cls)})


class RolloutCollector:
    """Fills a :class:`Rollout` from ``envs`` with ``agent``'s policy; one instance for the whole run."""

    def __init__(self, agent: Agent, envs: Any, settings: RolloutSettings):
        self.agent, self.envs, self.settings = agent, envs, settings
        self.actor, self.critic = NumpyMLP(agent.actor), NumpyMLP(agent.critic)
        self.low = envs.single_action_space.low.astype(np.float32)
        self.high = envs.single_action_space.high.astype(np.float32)

    def collect(self, state: LoopState, buf: Rollout, generator: torch.Generator) -> list[dict[str, Any]]:
        """``num_steps`` vector steps into ``buf``; returns the episodes that finished (raw returns and lengths)."""
        agent, envs, cfg = self.agent, self.envs, self.settings
        self.actor.check_aliasing()
        self.critic.check_aliasing()
        T, N, act_dim = buf.actions.shape
        log_std = agent.actor_logstd.detach().numpy()[0]
        noise = torch.randn((T, N, act_dim), generator=generator).numpy()
        # log N(mean + σ·noise; mean, σ) does not depend on the mean: the whole rollout's log-probs at once.
        buf.logprobs[...] = (-0.5 * (noise * noise) - log_std).sum(-1) - np.float32(LOG_SQRT_2PI * act_dim)
        noise *= np.exp(log_std)
        keep_return = cfg.reward_norm_reset == "termination"
        normalize_obs, normalize_reward = agent.obs_normalizer(update=True), agent.reward_normalizer(update=True)
        finals: list[tuple[int, int, np.ndarray]] = []  # (t, env, normalised final observation) to bootstrap from
        episodes = []
        obs = state.next_obs
        for t in range(T):
            buf.obs[t] = obs
            action = self.actor.forward(obs)
            action += noise[t]
            buf.actions[t] = action
            raw_obs, reward, terminated, truncated, infos = envs.step(
                np.minimum(np.maximum(action, self.low), self.high)
            )
            state.global_step += N
            state.episode_return += reward
            state.episode_length += 1
            if keep_return:
                state.discounted_return *= cfg.gamma * ~terminated
            else:
                state.discounted_return *= cfg.gamma
            state.discounted_return += reward
            buf.rewards[t] = normalize_reward(reward, state.discounted_return)
            done = terminated | truncated
            if done.any():
                ended = np.flatnonzero(done)
                final_obs = normalize_obs(final_observations(infos, done, raw_obs)[ended])
                if cfg.bootstrap_truncation:
                    for k, i in enumerate(ended):
                        if truncated[i] and not terminated[i]:
                            finals.append((t, int(i), final_obs[k]))
                for i in ended:
                    episodes.append(
                        {
                            "global_step": state.global_step,
                            "env": int(i),
                            "episodic_return": float(state.episode_return[i]),
                            "episodic_length": int(state.episode_length[i]),
                        }
                    )
                state.episode_return[done] = 0.0
                state.episode_length[done] = 0
                if not keep_return:
                    state.discounted_return[done] = 0.0
            # With SAME_STEP autoreset raw_obs holds the reset observation of envs whose episode ended.
            obs = normalize_obs(raw_obs)
            buf.dones[t] = done
            buf.terminated[t] = terminated if cfg.bootstrap_truncation else done
        state.next_obs = obs

        obs_dim = buf.obs.shape[-1]
        buf.values[...] = self.critic.forward(buf.obs.reshape(T * N, obs_dim)).reshape(T, N)
        buf.next_values[:-1] = buf.values[1:]
        buf.next_values[-1] = self.critic.forward(obs)[:, 0]
        # At an episode end the successor is the final observation, not the reset one that follows in the buffer;
        # a terminal state's value is never used (compute_gae zeroes it), a truncated one's is V(final observation).
        buf.next_values[buf.dones.astype(bool)] = 0.0
        if finals:
            values = self.critic.forward(np.stack([f[2] for f in finals]))[:, 0]
            for (t, i, _), v in zip(finals, values):
                buf.next_values[t, i] = v
        return episodes


def compute_gae(
    rewards: np.ndarray,
    values: np.ndarray,
    next_values: np.ndarray,
    terminated: np.ndarray,
    dones: np.ndarray,
    gamma: float,
    gae_lambda: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Generalised advantage estimation over a (T, N) rollout → (advantages, returns), float32.

    ``next_values[t]`` is V of the state that step t led to: V(s_{t+1}) inside an episode, V(final observation) at a
    truncation. ``terminated[t]`` zeroes that bootstrap (a true terminal state has value 0); ``dones[t]`` (terminated or
    truncated) stops the λ-recursion at the episode boundary. The recursion runs in float64.
    """
    r, v, nv = (np.asarray(x, dtype=np.float64) for x in (rewards, values, next_values))
    deltas = r + gamma * nv * (1.0 - np.asarray(terminated, dtype=np.float64)) - v
    decay = gamma * gae_lambda * (1.0 - np.asarray(dones, dtype=np.float64))
    advantages = np.empty_like(deltas)
    # One Python-float recursion per env: ~10x cheaper than T numpy operations on length-N rows.
    for i in range(deltas.shape[1]):
        last, column = 0.0, []
        for d, k in zip(deltas[::-1, i].tolist(), decay[::-1, i].tolist()):
            last = d + k * last
            column.append(last)
        advantages[::-1, i] = column
    advantages = advantages.astype(np.float32)
    return advantages, advantages + np.asarray(values, dtype=np.float32)
