"""PPO pieces: GAE, normalisers, agent, rollout (no reset-observation leak, truncation bootstrap), validation, CLI."""

import csv
import dataclasses
import json
from collections import deque

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from ocp.agent import Agent, RunningMeanStd, gaussian_log_prob
from ocp.envs import get_env_states, make_env, make_vector_env, set_env_states
from ocp.interventions import Intervention, L2Init, ReDo, WeightClipping
from ocp.ppo import (
    RUNTIME_FIELDS,
    WALL_CLOCK_COLUMNS,
    PlasticityRecorder,
    PPOConfig,
    build_intervention,
    flushing_denormals,
    intervention_networks,
    make_optimizer,
    policy_loss,
    presets,
    train,
    value_loss,
)
from ocp.probe import PlasticityProbe
from ocp.rollout import LoopState, Rollout, RolloutCollector, RolloutSettings, compute_gae
from ocp.train import main, parse

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


# ---------------------------------------------------------------------------------------------------------- GAE
def test_gae_by_hand_with_termination_and_truncation():
    # One env, 4 steps, gamma = lambda = 0.5. Step 1 terminates, step 3 is truncated with V(final obs) = 3.
    rewards = np.array([[1.0], [2.0], [3.0], [4.0]], dtype=np.float32)
    values = np.array([[0.5], [1.0], [1.5], [2.0]], dtype=np.float32)
    next_values = np.array(
        [[1.0], [7.0], [2.0], [3.0]], dtype=np.float32
    )  # 7.0 is ignored: a terminal state has value 0
    terminated = np.array([[0.0], [1.0], [0.0], [0.0]], dtype=np.float32)
    dones = np.array([[0.0], [1.0], [0.0], [1.0]], dtype=np.float32)
    adv, ret = compute_gae(rewards, values, next_values, terminated, dones, 0.5, 0.5)
    # t=3: 4 + .5*3 - 2 = 3.5; t=2: (3 + .5*2 - 1.5) + .25*3.5 = 3.375; t=1: 2 - 1 = 1 (cut); t=0: (1 + .5 - .5) + .25*1
    assert adv.flatten().tolist() == [1.25, 1.0, 3.375, 3.5]
    assert ret.flatten().tolist() == [1.75, 2.0, 4.875, 5.5]


def test_gae_without_truncation_bootstrap_treats_truncation_as_termination():
    rewards = np.array([[1.0], [4.0]], dtype=np.float32)
    values = np.array([[0.5], [2.0]], dtype=np.float32)
    next_values = np.array([[2.0], [3.0]], dtype=np.float32)
    dones = np.array([[0.0], [1.0]], dtype=np.float32)
    adv, _ = compute_gae(rewards, values, next_values, dones, dones, 0.5, 0.5)
    assert adv.flatten().tolist() == [1.5 + 0.25 * 2.0, 2.0]


def test_losses_by_hand():
    logp = torch.log(torch.tensor([1.5, 0.5, 1.0]))  # ratios 1.5, 0.5, 1.0 against old log-prob 0
    adv = torch.tensor([1.0, 1.0, -2.0])
    # max(-A r, -A clip(r)): [max(-1.5,-1.2), max(-0.5,-0.8), max(2, 2)] = [-1.2, -0.5, 2]; mean 0.3/3
    assert policy_loss(logp, torch.zeros(3), adv, 0.2).item() == pytest.approx(0.1, abs=1e-7)
    new, old, ret = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 0.0]), torch.tensor([2.0, 1.0])
    assert value_loss(new, old, ret, 0.2, clip_vloss=False).item() == pytest.approx(0.5 * (1 + 1) / 2)
    # clipped prediction of sample 0 is 0.2: max(1, 1.8²) = 3.24; sample 1: max(1, 1) = 1
    assert value_loss(new, old, ret, 0.2, clip_vloss=True).item() == pytest.approx(0.5 * (3.24 + 1) / 2)


# ---------------------------------------------------------------------------------------------------- normalisers
def test_running_mean_std_matches_numpy_with_prior_count():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, size=(n, 4)) for n in (3, 5, 1, 7)]
    rms = RunningMeanStd((4,))
    for b in batches:
        rms.update(torch.from_numpy(b))
    x = np.concatenate(batches)
    c = 1e-4  # prior: count c at mean 0, variance 1
    total = len(x) + c
    mean = x.sum(0) / total
    var = (c * 1.0 + c * mean**2 + ((x - mean) ** 2).sum(0)) / total
    np.testing.assert_allclose(rms.mean.numpy(), mean, rtol=1e-12)
    np.testing.assert_allclose(rms.var.numpy(), var, rtol=1e-12)
    assert rms.count.item() == pytest.approx(total, rel=1e-15)


