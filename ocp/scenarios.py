"""Non-stationary scenarios: the task switches every ``period`` environment steps during one PPO run.

Two tasks alternate: task 0 (the env as registered) before the first switch, task 1 after it, task 0 after the
second, and so on. The task of the step that follows ``global_step`` completed steps is ``(global_step // period) % 2``
— a function of the global step only, so a resumed run switches at exactly the same steps.

Scenarios (task 1 in each):

* ``reverse``     — reward direction reversal: the forward-reward weight is negated (run backward instead of forward);
* ``ctrl_cost``   — reward re-weighting: the control-cost weight is multiplied by ``scale``;
* ``mass``        — dynamics: every body's mass and rotational inertia are multiplied by ``scale``;
* ``friction``    — dynamics: every geom's friction coefficients (sliding, torsional, rolling) are multiplied by
  ``scale``;
* ``permute_obs`` — the observation vector is permuted by a fixed random permutation (drawn once from ``seed``; never
  the identity) — a very different task with the same shapes.

The change is made inside each sub-environment by :class:`TaskSwitchEnv`, a wrapper between ``gym.make``'s env and
:class:`ocp.envs.StatefulEnv`; the current task is part of the env state that a checkpoint stores. The training loop
(``ocp.ppo.train``) sets the task at the start of every update; a switch period must therefore be a multiple of the
batch (``num_envs * num_steps``), so a rollout never mixes tasks and "the last update before a switch" and "the first
update after it" are whole updates.

What a switch does to the networks and to the return (``switches.csv``, ``recovery.csv``) is measured by
:mod:`ocp.switch_analysis`; this module is the environment side only and does not import the probe.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import gymnasium as gym
import mujoco
import numpy as np

__all__ = ["SCENARIOS", "ScenarioName", "Scenario", "TaskSwitchEnv"]

#: Scenario names; ``none`` is a stationary run.
SCENARIOS = ("none", "reverse", "ctrl_cost", "mass", "friction", "permute_obs")
ScenarioName = Literal[SCENARIOS]  # type: ignore[valid-type]


@dataclass(frozen=True)
class Scenario:
    """Which task switch, how often, and its parameters (built from the ``scenario*`` fields of ``PPOConfig``)."""

    name: str = "none"
    period: int = 0
    """Environment steps (summed over the vector env, like ``global_step``) between switches."""
    scale: float = 3.0
    """The factor of ``ctrl_cost``, ``mass`` and ``friction`` in task 1."""
    seed: int = 0
    """Seed of the ``permute_obs`` permutation."""

    @property
    def active(self) -> bool:
        return self.name != "none"

    def errors(self, batch_size: int) -> list[str]:
        """Every problem with this scenario for a run whose updates are ``batch_size`` env steps."""
        out = []
        if self.name not in SCENARIOS:
            out.append(f"scenario must be one of {SCENARIOS}, got {self.name!r}")
        if not self.active and self.period != 0:
            out.append(f"scenario_period has no effect without a scenario; leave it 0 (got {self.period})")
        if self.active:
            if self.period < 1:
                out.append(f"scenario_period must be >= 1 with scenario {self.name!r}, got {self.period}")
            elif self.period % batch_size:
                out.append(
                    f"scenario_period={self.period} must be a multiple of the batch num_envs*num_steps="
                    f"{batch_size}, so that switches fall between updates"
                )
        if self.name in ("ctrl_cost", "mass", "friction") and not (self.scale > 0 and math.isfinite(self.scale)):
            out.append(f"scenario_scale must be a finite value > 0, got {self.scale}")
        return out

    def task_at(self, global_step: int) -> int:
        """The task of the environment step taken after ``global_step`` completed steps (0 or 1)."""
        return (global_step // self.period) % 2 if self.active else 0

    def switch_steps(self, total_steps: int) -> list[int]:
        """Global steps at which the task changes, strictly inside a run of ``total_steps`` steps."""
        if not self.active:
            return []
        return list(range(self.period, total_steps, self.period))

    def permutation(self, obs_dim: int) -> np.ndarray:
        """The ``permute_obs`` permutation: task-1 observation ``i`` is task-0 observation ``perm[i]``."""
        if obs_dim < 2:
            raise ValueError(f"permute_obs needs an observation of at least 2 entries, got {obs_dim}")
        rng = np.random.default_rng(self.seed)
        perm = rng.permutation(obs_dim)
        while np.array_equal(perm, np.arange(obs_dim)):  # the identity would be no switch at all
            perm = rng.permutation(obs_dim)
        return perm


class TaskSwitchEnv(gym.Wrapper):
    """Applies task 0 or task 1 of a :class:`Scenario` to one MuJoCo env; ``task`` is a settable property (so that
    ``VectorEnv.set_attr`` reaches it in sync and async vector envs), and setting it is idempotent: every task is
    applied from the values the env had when wrapped."""

    def __init__(self, env: gym.Env, scenario: Scenario):
        super().__init__(env)
        self.scenario = scenario
        base = env.unwrapped
        needed = {"reverse": "_forward_reward_weight", "ctrl_cost": "_ctrl_cost_weight"}.get(scenario.name)
        if needed is not None and not hasattr(base, needed):
            raise ValueError(
                f"scenario {scenario.name!r} needs a MuJoCo env with a {needed} reward weight; "
                f"{type(base).__name__} has none"
            )
        if scenario.name in ("mass", "friction") and not hasattr(base, "model"):
            raise ValueError(f"scenario {scenario.name!r} needs a MuJoCo env")
        self._forward_weight = getattr(base, "_forward_reward_weight", None)
        self._ctrl_weight = getattr(base, "_ctrl_cost_weight", None)
        model = getattr(base, "model", None)
        self._mass = None if model is None else model.body_mass.copy()
        self._inertia = None if model is None else model.body_inertia.copy()
        self._friction = None if model is None else model.geom_friction.copy()
        self._perm = scenario.permutation(env.observation_space.shape[0]) if scenario.name == "permute_obs" else None
        self._task = 0

    @property
    def task(self) -> int:
        return self._task

    @task.setter
    def task(self, task: int) -> None:
        if task not in (0, 1):
            raise ValueError(f"task must be 0 or 1, got {task!r}")
        base, name, on = self.env.unwrapped, self.scenario.name, task == 1
        k = self.scenario.scale if on else 1.0
        if name == "reverse":
            base._forward_reward_weight = -self._forward_weight if on else self._forward_weight
        elif name == "ctrl_cost":
            base._ctrl_cost_weight = self._ctrl_weight * k
        elif name == "mass":
            base.model.body_mass[:] = self._mass * k
            base.model.body_inertia[:] = self._inertia * k
            # The model's derived constants (inverse weights that set constraint softness, subtree masses) follow the
            # masses only through mj_setConst; computed on scratch data so the env's state is untouched.
            mujoco.mj_setConst(base.model, mujoco.MjData(base.model))
        elif name == "friction":
            base.model.geom_friction[:] = self._friction * k
        self._task = int(task)

    def _observe(self, obs: np.ndarray) -> np.ndarray:
        return obs[self._perm] if self._perm is not None and self._task == 1 else obs

    @property
    def current_observation(self) -> np.ndarray:
        """The observation of the env's current state as the current task presents it (used after a switch that
        changes what observations mean, so the next action does not act on a stale observation)."""
        return self._observe(self.env.unwrapped._get_obs())

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict]:
        obs, info = self.env.reset(**kwargs)
        return self._observe(obs), info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._observe(obs), reward, terminated, truncated, info
