"""Speed of the PPO loop (cleanrl preset) against the raw vectorised environment on the same machine (the upper
bound): 1 env x 2048 steps and 8 envs x 256 steps per update, 8,192 steps each. The printed ratio is
time(PPO) / time(env alone) = env SPS / PPO SPS."""

import dataclasses

import numpy as np
import pytest

from ocp.envs import make_vector_env
from ocp.ppo import presets, train

TOTAL_STEPS = 8192
SETTINGS = {"1env": dict(num_envs=1, num_steps=2048), "8env": dict(num_envs=8, num_steps=256, vector_mode="async")}


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
    cfg = dataclasses.replace(presets()["cleanrl"][1], **SETTINGS[setting], total_timesteps=TOTAL_STEPS,
                              probe_interval=1 if probe else 0, progress_bar=False, tensorboard=False)  # fmt: skip
    runs = iter(range(1000))

    def run():
        train(dataclasses.replace(cfg, run_dir=str(tmp_path / f"run{next(runs)}")))

    timed(f"train/{setting}/cpu", "ppo_probe" if probe else "ppo", run, rounds=3)