def test_agent_normalisers_clip_and_are_saved_buffers():
    agent = Agent(3, 1, obs_clip=10.0, reward_clip=10.0, norm_epsilon=1e-8)
    obs = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    z = agent.normalize_obs(obs, update=True)
    m, v = agent.obs_rms.mean.numpy(), agent.obs_rms.var.numpy()
    assert z.dtype == np.float32
    np.testing.assert_allclose(z, ((obs - m) / np.sqrt(v + 1e-8)).astype(np.float32))
    far = agent.normalize_obs(np.array([[1e6, 2.0, -1e6]]), update=False)
    assert far[0, 0] == 10.0 and far[0, 2] == -10.0
    r = agent.normalize_reward(np.array([2.0, -1.0]), np.array([2.0, -1.0]), update=True)
    np.testing.assert_allclose(r, np.array([2.0, -1.0]) / np.sqrt(agent.ret_rms.var.item() + 1e-8), rtol=1e-6)
    keys = set(agent.state_dict())
    assert {"obs_rms.mean", "obs_rms.var", "obs_rms.count", "ret_rms.mean", "ret_rms.var", "ret_rms.count"} <= keys


# ----------------------------------------------------------------------------------------------------------- agent
@pytest.mark.parametrize("activation,module", [("relu", nn.ReLU), ("identity", nn.Identity), ("tanh", nn.Tanh)])
def test_agent_activations_are_modules_the_probe_finds(activation, module):
    agent = Agent(5, 2, hidden_sizes=(8, 6), activation=activation)
    for net in (agent.actor, agent.critic):
        assert isinstance(net, nn.Sequential)
        assert [type(m) for m in net] == [nn.Linear, module, nn.Linear, module, nn.Linear]
        res = PlasticityProbe(net).measure(torch.randn(16, 5), "output_sum")
        assert [r.width for r in res.hidden] == [8, 6] and [r.name for r in res.output] == ["4"]
    assert agent.actor_logstd.shape == (1, 2) and torch.all(agent.actor_logstd == 0)


def test_agent_initialisation_and_sampling():
    torch.manual_seed(0)
    agent = Agent(4, 3, hidden_sizes=(16,))
    w = agent.actor[0].weight
    torch.testing.assert_close(w.T @ w, 2.0 * torch.eye(4), atol=1e-5, rtol=0)  # (16, 4): orthogonal columns, gain √2
    assert torch.all(agent.critic[0].bias == 0)
    obs = torch.randn(5, 4)
    action, logp, value = agent.sample(obs, torch.Generator().manual_seed(1))
    mean = agent.actor(obs)
    torch.testing.assert_close(logp, gaussian_log_prob(mean, agent.actor_logstd.expand_as(mean), action))
    torch.testing.assert_close(value, agent.critic(obs).squeeze(-1))
    a2, _, _ = agent.sample(obs, torch.Generator().manual_seed(1))
    assert torch.equal(action, a2)  # the noise comes from the given generator only


# ------------------------------------------------------------------------------------------------------- rollouts
def _rollout(
    env_id,
    num_envs,
    num_steps,
    max_steps,
    bootstrap,
    seed=3,
    reward_norm_reset="termination",
    out=None,
    vector_mode="sync",
):
    cfg = PPOConfig(
        env_id=env_id,
        num_envs=num_envs,
        num_steps=num_steps,
        max_episode_steps=max_steps,
        bootstrap_truncation=bootstrap,
        norm_obs=False,
        norm_reward=False,
        reward_norm_reset=reward_norm_reset,
    )
    torch.manual_seed(0)
    envs = make_vector_env(env_id, num_envs, vector_mode, max_steps)
    obs_dim, act_dim = envs.single_observation_space.shape[0], envs.single_action_space.shape[0]
    agent = Agent(obs_dim, act_dim, hidden_sizes=(16,), norm_obs=False, norm_reward=False)
    raw, _ = envs.reset(seed=seed)
    state = LoopState(
        agent.normalize_obs(raw, True),
        np.zeros(num_envs),
        np.zeros(num_envs),
        np.zeros(num_envs, dtype=np.int64),
        deque(maxlen=10),
    )
    buf = Rollout.empty(num_steps, num_envs, obs_dim, act_dim)
    low, high = envs.single_action_space.low, envs.single_action_space.high
    settings = RolloutSettings.from_config(cfg)
    episodes = RolloutCollector(agent, envs, settings).collect(state, buf, torch.Generator().manual_seed(0))
    envs.close()
    if out is not None:
        out["state"] = state
    return agent, buf, episodes, (low, high)


