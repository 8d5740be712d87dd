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

Measurements around switches (written by the loop into the run directory):

* ``switches.csv`` (:data:`SWITCH_COLUMNS`, :class:`SwitchMonitor`) — dormant and zero-gradient ratios at the last
  update before and the first update after each switch, and how many units entered and left each set across it;
* ``recovery.csv`` (:data:`RECOVERY_COLUMNS`, :func:`recovery_rows`) — the return recovery time after each switch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional, Sequence

import gymnasium as gym
import mujoco
import numpy as np
import torch

from ocp.probe import ProbeResult

__all__ = [
    "SCENARIOS",
    "Scenario",
    "TaskSwitchEnv",
    "SwitchMonitor",
    "SWITCH_COLUMNS",
    "RECOVERY_COLUMNS",
    "recovery_rows",
]

#: Scenario names; ``none`` is a stationary run.
SCENARIOS = ("none", "reverse", "ctrl_cost", "mass", "friction", "permute_obs")


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


# ======================================================================================================================
# Measurements around switches
# ======================================================================================================================

SWITCH_COLUMNS = [
    "switch",
    "switch_step",
    "from_task",
    "to_task",
    "update_before",
    "update_after",
    "network",
    "layer",
    "kind",
    "threshold",
    "width",
    "before_ratio",
    "after_ratio",
    "entering",
    "leaving",
]
KINDS = ("dormant", "zero_gradient")


