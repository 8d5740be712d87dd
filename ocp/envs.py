"""Environments for PPO: gymnasium 1.x MuJoCo tasks in a vector env whose full state can be checkpointed.

Two gymnasium 1.x details matter for correct PPO:

* Autoreset. gymnasium 1.x vector envs default to ``AutoresetMode.NEXT_STEP``: the step *after* an episode ends
  ignores the action and returns the reset observation with reward 0 and ``terminated = truncated = False``. A loop
  written for gymnasium 0.29 stores that step as a real transition (final obs -> reset obs, reward 0), i.e. a
  reset-observation transition leaks into the rollout. We build vector envs with ``AutoresetMode.SAME_STEP``: the step
  that ends an episode returns the reset observation, the true final observation is in ``info["final_obs"]``, and every
  step of the rollout is a real environment transition.
* Truncation. The final observation is needed to bootstrap the value at a time-limit truncation; SAME_STEP gives it.

Only MuJoCo tasks with Box observation and action spaces are accepted, because their complete state (physics,
time-limit counter, the env's random generator) can be saved and restored exactly, which exact resume needs.
"""

from __future__ import annotations

from typing import Any, Callable, Literal, Optional

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium.envs.mujoco.mujoco_env import MujocoEnv
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv
from gymnasium.wrappers import OrderEnforcing, TimeLimit

# Physics + warm-start + controls + time: everything mj_step reads, so a restored env steps bit-identically.
_MJ_STATE = mujoco.mjtState.mjSTATE_INTEGRATION