@pytest.mark.parametrize("bootstrap,vector_mode", [(True, "sync"), (False, "sync"), (True, "async")])
def test_rollout_is_exactly_the_real_transitions_no_reset_obs_leak(bootstrap, vector_mode):
    """Replay each sub-env on its own: the buffer must hold exactly the env's transitions — no step from a final
    observation to a reset observation (gymnasium 1.x NEXT_STEP autoreset would insert one with reward 0)."""
    T, N, max_steps, seed = 13, 2, 5, 3
    agent, buf, episodes, (low, high) = _rollout(
        "HalfCheetah-v4", N, T, max_steps, bootstrap, seed, vector_mode=vector_mode
    )
    for i in range(N):
        env = make_env("HalfCheetah-v4", max_steps)
        obs, _ = env.reset(seed=seed + i)
        for t in range(T):
            assert np.array_equal(buf.obs[t, i], obs.astype(np.float32)), (t, i)
            obs, reward, terminated, truncated, _ = env.step(np.clip(buf.actions[t, i], low, high))
            assert buf.rewards[t, i] == np.float32(reward)
            done = terminated or truncated
            assert buf.dones[t, i] == float(done) == float((t + 1) % max_steps == 0)
            assert buf.terminated[t, i] == float(terminated if bootstrap else done)
            if done:
                if bootstrap:  # bootstrap from the true final observation, not the reset one stored next
                    expected = agent.value(torch.from_numpy(obs.astype(np.float32))[None]).item()
                    assert buf.next_values[t, i] == pytest.approx(expected, abs=1e-6)
                    if t + 1 < T:
                        assert buf.next_values[t, i] != pytest.approx(buf.values[t + 1, i], abs=1e-6)
                obs, _ = env.reset()
            elif t + 1 < T:
                assert buf.next_values[t, i] == buf.values[t + 1, i]
        env.close()
    assert sorted((e["env"], e["episodic_length"]) for e in episodes) == [(0, 5), (0, 5), (1, 5), (1, 5)]


