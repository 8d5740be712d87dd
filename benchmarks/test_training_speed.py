"""Speed of the PPO loop (cleanrl preset) against the environment alone on the same machine.

Two groups per setting:

* ``iteration/<setting>/cpu`` — steady state: one update of 2,048 environment steps (rollout, GAE, ten epochs of
  minibatch steps; probe off) against the bare floor ``env``: ``gymnasium.make("HalfCheetah-v4")`` stepped 2,048
  times with zero actions, reset at episode ends. The printed ratio is our time per step over the bare step.
* ``train/<setting>/cpu`` — whole ``train()`` calls of 8,192 steps (start-up, run directory, checkpoint included),
  with and without the probe at every update, against the raw vector env stepping random actions.
"""

import dataclasses
from collections import deque

import gymnasium as gym
import numpy as np
import pytest
import torch

from ocp.agent import Agent
from ocp.envs import make_vector_env
from ocp.ppo import make_optimizer, presets, train
from ocp.rollout import LoopState, Rollout, RolloutCollector, RolloutSettings, compute_gae
from ocp.update import PPOUpdate, UpdateSettings

TOTAL_STEPS = 8192
SETTINGS = {"1env": dict(num_envs=1, num_steps=2048), "8env": dict(num_envs=8, num_steps=256, vector_mode="async")}


def test_bare_env_floor(timed):
    env = gym.make("HalfCheetah-v4")
    env.reset(seed=0)
    action = np.zeros(env.action_space.shape, dtype=np.float32)

    def run():
        for _ in range(2048):
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                env.reset()

    try:
        timed("iteration/1env/cpu", "env", run, rounds=5)
    finally:
        env.close()


def test_ppo_iteration(timed):
    cfg = presets()["cleanrl"][1]
    torch.set_num_threads(1)
    envs = make_vector_env(cfg.env_id, 1)
    agent = Agent.from_config(cfg.to_dict(), 17, 6)
    optimizer = make_optimizer(agent, cfg)
    raw, _ = envs.reset(seed=0)
    state = LoopState(agent.normalize_obs(raw, True), np.zeros(1), np.zeros(1), np.zeros(1, dtype=np.int64), deque())
    collector = RolloutCollector(agent, envs, RolloutSettings.from_config(cfg))
    learner = PPOUpdate(
        agent,
        optimizer,
        UpdateSettings.from_config(cfg),
    )
    buf = Rollout.empty(cfg.num_steps, 1, 17, 6)
    generator = torch.Generator().manual_seed(0)

    def run():
        collector.collect(state, buf, generator)
        adv, ret = compute_gae(
            buf.rewards, buf.values, buf.next_values, buf.terminated, buf.dones, cfg.gamma, cfg.gae_lambda
        )
        learner.run(buf.flat(adv, ret), generator)

    try:
        timed("iteration/1env/cpu", "ppo", run, rounds=5)
    finally:
        envs.close()


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_raw_env_steps(timed, setting):
    s = SETTINGS[setting]
    envs = make_vector_env("HalfCheetah-v4", s["num_envs"], s.get("vector_mode", "sync"))
    rng = np.random.default_rng(0)
    envs.reset(seed=0)
    actions = rng.uniform(-1, 1, size=(TOTAL_STEPS // s["num_envs"], s["num_envs"], 6)).astype(np.float32)

    def run():
        for a in actions:
            envs.step(a)

    try:
        timed(f"train/{setting}/cpu", "env", run, rounds=3)
    finally:
        envs.close()


@pytest.mark.parametrize("probe", [False, True], ids=["no_probe", "probe_every_update"])
@pytest.mark.parametrize("setting", list(SETTINGS))
def test_ppo_loop(timed, tmp_path, setting, probe):
    cfg = dataclasses.replace(
        presets()["cleanrl"][1],
        **SETTINGS[setting],
        total_timesteps=TOTAL_STEPS,
        probe_interval=1 if probe else 0,
        progress_bar=False,
        tensorboard=False,
    )
    runs = iter(range(1000))

    def run():
        train(dataclasses.replace(cfg, run_dir=str(tmp_path / f"run{next(runs)}")))

    timed(f"train/{setting}/cpu", "ppo_probe" if probe else "ppo", run, rounds=3)