class StatefulEnv(gym.Wrapper):
    """Outermost wrapper exposing the env's complete state as the attribute ``env_state`` (get and set).

    It is an attribute (a property) rather than a method so that ``VectorEnv.set_attr`` can give each sub-env its own
    value, for Sync and Async vector envs alike.
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        if not isinstance(env.unwrapped, MujocoEnv):
            raise ValueError(f"{env.spec.id if env.spec else env}: not a MuJoCo env; its state cannot be checkpointed")
        self._time_limit = _find_wrapper(env, TimeLimit)
        self._order = _find_wrapper(env, OrderEnforcing)
        # A task-switching wrapper (ocp.scenarios.TaskSwitchEnv) inside: its current task is part of the state.
        self._tasks = _find_wrapper_with(env, "task")

    @property
    def env_state(self) -> dict[str, Any]:
        base = self.env.unwrapped
        physics = np.empty(mujoco.mj_stateSize(base.model, _MJ_STATE), dtype=np.float64)
        mujoco.mj_getState(base.model, base.data, physics, _MJ_STATE)
        return {
            "physics": physics,
            "np_random": base.np_random.bit_generator.state,
            "elapsed_steps": None if self._time_limit is None else self._time_limit._elapsed_steps,
            "has_reset": None if self._order is None else self._order._has_reset,
            "task": None if self._tasks is None else self._tasks.task,
        }

    @env_state.setter
    def env_state(self, state: dict[str, Any]) -> None:
        base = self.env.unwrapped
        physics = np.asarray(state["physics"], dtype=np.float64)
        expected = mujoco.mj_stateSize(base.model, _MJ_STATE)
        if physics.shape != (expected,):
            raise ValueError(f"physics state has shape {physics.shape}, this env needs ({expected},)")
        if self._tasks is not None and state.get("task") is not None:
            self._tasks.task = state["task"]  # first: a task may change the model (masses, friction)
        mujoco.mj_setState(base.model, base.data, physics, _MJ_STATE)
        # Derived quantities (positions of bodies, sensor data) are recomputed from the integration state.
        mujoco.mj_forward(base.model, base.data)
        base.np_random.bit_generator.state = state["np_random"]
        if self._time_limit is not None:
            self._time_limit._elapsed_steps = state["elapsed_steps"]
        if self._order is not None:
            self._order._has_reset = state["has_reset"]


def _find_wrapper(env: gym.Env, kind: type) -> Any:
    while isinstance(env, gym.Wrapper):
        if isinstance(env, kind):
            return env
        env = env.env
    return None


def _find_wrapper_with(env: gym.Env, attribute: str) -> Any:
    while isinstance(env, gym.Wrapper):
        if hasattr(type(env), attribute):
            return env
        env = env.env
    return None


def make_env(
    env_id: str, max_episode_steps: int | None = None, wrap: Optional[Callable[[gym.Env], gym.Env]] = None
) -> StatefulEnv:
    """One env: ``gym.make`` (with its default wrappers, TimeLimit included), optionally wrapped by ``wrap`` (e.g. a
    task switch, ``ocp.scenarios``), then wrapped in :class:`StatefulEnv`."""
    kwargs = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
    env = gym.make(env_id, **kwargs)
    return StatefulEnv(wrap(env) if wrap is not None else env)


def check_env(env_id: str, max_episode_steps: int | None = None) -> tuple[int, int]:
    """Validate ``env_id`` before training starts; return (observation dim, action dim).

    Raises ``ValueError`` for an unknown id, a non-MuJoCo env, or non-Box / non-flat spaces.
    """
    try:
        gym.spec(env_id)
    except gym.error.Error as err:
        raise ValueError(f"unknown environment id {env_id!r}: {err}") from err
    if max_episode_steps is not None and max_episode_steps <= 0:
        raise ValueError(f"max_episode_steps must be positive, got {max_episode_steps}")
    env = gym.make(env_id)
    try:
        act, obs = env.action_space, env.observation_space
        if not isinstance(act, gym.spaces.Box):
            raise ValueError(f"{env_id}: action space is {act}, PPO here needs a continuous Box action space")
        if not isinstance(obs, gym.spaces.Box) or len(obs.shape) != 1:
            raise ValueError(f"{env_id}: observation space is {obs}, a flat Box is needed")
        if len(act.shape) != 1:
            raise ValueError(f"{env_id}: action space shape {act.shape}, a flat Box is needed")
        if not isinstance(env.unwrapped, MujocoEnv):
            raise ValueError(f"{env_id}: not a MuJoCo env; its state cannot be checkpointed for exact resume")
        return int(obs.shape[0]), int(act.shape[0])
    finally:
        env.close()


def make_vector_env(
    env_id: str,
    num_envs: int,
    vector_mode: Literal["sync", "async"] = "sync",
    max_episode_steps: int | None = None,
    wrap: Optional[Callable[[gym.Env], gym.Env]] = None,
) -> VectorEnv:
    """A SAME_STEP-autoreset vector env of ``num_envs`` copies of ``env_id`` (see the module docstring for why):
    :class:`SameStepSyncVectorEnv` (``sync``, whose step info holds only the final observations) or gymnasium's
    ``AsyncVectorEnv`` (``async``).

    Observations are returned without a defensive copy: use (or copy) them before the next ``step``."""
    check_env(env_id, max_episode_steps)
    fns = [lambda: make_env(env_id, max_episode_steps, wrap) for _ in range(num_envs)]
    # copy=False: the returned observation array is reused by the next step; callers consume it at once.
    if vector_mode == "sync":
        return SameStepSyncVectorEnv(fns)
    if vector_mode == "async":
        return AsyncVectorEnv(fns, copy=False, autoreset_mode=AutoresetMode.SAME_STEP)
    raise ValueError(f"vector_mode must be 'sync' or 'async', got {vector_mode!r}")


class SameStepSyncVectorEnv(SyncVectorEnv):
    """``SyncVectorEnv`` with SAME_STEP autoreset whose ``step`` returns only what PPO reads.

    gymnasium's ``step`` merges every sub-env's info dict into batched arrays at every step and copies each result;
    on HalfCheetah that costs about half as much again as the physics. Here the step info holds only ``final_obs``
    (and its mask ``_final_obs``) at the steps where an episode ended, and is empty otherwise; observations, rewards
    and flags are the same arrays gymnasium would return. Reset, attributes and closing are gymnasium's.
    """

    def __init__(self, env_fns: Any):
        super().__init__(env_fns, copy=False, autoreset_mode=AutoresetMode.SAME_STEP)
        self._obs_batch = np.zeros(
            (self.num_envs, *self.single_observation_space.shape), dtype=self.single_observation_space.dtype
        )

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        obs, rewards = self._obs_batch, np.zeros(self.num_envs)
        terminated, truncated = np.zeros(self.num_envs, dtype=bool), np.zeros(self.num_envs, dtype=bool)
        infos: dict[str, Any] = {}
        for i, env in enumerate(self.envs):
            obs[i], rewards[i], terminated[i], truncated[i], _ = env.step(actions[i])
            if terminated[i] or truncated[i]:
                if not infos:
                    infos = {
                        "final_obs": np.full(self.num_envs, None, dtype=object),
                        "_final_obs": np.zeros(self.num_envs, dtype=bool),
                    }
                infos["final_obs"][i], infos["_final_obs"][i] = obs[i].copy(), True
                obs[i], _ = env.reset()
        return obs, rewards, terminated, truncated, infos


def get_env_states(envs: VectorEnv) -> list[dict[str, Any]]:
    """Complete state of every sub-env (picklable)."""
    return list(envs.get_attr("env_state"))


def set_env_states(envs: VectorEnv, states: list[dict[str, Any]]) -> None:
    """Restore states from :func:`get_env_states`; the vector env must have been reset once before."""
    if len(states) != envs.num_envs:
        raise ValueError(f"{len(states)} env states for {envs.num_envs} envs")
    envs.set_attr("env_state", list(states))


class VectorEnvState:
    """The sub-envs' states (:func:`get_env_states`) as a checkpoint part."""

    def __init__(self, envs: VectorEnv) -> None:
        self.envs = envs

    def state_dict(self) -> list[dict[str, Any]]:
        return get_env_states(self.envs)

    def load_state_dict(self, states: list[dict[str, Any]]) -> None:
        set_env_states(self.envs, states)


def final_observations(infos: dict[str, Any], done: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Observations that ended each episode this step (from SAME_STEP's ``info["final_obs"]``); ``fallback`` rows
    where no episode ended."""
    out = np.array(fallback, copy=True)
    if done.any():
        finals = infos["final_obs"]
        for i in np.flatnonzero(done):
            out[i] = finals[i]
    return out