def _prior_stats(rows: np.ndarray, c: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population variance of ``rows`` together with the prior (count c at mean 0, variance 1)."""
    total = len(rows) + c
    mean = rows.sum(0) / total
    return mean, (c * 1.0 + c * mean**2 + ((rows - mean) ** 2).sum(0)) / total


def test_observation_statistics_see_the_final_observation_before_the_reset_one():
    """As NormalizeObservation inside each sub-env: an episode's final observation updates the statistics, then the
    reset observation does; the truncation bootstrap uses the final observation normalised between the two."""
    T, max_steps, seed = 7, 3, 4
    torch.manual_seed(0)
    envs = make_vector_env("HalfCheetah-v4", 1, "sync", max_steps)
    agent = Agent(17, 6, hidden_sizes=(16,), norm_obs=True, norm_reward=False)
    raw, _ = envs.reset(seed=seed)
    state = LoopState(agent.normalize_obs(raw, True), np.zeros(1), np.zeros(1), np.zeros(1, dtype=np.int64), deque())
    buf = Rollout.empty(T, 1, 17, 6)
    RolloutCollector(agent, envs, RolloutSettings(T, 0.99, True, "termination")).collect(
        state, buf, torch.Generator().manual_seed(0)
    )
    envs.close()

    env = make_env("HalfCheetah-v4", max_steps)
    seen = [env.reset(seed=seed)[0]]  # every observation the env returned, in order
    low, high = env.action_space.low, env.action_space.high
    for t in range(T):
        obs, _, terminated, truncated, _ = env.step(np.clip(buf.actions[t, 0], low, high))
        seen.append(obs)
        if terminated or truncated:
            seen.append(env.reset()[0])
    env.close()
    seen = np.array(seen)
    assert len(seen) == 1 + T + 2  # two episodes ended: two final observations and two reset observations
    mean, var = _prior_stats(seen)
    np.testing.assert_allclose(agent.obs_rms.mean.numpy(), mean, rtol=1e-10)
    np.testing.assert_allclose(agent.obs_rms.var.numpy(), var, rtol=1e-10)
    assert agent.obs_rms.count.item() == pytest.approx(len(seen) + 1e-4, rel=1e-15)
    # Step 2 ended the first episode: its final observation is seen[3], normalised with the statistics of seen[:4];
    # the next stored observation is the reset one, seen[4], normalised with those of seen[:5].
    m4, v4 = _prior_stats(seen[:4])
    final = np.clip((seen[3] - m4) / np.sqrt(v4 + 1e-8), -10, 10).astype(np.float32)
    assert buf.next_values[2, 0] == pytest.approx(agent.value(torch.from_numpy(final)[None]).item(), abs=1e-6)
    m5, v5 = _prior_stats(seen[:5])
    np.testing.assert_allclose(
        buf.obs[3, 0], np.clip((seen[4] - m5) / np.sqrt(v5 + 1e-8), -10, 10), rtol=1e-5, atol=1e-6
    )


def test_gymnasium_default_autoreset_would_leak_a_reset_transition():
    """The hazard the SAME_STEP vector env avoids: in the default NEXT_STEP mode the step after an episode end
    ignores the action and returns the reset observation with reward 0 and done = False."""
    envs = gym.vector.SyncVectorEnv([lambda: make_env("HalfCheetah-v4", 2)])
    envs.reset(seed=0)
    action = np.full((1, 6), 0.5, dtype=np.float32)
    for _ in range(2):
        _, _, _, truncated, _ = envs.step(action)
    assert truncated[0]
    obs, reward, terminated, truncated, _ = envs.step(action)
    assert reward[0] == 0.0 and not terminated[0] and not truncated[0]
    envs.close()


def test_termination_is_not_bootstrapped():
    agent, buf, episodes, _ = _rollout("InvertedPendulum-v4", 1, 60, None, True, seed=0)
    term = buf.terminated[:, 0].astype(bool)
    assert term.any() and np.array_equal(term, buf.dones[:, 0].astype(bool))  # only terminations end these episodes
    assert np.all(buf.next_values[:, 0][term] == 0)
    assert len(episodes) == int(term.sum())


@pytest.mark.parametrize("env_id,max_steps", [("HalfCheetah-v4", 5), ("InvertedPendulum-v4", None)])
@pytest.mark.parametrize("rule", ["termination", "episode_end"])
def test_discounted_return_for_reward_scaling_follows_its_reset_rule(env_id, max_steps, rule):
    out = {}
    _, buf, _, _ = _rollout(env_id, 1, 23, max_steps, True, seed=0, reward_norm_reset=rule, out=out)
    g, gamma = 0.0, 0.99
    for t in range(23):  # buffer rewards are raw here (norm_reward=False)
        term, done = float(buf.terminated[t, 0]), float(buf.dones[t, 0])
        if rule == "termination":  # gymnasium NormalizeReward: G = γ(1 − term)G + r
            g = gamma * (1 - term) * g + float(buf.rewards[t, 0])
        else:
            g = gamma * g + float(buf.rewards[t, 0])
            g = 0.0 if done else g
    assert buf.dones.any()
    assert out["state"].discounted_return[0] == pytest.approx(g, rel=1e-6)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_env_state_roundtrip_is_bit_exact(mode):
    envs = make_vector_env("HalfCheetah-v4", 2, mode, max_episode_steps=7)
    envs.reset(seed=11)
    rng = np.random.default_rng(0)
    actions = [rng.uniform(-1, 1, size=(2, 6)).astype(np.float32) for _ in range(12)]
    for a in actions[:4]:
        envs.step(a)
    states = get_env_states(envs)
    first = [tuple(np.copy(x) for x in envs.step(a)[:4]) for a in actions[4:]]  # crosses an autoreset (step 7)
    set_env_states(envs, states)
    second = [tuple(np.copy(x) for x in envs.step(a)[:4]) for a in actions[4:]]
    envs.close()
    for s1, s2 in zip(first, second):
        for x1, x2 in zip(s1, s2):
            assert np.array_equal(x1, x2)


# ------------------------------------------------------------------------------------------------ probe objective
def _dead_unit_probe(**cfg_kw):
    """MAGI of the hidden units of actor and critic (4 inputs, one hidden layer of 2 ReLU units) under the probe of a
    config. Unit 0 of each network is dead on the batch (bias −8, inputs in [−1, 1]), so the PPO loss gives its
    incoming weights an exactly zero gradient; its weights moved from θ₀ = 0.5 by (0.25, −0.5, 0.5, −0.25)."""
    torch.manual_seed(0)
    cfg = PPOConfig(hidden_sizes=(2,), activation="relu", **cfg_kw)
    agent = Agent(4, 1, hidden_sizes=(2,), activation="relu")
    networks = intervention_networks(agent)
    with torch.no_grad():
        for net in networks.values():
            net[0].weight[0] = 0.5
            net[0].bias[0] = -8.0
    initial_state = {k: v.clone() for k, v in agent.state_dict().items()}
    intervention = build_intervention(cfg)
    intervention.bind(networks)  # θ₀
    with torch.no_grad():
        for net in networks.values():
            net[0].weight[0] = torch.tensor([0.75, 0.0, 1.0, 0.25])
    gen = torch.Generator().manual_seed(1)
    n = 16
    batch = {
        "obs": torch.rand(n, 4, generator=gen) * 2 - 1,
        "actions": torch.randn(n, 1, generator=gen),
        "logprobs": torch.randn(n, generator=gen) - 1,
        "values": torch.randn(n, generator=gen),
        "advantages": torch.randn(n, generator=gen),
        "returns": torch.randn(n, generator=gen),
    }
    results = PlasticityRecorder(agent, cfg, initial_state, intervention).measure(batch)
    return {net: results[net].layer("0") for net in ("actor", "critic")}


def test_probe_objective_choices():
    c, wd = 0.0625, 0.015625
    ppo_only = _dead_unit_probe(intervention=L2Init(coef=c), weight_decay=wd, probe_objective="ppo_loss")
    # The default ("loss"): the PPO loss plus L2-init's penalty; the dead unit's gradient is 2c(W − W₀) =
    # (0.03125, −0.0625, 0.0625, −0.03125), MAGI 0.1875 / 4, and Adam's L2 weight decay is left out.
    l2 = _dead_unit_probe(intervention=L2Init(coef=c))
    l2_wd_loss = _dead_unit_probe(intervention=L2Init(coef=c), weight_decay=wd)
    # "optimised" adds the weight decay's wd·W = (0.01171875, 0, 0.015625, 0.00390625) to that gradient.
    l2_wd = _dead_unit_probe(intervention=L2Init(coef=c), weight_decay=wd, probe_objective="optimised")
    for net in ("actor", "critic"):
        assert ppo_only[net].magi[0].item() == 0.0 and ppo_only[net].zero_gradient_mask(0.0)[0]
        assert l2[net].magi[0].item() == 0.046875 and not l2[net].zero_gradient_mask(0.0)[0]
        assert l2_wd_loss[net].magi[0].item() == 0.046875
        assert l2_wd[net].magi[0].item() == (0.04296875 + 0.0625 + 0.078125 + 0.02734375) / 4 == 0.052734375
        # The live unit sits at θ₀ and no weight decay is on: the penalty adds nothing there.
        assert l2[net].magi[1].item() == ppo_only[net].magi[1].item() > 0
        assert torch.equal(l2[net].dormancy_scores, ppo_only[net].dormancy_scores)
    # Decoupled decay (AdamW) never enters the gradient; weight decay turned off in an l2_init run does not either.
    for kw in (
        dict(weight_decay_mode="decoupled", intervention=L2Init(coef=c)),
        dict(intervention=L2Init(coef=c, keep_weight_decay=False)),
    ):
        other = _dead_unit_probe(weight_decay=wd, probe_objective="optimised", **kw)
        assert other["actor"].magi[0].item() == 0.046875
    # Weight decay alone (no intervention): wd·W = 0.03125 / 4 under "optimised"; a dead unit stays exactly
    # zero-gradient under the default, as Theorem 1 needs.
    assert _dead_unit_probe(weight_decay=wd, probe_objective="optimised")["actor"].magi[0].item() == 0.0078125
    assert _dead_unit_probe(weight_decay=wd)["actor"].magi[0].item() == 0.0
    # Nothing but the PPO loss to follow: every objective is the same measurement.
    plain = _dead_unit_probe()
    for objective in ("optimised", "ppo_loss"):
        other = _dead_unit_probe(probe_objective=objective)
        assert all(torch.equal(plain[n].magi, other[n].magi) and plain[n].magi[0].item() == 0.0 for n in plain)


def test_l2_init_can_turn_the_optimisers_weight_decay_off():
    agent = Agent(3, 1, hidden_sizes=(4,))
    paper = presets()["paper"][1]
    assert make_optimizer(agent, paper).param_groups[0]["weight_decay"] == 1e-4
    l2 = dataclasses.replace(paper, intervention=L2Init())
    assert make_optimizer(Agent(3, 1, (4,)), l2).param_groups[0]["weight_decay"] == 1e-4
    off = dataclasses.replace(paper, intervention=L2Init(keep_weight_decay=False))
    assert make_optimizer(Agent(3, 1, (4,)), off).param_groups[0]["weight_decay"] == 0.0
    other = dataclasses.replace(paper, intervention=WeightClipping())  # no other intervention replaces it
    assert make_optimizer(Agent(3, 1, (4,)), other).param_groups[0]["weight_decay"] == 1e-4


def test_training_loop_probes_with_the_penalty(tmp_path):
    def run(objective):
        cfg = PPOConfig(
            env_id="HalfCheetah-v4",
            run_dir=str(tmp_path / objective),
            num_envs=1,
            num_steps=64,
            total_timesteps=128,
            num_minibatches=2,
            update_epochs=1,
            activation="relu",
            probe_interval=1,
            intervention=L2Init(coef=1.0),
            probe_objective=objective,
            progress_bar=False,
            tensorboard=False,
            seed=3,
        )
        train(cfg)
        return _read_csv(tmp_path / objective / "metrics.csv", WALL_CLOCK_COLUMNS), _read_csv(
            tmp_path / objective / "plasticity.csv"
        )

    metrics_opt, plasticity_opt = run("loss")
    metrics_ppo, plasticity_ppo = run("ppo_loss")
    assert metrics_opt == metrics_ppo  # the probe's objective changes what is measured, not the training

    def magi(rows, update):
        return [r["value"] for r in rows if r["update"] == update and r["metric"] == "magi_mean"]

    assert magi(plasticity_opt, "1") == magi(plasticity_ppo, "1")  # θ = θ₀ at update 1: the penalty has no gradient
    after_steps = list(zip(magi(plasticity_opt, "2"), magi(plasticity_ppo, "2")))
    assert len(after_steps) == 6 and all(a != b for a, b in after_steps)  # 3 layers x (actor, critic)


def _read_csv(path, drop=()):
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if k not in drop} for row in csv.DictReader(f)]


# -------------------------------------------------------------------------------------------------------- bad input
def test_invalid_hyperparameters_are_all_listed():
    cfg = PPOConfig(num_minibatches=3, learning_rate=0.0, gamma=1.5, hidden_sizes=(), probe_thresholds=())
    with pytest.raises(ValueError) as err:
        cfg.validate()
    msg = str(err.value)
    assert "num_minibatches=3 does not divide the batch num_envs*num_steps=2048" in msg
    assert "learning_rate must be > 0, got 0.0" in msg
    assert "gamma must be in [0, 1], got 1.5" in msg
    assert "hidden_sizes" in msg and "probe_thresholds" in msg


@pytest.mark.parametrize(
    "env_id,message",
    [
        ("NoSuchEnv-v0", "unknown environment id 'NoSuchEnv-v0'"),
        ("CartPole-v1", "continuous Box action space"),
        ("Pendulum-v1", "not a MuJoCo env"),
    ],
)
def test_bad_env_fails_before_anything_is_written(tmp_path, env_id, message):
    run_dir = tmp_path / "run"
    with pytest.raises(ValueError, match=message):
        train(PPOConfig(env_id=env_id, run_dir=str(run_dir), progress_bar=False))
    assert not run_dir.exists()


# -------------------------------------------------------------------------------------------------------------- CLI
def test_cli_help_lists_every_option_with_default(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as code:
        parse(["cleanrl", "--help"])
    assert code.value.code == 0
    out = capsys.readouterr().out
    for f in PPOConfig.__dataclass_fields__:
        assert f"--{f.replace('_', '-')}" in out, f
    assert out.count("(default:") >= len(PPOConfig.__dataclass_fields__)


def test_cli_presets_and_overrides():
    cfg = parse(["paper", "--seed", "3", "--activation", "identity"])
    assert (cfg.learning_rate, cfg.weight_decay, cfg.weight_decay_mode) == (1e-4, 1e-4, "l2")
    assert (cfg.seed, cfg.activation, cfg.total_timesteps, cfg.num_minibatches, cfg.update_epochs) == (
        3,
        "identity",
        20_000_000,
        32,
        10,
    )
    assert (cfg.gamma, cfg.gae_lambda, cfg.max_grad_norm, cfg.clip_coef, cfg.vf_coef, cfg.anneal_lr) == (
        0.99,
        0.95,
        0.5,
        0.2,
        0.5,
        True,
    )
    c = parse(["cleanrl"])
    assert c == presets()["cleanrl"][1] == PPOConfig()
    assert (c.learning_rate, c.num_envs, c.num_steps, c.activation, c.total_timesteps) == (
        3e-4,
        1,
        2048,
        "tanh",
        1_000_000,
    )


def test_cli_reports_bad_input_as_an_error(tmp_path, capsys):
    assert main(["cleanrl", "--num-minibatches", "3", "--run-dir", str(tmp_path / "r")]) == 2
    assert "does not divide the batch" in capsys.readouterr().err


def test_flushing_denormals_zeroes_subnormals_inside_only():
    tiny = np.array([1e-40], dtype=np.float32)  # subnormal in float32
    assert (tiny * np.float32(0.5))[0] > 0
    with flushing_denormals(True):
        assert (tiny * np.float32(0.5))[0] == 0.0  # numpy in this thread follows the CPU mode torch sets
        assert (torch.from_numpy(tiny) * 0.5).item() == 0.0
    assert (tiny * np.float32(0.5))[0] > 0  # IEEE mode again after
    with flushing_denormals(False):
        assert (tiny * np.float32(0.5))[0] > 0


def test_flushing_blocks_nest_and_the_probe_measures_in_ieee_mode():
    tiny = np.array([1e-40], dtype=np.float32)
    with flushing_denormals(True):
        with flushing_denormals(False):
            assert (tiny * np.float32(0.5))[0] > 0
        assert (tiny * np.float32(0.5))[0] == 0.0
    assert "flush_denormal" not in RUNTIME_FIELDS and PPOConfig().flush_denormal
    # A unit whose activations are subnormal is not dormant at τ = 0: the probe's score stays positive while the
    # training loop flushes.
    agent = Agent(2, 1, hidden_sizes=(2,), activation="relu")
    with torch.no_grad():
        for net in (agent.actor, agent.critic):
            net[0].weight.zero_()
            net[0].bias.copy_(torch.tensor([1e-39, 1.0]))
    cfg = PPOConfig(hidden_sizes=(2,), activation="relu")
    batch = {
        "obs": torch.zeros(4, 2),
        "actions": torch.zeros(4, 1),
        "logprobs": torch.zeros(4),
        "values": torch.zeros(4),
        "advantages": torch.arange(4.0),
        "returns": torch.ones(4),
    }
    initial = {k: v.clone() for k, v in agent.state_dict().items()}
    with flushing_denormals(True):
        result = PlasticityRecorder(agent, cfg, initial).measure(batch)
    assert result["critic"].layer("0").dormancy_scores[0].item() > 0


def test_cli_selects_an_intervention_and_its_parameters():
    cfg = parse(
        ["paper", "--seed", "3", "intervention:redo", "--intervention.every", "10", "--intervention.tau", "0.1"]
    )
    assert cfg.intervention == ReDo(every=10, tau=0.1) and cfg.seed == 3 and cfg.activation == "relu"
    assert parse(["paper"]).intervention == Intervention()
    cfg = parse(["cleanrl", "intervention:l2_init", "--intervention.no-keep-weight-decay"])
    assert cfg.intervention == L2Init(keep_weight_decay=False)
    assert PPOConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_a_checkpoint_of_an_earlier_version_loads_with_its_policy_weights():
    """Earlier checkpoints named the policy network ``actor_mean``; Agent.from_checkpoint reads them."""
    torch.manual_seed(0)
    agent = Agent(5, 2, hidden_sizes=(8,), activation="relu")
    old = {
        k.replace("actor.", "actor_mean.", 1) if k.startswith("actor.") else k: v for k, v in agent.state_dict().items()
    }
    assert "actor_mean.0.weight" in old
    loaded, config = Agent.from_checkpoint({"agent": old, "config": {"activation": "relu"}}, "old.ckpt")
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in agent.state_dict().items())
    assert config == {"activation": "relu"}