class SwitchMonitor:
    """Probes at the last update before and the first update after each switch, and compares the two.

    With updates of ``batch_size`` steps, update ``u`` collects steps ``(u−1)·B+1 … u·B``; a switch at step ``s``
    (a multiple of B) lies between update ``s/B`` (last before) and ``s/B + 1`` (first after). For every network,
    hidden layer, kind (dormant, zero-gradient) and threshold τ it writes one row: the ratio of the set before and
    after, and ``entering`` = |after \\ before| and ``leaving`` = |before \\ after| units. The ``network`` layer row
    sums over the hidden layers. The masks of the last probe before a switch are state (see :meth:`state_dict`).
    """

    def __init__(self, scenario: Scenario, batch_size: int, total_steps: int, thresholds: Sequence[float]):
        self.scenario, self.batch_size, self.thresholds = scenario, batch_size, tuple(thresholds)
        self.switch_updates = {s // batch_size: s for s in scenario.switch_steps(total_steps)}
        self.pending: Optional[dict[str, Any]] = None

    def before(self, update: int) -> bool:
        return update in self.switch_updates

    def after(self, update: int) -> bool:
        return update - 1 in self.switch_updates

    def due(self, update: int) -> bool:
        return self.before(update) or self.after(update)

    def _masks(self, results: Mapping[str, ProbeResult]) -> dict[tuple[str, str, str, float], torch.Tensor]:
        return {
            (net, r.name, kind, tau): (r.dormant_mask(tau) if kind == "dormant" else r.zero_gradient_mask(tau))
            .detach()
            .cpu()
            for net, res in results.items()
            for r in res.hidden
            for kind in KINDS
            for tau in self.thresholds
        }

    def observe(self, update: int, results: Mapping[str, ProbeResult]) -> list[dict[str, Any]]:
        """Feed the probe of an update for which :meth:`due` is true; returns the rows of a switch that just
        completed (empty after a last-before probe)."""
        rows: list[dict[str, Any]] = []
        if self.after(update):
            if self.pending is None or self.pending["update"] != update - 1:
                raise ValueError(f"switch monitor: no probe of update {update - 1}, the last update before the switch")
            rows = self._compare(self.pending, update, self._masks(results))
            self.pending = None
        if self.before(update):
            self.pending = {"update": update, "masks": self._masks(results)}
        return rows

    def _compare(self, pending: dict[str, Any], update: int, after: dict) -> list[dict[str, Any]]:
        before = pending["masks"]
        step = self.switch_updates[pending["update"]]
        head = dict(
            switch=step // self.scenario.period,
            switch_step=step,
            from_task=self.scenario.task_at(step - 1),
            to_task=self.scenario.task_at(step),
            update_before=pending["update"],
            update_after=update,
        )
        rows, totals = [], {}
        for key, b in before.items():
            net, layer, kind, tau = key
            a = after[key]
            counts = (b.numel(), int(b.sum()), int(a.sum()), int((a & ~b).sum()), int((b & ~a).sum()))
            rows.append(self._row(head, net, layer, kind, tau, *counts))
            agg = totals.setdefault((net, kind, tau), [0, 0, 0, 0, 0])
            for i, c in enumerate(counts):
                agg[i] += c
        rows += [self._row(head, net, "network", kind, tau, *c) for (net, kind, tau), c in totals.items()]
        return rows

    @staticmethod
    def _row(
        head: dict,
        net: str,
        layer: str,
        kind: str,
        tau: float,
        width: int,
        n_before: int,
        n_after: int,
        entering: int,
        leaving: int,
    ) -> dict[str, Any]:
        return dict(
            head,
            network=net,
            layer=layer,
            kind=kind,
            threshold=tau,
            width=width,
            before_ratio=n_before / width,
            after_ratio=n_after / width,
            entering=entering,
            leaving=leaving,
        )

    def state_dict(self) -> Optional[dict[str, Any]]:
        return self.pending

    def load_state_dict(self, state: Optional[dict[str, Any]]) -> None:
        self.pending = state


RECOVERY_COLUMNS = [
    "switch",
    "switch_step",
    "from_task",
    "to_task",
    "pre_level",
    "threshold",
    "recovery_fraction",
    "recovered",
    "recovery_updates",
    "recovery_steps",
    "post_episodes",
    "post_level",
]


def recovery_rows(
    episodes: Iterable[Mapping[str, Any]],
    scenario: Scenario,
    total_steps: int,
    batch_size: int,
    num_envs: int,
    window: int,
    fraction: float,
) -> list[dict[str, Any]]:
    """Return recovery after each switch, from the finished episodes of a run (``global_step`` at the episode's end,
    ``episodic_return``, ``episodic_length``, in the order they finished).

    * pre-switch level L: the mean return of the last ``window`` episodes run entirely in the task before the switch
      (started at or after the previous switch, finished at or before this one): an episode spanning the previous
      switch belongs to neither task;
    * recovery threshold: ``L − (1 − fraction)·|L|`` ("``fraction`` of L", also for a negative L);
    * post-switch episodes: those run entirely after the switch (start step ``global_step − length·num_envs`` ≥ the
      switch step) and finished by the next switch (or the end of the run);
    * recovery time: the first update j = 1, 2, … after the switch at whose end the mean of the last ``window``
      post-switch episodes (fewer while fewer have finished) reaches the threshold; ``recovered`` is 0 and the time
      NaN when it never does before the next switch;
    * ``post_level``: the mean of the last ``window`` post-switch episodes before the next switch.
    """
    eps = [(int(e["global_step"]), int(e["episodic_length"]), float(e["episodic_return"])) for e in episodes]
    steps = scenario.switch_steps(total_steps)
    rows = []
    for k, s in enumerate(steps, start=1):
        end = steps[k] if k < len(steps) else total_steps
        start = steps[k - 2] if k >= 2 else 0
        pre = [r for g, n, r in eps if g - n * num_envs >= start and g <= s][-window:]
        level = float(np.mean(pre)) if pre else math.nan
        threshold = level - (1.0 - fraction) * abs(level)
        post = [(g, r) for g, n, r in eps if g - n * num_envs >= s and g <= end]
        found = math.nan
        for j in range(1, (end - s) // batch_size + 1):
            recent = [r for g, r in post if g <= s + j * batch_size][-window:]
            if recent and not math.isnan(level) and float(np.mean(recent)) >= threshold:
                found = j
                break
        tail = [r for _, r in post][-window:]
        rows.append(
            dict(
                switch=k,
                switch_step=s,
                from_task=scenario.task_at(s - 1),
                to_task=scenario.task_at(s),
                pre_level=level,
                threshold=threshold,
                recovery_fraction=fraction,
                recovered=int(not math.isnan(found)),
                recovery_updates=found,
                recovery_steps=found * batch_size if not math.isnan(found) else math.nan,
                post_episodes=len(post),
                post_level=float(np.mean(tail)) if tail else math.nan,
            )
        )
    return rows
