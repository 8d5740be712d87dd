"""Tests of the transfer experiment: Eq. 1 term by term, its permuted-input control and its linear floor against closed
forms, the similar-task targets, checkpoint loading and its errors, training and probing of one regressor, and a tiny
end-to-end run with checkpoints written by the real PPO loop. The statistics are in test_transfer_statistics.py."""

import csv
import dataclasses
import json
import math
import shutil

import numpy as np
import pytest
import torch
from scipy import special
from torch import nn

from ocp.agent import Agent
from ocp.checkpoint import load_checkpoint, save_checkpoint
from ocp.ppo import PPOConfig, train
from ocp.pretrained import load_pretrained, pretrained_critic, random_critic
from ocp.regression import train_regressor
from ocp.regression_tasks import (
    EQ1_PERMUTED_INDICES,
    RegressionData,
    ReturnTaskSpec,
    eq1_linear_floor,
    eq1_noise_free,
    make_eq1_data,
    rollout_returns,
    truncated_discounted_returns,
)
from ocp.transfer import TransferConfig, _prepare, main, replicate_seed, run_transfer

# ---------------------------------------------------------------------------------------------------------------
# Eq. 1
# ---------------------------------------------------------------------------------------------------------------

# y(e_i) for the unit vector e_i, by hand: the constant part at X = 0 is 1.5·cos 0 + e^0 = 2.5, and each unit
# vector switches on one term (products X4X5 and X13X14 stay 0; cos and exp terms change from their value at 0).
UNIT_VECTOR_Y = [
    2.5 + 2.5,  # 2.5 X0
    2.5 - 1.2,  # −1.2 X1²
    2.5 + 0.8 * math.sin(1.0),
    1.0 + 1.5 * math.cos(1.0),  # 1.5 cos X3 replaces 1.5 cos 0
    2.5,  # 0.7 X4 X5 with X5 = 0
    2.5,
    2.5 - 0.3,  # −0.3 X6³
    1.5 + math.exp(-0.1),  # e^{−0.1 X7²} replaces e^0
    2.5 + 1.1,
    2.5 - 0.5,
    2.5 + 0.9 * math.tanh(1.0),
    2.5 + 0.2,
    2.5 - 0.6,  # −0.6 √|X12|
    2.5,  # 0.5 X13 X14 with X14 = 0
    2.5,
    2.5 - 0.4,
    2.5 + 0.3,
]


def test_eq1_at_zero_and_unit_vectors():
    assert eq1_noise_free(np.zeros((1, 17)))[0] == pytest.approx(2.5, abs=1e-15)
    np.testing.assert_allclose(eq1_noise_free(np.eye(17)), UNIT_VECTOR_Y, rtol=0, atol=1e-14)


def test_eq1_hand_picked_rows():
    x = np.zeros((3, 17))
    # −1.2·4 + 0.7·2·3 − 0.3·8 − 0.6·√4 + 0.5·(−1)·4 = −4.8 + 4.2 − 2.4 − 1.2 − 2.0, plus 2.5.
    x[0, [1, 4, 5, 6, 12, 13, 14]] = [-2, 2, 3, 2, -4, -1, 4]
    # 2.5 + 1.1 − 0.4 + 0.3 − 0.5·4 + 0.2·9, plus 2.5.
    x[1, [0, 8, 15, 16, 9, 11]] = [1, 1, 1, 1, 2, -3]
    # Odd terms: sin(−π/2) = −1, cos π = −1, e^{−0.1·100}, tanh(−∞-ish) ≈ −1, √|−9| = 3, −0.3·(−1)³ = +0.3.
    x[2, [2, 3, 7, 10, 12, 6]] = [-math.pi / 2, math.pi, 10, -50, -9, -1]
    expected = [-3.7, 5.8, -0.8 - 1.5 + math.exp(-10.0) + 0.9 * math.tanh(-50.0) - 1.8 + 0.3]
    np.testing.assert_allclose(eq1_noise_free(x), expected, rtol=0, atol=1e-12)


def test_eq1_rejects_wrong_width():
    with pytest.raises(ValueError, match="17"):
        eq1_noise_free(np.zeros((4, 16)))


def test_eq1_data_noise_and_seeding():
    clean = make_eq1_data(1000, 1000, seed=3, noise_std=0.0)
    np.testing.assert_allclose(
        clean.y_train.numpy(), eq1_noise_free(clean.x_train.double().numpy()), rtol=1e-6, atol=1e-5
    )
    noisy = make_eq1_data(1000, 1000, seed=3, noise_std=0.1)
    assert torch.equal(noisy.x_train, clean.x_train)  # the noise is drawn after X
    resid = np.concatenate(
        [
            noisy.y_train.double().numpy() - eq1_noise_free(noisy.x_train.double().numpy()),
            noisy.y_test.double().numpy() - eq1_noise_free(noisy.x_test.double().numpy()),
        ]
    )
    assert resid.std() == pytest.approx(0.1, abs=0.006) and abs(resid.mean()) < 0.01
    again = make_eq1_data(1000, 1000, seed=3, noise_std=0.1)
    assert torch.equal(again.y_test, noisy.y_test)
    assert not torch.equal(make_eq1_data(1000, 1000, seed=4).x_train, noisy.x_train)
    # Standard normal inputs by default; uniform inputs stay inside [−scale, scale].
    assert float(noisy.x_train.std()) == pytest.approx(1.0, abs=0.02)
    uni = make_eq1_data(200, 10, seed=0, distribution="uniform", scale=2.0)
    assert float(uni.x_train.abs().max()) <= 2.0 and float(uni.x_train.abs().max()) > 1.9


def test_permuted_eq1_moves_each_term_to_its_new_input():
    # Term k reads input π[k]: the unit vector e_j switches on the term k with π[k] = j.
    inverse = {j: k for k, j in enumerate(EQ1_PERMUTED_INDICES)}
    np.testing.assert_allclose(
        eq1_noise_free(np.eye(17), EQ1_PERMUTED_INDICES),
        [UNIT_VECTOR_Y[inverse[j]] for j in range(17)],
        rtol=0,
        atol=1e-14,
    )
    # The default swaps 0↔11, 1↔12, 7↔8, 10↔13: height, pitch, forward velocity and pitch rate of HalfCheetah-v4
    # feed 0.2X², −0.6√|X|, e^{−0.1X²} and the product term 0.5·X13·X14.
    assert EQ1_PERMUTED_INDICES == (11, 12, 2, 3, 4, 5, 6, 8, 7, 9, 13, 0, 1, 10, 14, 15, 16)
    x = np.zeros((1, 17))
    x[0, 8], x[0, 14] = 3.0, 2.0  # input 8 → e^{−0.1·9} in place of e^0; inputs 10 and 14 stay 0, so the product is 0
    assert eq1_noise_free(x, EQ1_PERMUTED_INDICES)[0] == pytest.approx(1.5 + math.exp(-0.9), abs=1e-14)
    # The same inputs and noise as Eq. 1: only the target's wiring changes.
    plain, permuted = make_eq1_data(30, 20, seed=2), make_eq1_data(30, 20, seed=2, permutation=EQ1_PERMUTED_INDICES)
    assert torch.equal(plain.x_train, permuted.x_train) and torch.equal(plain.x_test, permuted.x_test)
    x_train = plain.x_train.double().numpy()
    np.testing.assert_allclose(
        permuted.y_train.double().numpy() - eq1_noise_free(x_train, EQ1_PERMUTED_INDICES),
        plain.y_train.double().numpy() - eq1_noise_free(x_train),
        atol=2e-6,
    )
    for bad in [(0,) * 17, tuple(range(16)), tuple(range(1, 18))]:
        with pytest.raises(ValueError, match="permutation must hold each of 0 … 16 once"):
            eq1_noise_free(np.zeros((1, 17)), bad)


def _normal_floor_by_hand(noise_std):
    # X ~ N(0, 1). Variances of the terms: sin: (1 − e^{−2})/2; cos: (1 + e^{−2})/2 − e^{−1}; X³: 15; X², and products
    # of two: 2 and 1; e^{−0.1X²}: E = 1.2^{−1/2}, E[·²] = 1.4^{−1/2}; √|X|: E|X| − (E|X|^{1/2})² with E|X| = √(2/π),
    # E|X|^{1/2} = 2^{1/4} Γ(3/4) / √π. Covariances with X (Stein: E[X g(X)] = E[g'(X)]): X: 1; sin X: e^{−1/2};
    # X³: 3; tanh X: E[sech² X]. tanh has no closed form: 200-point Gauss–Hermite quadrature.
    nodes, weights = np.polynomial.hermite_e.hermegauss(200)
    weights = weights / math.sqrt(2 * math.pi)
    e_tanh2, e_sech2 = float(weights @ np.tanh(nodes) ** 2), float(weights @ (1 / np.cosh(nodes) ** 2))
    e_sqrt_abs = 2**0.25 * special.gamma(0.75) / math.sqrt(math.pi)
    variance = (
        2.5**2
        + 1.2**2 * 2
        + 0.8**2 * (1 - math.exp(-2)) / 2
        + 1.5**2 * ((1 + math.exp(-2)) / 2 - math.exp(-1))
        + 0.7**2
        + 0.3**2 * 15
        + (1.4**-0.5 - 1 / 1.2)
        + 1.1**2
        + 0.5**2 * 2
        + 0.9**2 * e_tanh2
        + 0.2**2 * 2
        + 0.6**2 * (math.sqrt(2 / math.pi) - e_sqrt_abs**2)
        + 0.5**2
        + 0.4**2
        + 0.3**2
        + noise_std**2
    )
    explained = 2.5**2 + (0.8 * math.exp(-0.5)) ** 2 + (0.3 * 3) ** 2 + 1.1**2 + (0.9 * e_sech2) ** 2 + 0.4**2 + 0.3**2
    return variance, variance - explained


def test_linear_floor_against_closed_forms():
    variance, floor = eq1_linear_floor("normal", 1.0, 0.1)
    assert (variance, floor) == pytest.approx(_normal_floor_by_hand(0.1), abs=1e-9)
    assert (round(variance, 3), round(floor, 3)) == (14.371, 5.319)  # 37 % of var(y)
    # X ~ U[−1, 1]: E[X²] = 1/3. Linear terms c·X explain all of their c²/3. sin: E[X sin X] = sin 1 − cos 1,
    # E[sin² X] = 1/2 − sin 2/4. X³: E[X⁴] = 1/5, E[X⁶] = 1/7. X²: var = 1/5 − 1/9. cos: E = sin 1,
    # E[cos²] = 1/2 + sin 2/4. e^{−0.1X²}: E[e^{−aX²}] = √(π/a) erf(√a) / 2. tanh: E[tanh²] = 1 − tanh 1,
    # E[X tanh X] = ∫₀¹ x tanh x dx (Gauss–Legendre). √|X|: E = 2/3, E[|X|] = 1/2. Products: (1/3)².
    nodes, weights = np.polynomial.legendre.leggauss(60)
    x_tanh = float(weights @ ((nodes + 1) / 2 * np.tanh((nodes + 1) / 2))) / 2
    e_exp = lambda a: math.sqrt(math.pi / a) * math.erf(math.sqrt(a)) / 2  # noqa: E731
    linear = (2.5**2 + 1.1**2 + 0.4**2 + 0.3**2) / 3
    variance_u = (
        linear
        + 0.8**2 * (0.5 - math.sin(2) / 4)
        + 1.5**2 * (0.5 + math.sin(2) / 4 - math.sin(1) ** 2)
        + 0.3**2 / 7
        + (1.2**2 + 0.5**2 + 0.2**2) * (1 / 5 - 1 / 9)
        + (e_exp(0.2) - e_exp(0.1) ** 2)
        + 0.9**2 * (1 - math.tanh(1))
        + 0.6**2 * (1 / 2 - 4 / 9)
        + (0.7**2 + 0.5**2) / 9
        + 0.1**2
    )
    explained_u = linear + 3 * ((0.8 * (math.sin(1) - math.cos(1))) ** 2 + (0.3 / 5) ** 2 + (0.9 * x_tanh) ** 2)
    assert eq1_linear_floor("uniform", 1.0, 0.1) == pytest.approx((variance_u, variance_u - explained_u), abs=1e-9)
    # Least squares on 400,000 samples reaches the floor (and no lower), permuted inputs or not.
    data = make_eq1_data(400_000, 1, seed=0, noise_std=0.1, permutation=EQ1_PERMUTED_INDICES)
    x = np.hstack([data.x_train.double().numpy(), np.ones((400_000, 1))])
    y = data.y_train.double().numpy()
    residual = y - x @ np.linalg.lstsq(x, y, rcond=None)[0]
    assert float(residual @ residual) / 400_000 == pytest.approx(floor, rel=0.01)
    with pytest.raises(ValueError, match="x_distribution"):
        eq1_linear_floor("laplace")


# ---------------------------------------------------------------------------------------------------------------
# Similar-task targets
# ---------------------------------------------------------------------------------------------------------------


def test_truncated_returns_by_hand_and_brute_force():
    np.testing.assert_allclose(truncated_discounted_returns(np.ones(4), 0.5, 2), [1.5, 1.5, 1.5, 1.0])
    r = np.random.default_rng(0).normal(size=9)
    brute = [sum(0.9**k * r[t + k] for k in range(3) if t + k < len(r)) for t in range(len(r))]
    np.testing.assert_allclose(truncated_discounted_returns(r, 0.9, 3), brute, atol=1e-12)
    np.testing.assert_allclose(
        truncated_discounted_returns(r, 0.9, 100),
        [sum(0.9**k * r[t + k] for k in range(len(r) - t)) for t in range(len(r))],
        atol=1e-12,
    )


# ---------------------------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory):
    """A real (tiny) ReLU PPO run: two updates of 64 steps, a checkpoint after each."""
    run_dir = tmp_path_factory.mktemp("ppo") / "relu_run"
    cfg = PPOConfig(
        run_dir=str(run_dir),
        total_timesteps=128,
        num_steps=64,
        num_minibatches=2,
        update_epochs=1,
        checkpoint_interval=1,
        progress_bar=False,
        tensorboard=False,
        hidden_sizes=(8, 8),
        activation="relu",
        probe_interval=1,
    )
    train(cfg)
    return run_dir


def _save_agent(path, obs_dim, act_dim, activation, config_activation=None, hidden=(8, 8), seed=1):
    agent = Agent(obs_dim, act_dim, hidden, activation)
    cfg = PPOConfig(hidden_sizes=hidden, activation=activation, seed=seed).to_dict()
    if config_activation is not None:
        cfg["activation"] = config_activation
    save_checkpoint(path, {"config": cfg, "agent": agent.state_dict()})
    return agent


def test_load_run_dir_and_file_give_the_newest_critic(ppo_run):
    p = load_pretrained(ppo_run, expected_activation="relu", input_dim=17)
    assert p.source.name == "update_0000002.ckpt" and p.activation == "relu" and p.hidden_sizes == (8, 8)
    assert p.label == "relu:relu_run"
    assert p.provenance == {"env_id": "HalfCheetah-v4", "ppo_seed": 1, "global_step": 128}
    assert [type(m) for m in p.agent.critic] == [nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear]
    state = load_checkpoint(p.source)
    for k, v in p.agent.critic.state_dict().items():
        assert torch.equal(v, state["agent"][f"critic.{k}"])
    older = load_pretrained(ppo_run / "checkpoints" / "update_0000001.ckpt")
    assert older.label == "relu:relu_run/update_0000001"
    assert not torch.equal(older.agent.critic[0].weight, p.agent.critic[0].weight)


def test_pretrained_copy_is_independent_and_random_init_is_seeded(ppo_run):
    p = load_pretrained(ppo_run)
    copy = pretrained_critic(p)
    with torch.no_grad():
        copy[0].weight.add_(1.0)
    assert not torch.equal(copy[0].weight, p.agent.critic[0].weight)
    r0, r0b, r1 = random_critic(p, 0), random_critic(p, 0), random_critic(p, 1)
    assert [type(m) for m in r0] == [type(m) for m in p.agent.critic]
    assert all(a.shape == b.shape for a, b in zip(r0.parameters(), p.agent.critic.parameters()))
    assert torch.equal(r0[0].weight, r0b[0].weight) and not torch.equal(r0[0].weight, r1[0].weight)
    assert float(r0[0].bias.detach().abs().sum()) == 0.0  # PPO's init: zero biases
    # Orthogonal init with gain √2: W Wᵀ = 2·I for the 8×17 first layer (rows orthogonal, since 8 < 17).
    torch.testing.assert_close(r0[0].weight @ r0[0].weight.T, 2.0 * torch.eye(8), atol=1e-5, rtol=0)
    t0 = random_critic(p, 0, "torch")
    bound = 1 / math.sqrt(17)  # PyTorch's default: U(±1/√fan_in) for weights (Kaiming a=√5) and biases
    assert float(t0[0].weight.detach().abs().max()) <= bound and float(t0[0].bias.detach().abs().max()) > 0
    assert torch.equal(random_critic(p, 0, "torch")[2].weight, t0[2].weight)
    with pytest.raises(ValueError, match="'ppo' or 'torch'"):
        random_critic(p, 0, "xavier")


def test_loader_errors(tmp_path, ppo_run):
    with pytest.raises(ValueError, match="does not exist"):
        load_pretrained(tmp_path / "nope.ckpt")
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(ValueError, match="without checkpoints"):
        load_pretrained(tmp_path / "empty_run")
    bad = tmp_path / "truncated.ckpt"
    raw = (ppo_run / "checkpoints" / "update_0000002.ckpt").read_bytes()
    bad.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="corrupt checkpoint.*truncated"):
        load_pretrained(bad)
    other = tmp_path / "other.ckpt"
    save_checkpoint(other, {"weights": torch.zeros(3)})
    with pytest.raises(ValueError, match="not a PPO checkpoint"):
        load_pretrained(other)
    no_critic = tmp_path / "no_critic.ckpt"
    save_checkpoint(no_critic, {"config": {"activation": "relu"}, "agent": {"actor_logstd": torch.zeros(1, 6)}})
    with pytest.raises(ValueError, match="lacks critic or actor weights"):
        load_pretrained(no_critic)
    with pytest.raises(ValueError, match="activation mismatch.*'relu'.*'identity'"):
        load_pretrained(ppo_run, expected_activation="identity")
    gelu = tmp_path / "gelu.ckpt"
    _save_agent(gelu, 17, 6, "relu", config_activation="gelu")
    with pytest.raises(ValueError, match="activation 'gelu'"):
        load_pretrained(gelu)
    hopper = tmp_path / "hopper.ckpt"
    _save_agent(hopper, 11, 3, "identity")
    with pytest.raises(ValueError, match="takes 11 inputs, the task has 17"):
        load_pretrained(hopper, input_dim=17)
    with pytest.raises(ValueError, match="takes 11 inputs, task 'eq1' has 17"):
        run_transfer(TransferConfig(checkpoints=(hopper,), tasks=("eq1",), out_dir=tmp_path / "out", seeds=(0, 1)))
    assert not (tmp_path / "out").exists()


def test_identity_checkpoint_keeps_no_act(tmp_path):
    path = tmp_path / "noact.ckpt"
    saved = _save_agent(path, 17, 6, "identity")
    p = load_pretrained(path, expected_activation="identity", input_dim=17)
    assert [type(m) for m in p.agent.critic] == [nn.Linear, nn.Identity, nn.Linear, nn.Identity, nn.Linear]
    assert [type(m) for m in random_critic(p, 0)] == [type(m) for m in p.agent.critic]
    x = torch.randn(5, 17)
    assert torch.equal(pretrained_critic(p)(x), saved.critic(x))


# ---------------------------------------------------------------------------------------------------------------
# Training one regressor
# ---------------------------------------------------------------------------------------------------------------


def test_train_regressor_learns_and_dead_units_stay_dead():
    torch.manual_seed(0)
    x = torch.randn(64, 3)
    y = x @ torch.tensor([1.0, -2.0, 0.5])
    data = RegressionData(x, y, x[:16], y[:16])
    model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 1))
    with torch.no_grad():
        model[0].bias[0] = -100.0  # unit 0 never fires on this data: dormant with an exactly-zero gradient
    curves, probes = train_regressor(
        model, data, lr=0.01, epochs=5, batch_size=1000, seed=0, probe_every=2, thresholds=(0.0,)
    )
    assert [r["epoch"] for r in curves] == list(range(6))
    assert curves[-1]["train_mse"] < curves[0]["train_mse"]
    first = [r for r in probes if r["layer"] == "0"]
    assert [r["epoch"] for r in first] == [0, 2, 4, 5]
    assert all(
        r["still_dormant"] == 1.0 and r["still_zero_gradient"] == 1.0 and r["dormant_ratio"] >= 1 / 8 for r in first
    )
    assert float(model[0].bias.detach()[0]) == -100.0  # Adam never moved it
    net = [r for r in probes if r["layer"] == "network"]
    assert len(net) == 4 and all(r["width"] == 8 for r in net)


def test_train_regressor_is_seeded():
    data = make_eq1_data(50, 20, seed=0)
    runs = []
    for _ in range(2):
        torch.manual_seed(5)
        model = nn.Sequential(nn.Linear(17, 4), nn.Tanh(), nn.Linear(4, 1))
        runs.append(train_regressor(model, data, 0.01, 3, 16, seed=1)[0])
    assert runs[0] == runs[1]


# ---------------------------------------------------------------------------------------------------------------
# Rollouts and end to end
# ---------------------------------------------------------------------------------------------------------------


def test_return_targets_are_linear_in_the_reward_weights(ppo_run):
    agent = load_pretrained(ppo_run).agent
    base = dict(horizon=3, states_per_episode=5, state_stride=2, gamma=0.9)
    run_only = rollout_returns(agent, ReturnTaskSpec(reward_run_weight=1.0, reward_ctrl_weight=0.0, **base), 1, seed=4)
    ctrl_only = rollout_returns(agent, ReturnTaskSpec(reward_run_weight=0.0, reward_ctrl_weight=1.0, **base), 1, seed=4)
    both = rollout_returns(agent, ReturnTaskSpec(reward_run_weight=1.0, reward_ctrl_weight=1.0, **base), 1, seed=4)
    assert both[0].shape == (5, 17) and both[1].shape == (5,)
    np.testing.assert_array_equal(both[0], run_only[0])  # same seed, same states
    np.testing.assert_allclose(both[1], run_only[1] + ctrl_only[1], atol=1e-9)
    assert (ctrl_only[1] < 0).all()  # the control cost only ever subtracts


def _read(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_end_to_end_tiny(tmp_path, ppo_run):
    cfg = TransferConfig(
        checkpoints=(ppo_run,),
        out_dir=tmp_path / "out",
        seeds=(0, 1),
        lrs=(0.01,),
        epochs=3,
        batch_size=16,
        n_train=40,
        n_test=30,
        similar_task=ReturnTaskSpec(horizon=5, states_per_episode=20, state_stride=1),
        probe_every=2,
    )
    result = run_transfer(cfg)
    curves, probes, summary, floors = (
        _read(tmp_path / "out" / f"{n}.csv") for n in ("curves", "probe", "summary", "linear_floor")
    )
    assert (tmp_path / "out" / "config.json").exists()
    assert len(curves) == 3 * 3 * 1 * 2 * 4  # tasks × inits × lrs × seeds × epochs 0..3
    inits = ("pretrained", "random_ppo", "random_torch")
    assert {(r["task"], r["init"]) for r in curves} == {
        (t, i) for t in ("eq1", "eq1_permuted", "similar") for i in inits
    }
    assert {(r["arm"], r["ppo_run"], r["ppo_seed"]) for r in curves} == {("relu", "relu:relu_run", "1")}
    assert len(summary) == 3 * 2 * 2 and {r["metric"] for r in summary} == {
        "final_test_mse",
        "mean_test_mse_over_epochs",
    }
    assert {(r["random_init"], r["n_runs"], r["seeds_per_run"], r["unit"]) for r in summary} == {
        ("ppo", "1", "2", "PPO run"),
        ("torch", "1", "2", "PPO run"),
    }
    assert [(r["distribution"], r["used"]) for r in floors] == [("normal", "1"), ("uniform", "0")]
    assert float(floors[0]["linear_floor_mse"]) == pytest.approx(eq1_linear_floor("normal", 1.0, 0.1)[1], rel=1e-12)
    assert {r["epoch"] for r in probes} == {"0", "2", "3"}
    # Epoch 0 of the pretrained arm on Eq. 1 is the checkpoint's critic on raw X (our default), the data drawn from
    # the seed of (PPO seed 1, regression seed 1); the correlation is that of its output with the test target.
    p = load_pretrained(ppo_run)
    data = make_eq1_data(40, 30, seed=replicate_seed(1, 1))
    with torch.no_grad():
        out = p.agent.critic(data.x_test).squeeze(-1).double()
    y = data.y_test.double()
    row = next(
        r for r in result["curves"] if (r["task"], r["init"], r["seed"], r["epoch"]) == ("eq1", "pretrained", 1, 0)
    )
    assert row["test_mse"] == pytest.approx(float(((out - y) ** 2).mean()), rel=1e-6)
    assert row["output_target_corr"] == pytest.approx(float(torch.corrcoef(torch.stack([out, y]))[0, 1]), abs=1e-12)
    # Recomputing from scratch writes the same curves (everything is seeded).
    shutil.copy(tmp_path / "out" / "curves.csv", tmp_path / "first.csv")
    shutil.rmtree(tmp_path / "out" / "parts")
    run_transfer(cfg)
    assert (tmp_path / "first.csv").read_bytes() == (tmp_path / "out" / "curves.csv").read_bytes()


def _tiny_eq1(out, ppo_run, **changes):
    settings = dict(
        checkpoints=(ppo_run,),
        tasks=("eq1",),
        out_dir=out,
        seeds=(0, 1, 2),
        lrs=(0.01,),
        epochs=2,
        batch_size=16,
        n_train=40,
        n_test=30,
        probe_every=1,
    )
    return TransferConfig(**{**settings, **changes})


def test_parallel_seeds_equal_serial_and_an_interrupted_run_resumes(tmp_path, ppo_run):
    from ocp.experiments import LocalExecutor, executor_map

    serial = _tiny_eq1(tmp_path / "serial", ppo_run)
    run_transfer(serial)
    parts = sorted(p.name for p in (tmp_path / "serial" / "parts").iterdir())
    assert parts == ["seed_0.json", "seed_1.json", "seed_2.json"]

    # Two worker processes give byte-identical tables (each seed runs with cfg.threads torch threads wherever it is).
    pool = LocalExecutor(workers=2)
    try:
        run_transfer(_tiny_eq1(tmp_path / "pool", ppo_run), map_seeds=executor_map(pool, "seeds", poll_s=0.1))
    finally:
        pool.close()
    for name in ("curves.csv", "probe.csv", "summary.csv"):
        assert (tmp_path / "serial" / name).read_bytes() == (tmp_path / "pool" / name).read_bytes()

    # A run killed after seed 0 and 2: only seed 1 is computed again, and the tables are the same.
    (tmp_path / "serial" / "parts" / "seed_1.json").unlink()
    (tmp_path / "serial" / "summary.csv").unlink()
    computed = []

    def recording_map(fn, cfgs, seeds):
        computed.extend(seeds)
        return map(fn, cfgs, seeds)

    run_transfer(serial, map_seeds=recording_map)
    assert computed == [1]
    assert (tmp_path / "serial" / "curves.csv").read_bytes() == (tmp_path / "pool" / "curves.csv").read_bytes()
    assert json.loads((tmp_path / "serial" / "config.json").read_text())["seeds_computed_now"] == [1]


def test_parts_from_other_settings_or_half_written_are_recomputed(tmp_path, ppo_run):
    out = tmp_path / "out"
    run_transfer(_tiny_eq1(out, ppo_run))
    (out / "parts" / "seed_2.json").write_text('{"key": "')  # a torn file
    computed = []

    def recording_map(fn, cfgs, seeds):
        computed.extend(seeds)
        return map(fn, cfgs, seeds)

    run_transfer(_tiny_eq1(out, ppo_run), map_seeds=recording_map)
    assert computed == [2]
    computed.clear()
    run_transfer(_tiny_eq1(out, ppo_run, epochs=3), map_seeds=recording_map)  # another setting: nothing reused
    assert computed == [0, 1, 2]
    assert {int(r["epoch"]) for r in _read(out / "curves.csv")} == {0, 1, 2, 3}


def test_cli_help_lists_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for name in TransferConfig.__dataclass_fields__:
        assert "--" + name.replace("_", "-") in text
    assert "default: 200" in text and "default: 0.01 0.005" in text


def test_input_normaliser_and_return_scale_options(ppo_run):
    p = load_pretrained(ppo_run)
    data = make_eq1_data(20, 10, seed=0)
    same = _prepare(data, p, "raw", "none")
    assert torch.equal(same.x_train, data.x_train) and torch.equal(same.y_test, data.y_test)
    prepared = _prepare(data, p, "checkpoint", "checkpoint")
    rms = p.agent.obs_rms
    expected_x = ((data.x_test.double() - rms.mean) / torch.sqrt(rms.var + 1e-8)).clamp(-10, 10).float()
    torch.testing.assert_close(prepared.x_test, expected_x)
    scale = math.sqrt(float(p.agent.ret_rms.var) + 1e-8)
    torch.testing.assert_close(prepared.y_train, data.y_train / scale)


def test_similar_task_with_another_policy(tmp_path, ppo_run):
    older = ppo_run / "checkpoints" / "update_0000001.ckpt"
    cfg = TransferConfig(
        checkpoints=(ppo_run,),
        tasks=("similar",),
        out_dir=tmp_path / "out",
        seeds=(0, 1),
        lrs=(0.01,),
        epochs=1,
        n_train=10,
        n_test=10,
        similar_task=ReturnTaskSpec(horizon=3, states_per_episode=10, state_stride=1),
        similar_policy=older,
        probe_every=0,
        random_inits=("ppo",),
    )
    result = run_transfer(cfg)
    assert len(result["curves"]) == 2 * 2 * 2 and result["probe"] == []
    groups = json.loads((tmp_path / "out" / "config.json").read_text())["checkpoints"]
    assert groups == {"relu:relu_run": str(ppo_run / "checkpoints" / "update_0000002.ckpt")}


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(checkpoints=()), "at least one checkpoint"),
        (dict(labels=("a", "b")), "2 labels for 1 checkpoints"),
        (dict(expected_activations=("relu", "tanh")), "2 expected activations"),
        (dict(arms=("a", "b")), "2 arms for 1 checkpoints"),
        (dict(seeds=(3, 3)), ">= 1 distinct seeds"),
        (dict(seeds=(-1,)), "seeds must be >= 0"),
        (dict(lrs=(0.01, 0.0)), "learning rates must be > 0"),
        (dict(tasks=("eq2",)), "tasks must be distinct of eq1, eq1_permuted, similar"),
        (dict(random_inits=("ppo", "xavier")), "random_inits must be distinct of ppo, torch"),
        (dict(eq1_permutation=(0,) * 17), "permutation must hold each of 0 … 16 once"),
        (dict(x_distribution="laplace"), "x_distribution must be one of"),
        (dict(x_scale=0.0), "x_scale > 0"),
        (dict(similar_task=ReturnTaskSpec(gamma=1.5)), "gamma must be in"),
        (dict(alpha=0.5), "alpha must be in"),
    ],
)
def test_config_validation(tmp_path, change, message):
    cfg = TransferConfig(**{"checkpoints": (tmp_path / "x.ckpt",), **change})
    with pytest.raises(ValueError, match=message):
        cfg.validate()


def test_a_checkpoint_written_during_the_run_does_not_reach_the_seeds(tmp_path, ppo_run):
    # Workers get the checkpoint files resolved at the start: a newer checkpoint appearing in the run directory while
    # seeds run (a training still going) must not give later seeds a different critic.
    run_dir = tmp_path / "run"
    shutil.copytree(ppo_run, run_dir)
    reference = run_transfer(_tiny_eq1(tmp_path / "ref", run_dir))

    def map_with_a_new_checkpoint(fn, cfgs, seeds):
        shutil.copy(run_dir / "checkpoints" / "update_0000001.ckpt", run_dir / "checkpoints" / "update_0000003.ckpt")
        assert load_pretrained(run_dir).source.name == "update_0000003.ckpt"  # what a re-resolving worker would read
        return map(fn, cfgs, seeds)

    result = run_transfer(_tiny_eq1(tmp_path / "out", run_dir), map_seeds=map_with_a_new_checkpoint)
    assert result["curves"] == reference["curves"]
    keys = {json.loads(p.read_text())["key"] for p in (tmp_path / "out" / "parts").iterdir()}
    assert len(keys) == 1


def test_every_ppo_run_of_an_arm_is_a_replicate_with_its_own_regression_data(tmp_path):
    # Two critics of one arm from PPO seeds 1 and 2: two runs in the summary, and regression seed s of each run draws
    # other data and other random inits (seeded by (PPO seed, s)), so the runs are independent replicates.
    paths = [tmp_path / f"run{k}.ckpt" for k in (1, 2)]
    for k, path in zip((1, 2), paths):
        _save_agent(path, 17, 6, "relu", seed=k)
    cfg = TransferConfig(
        checkpoints=tuple(paths),
        labels=("r1", "r2"),
        arms=("relu-arm", "relu-arm"),
        tasks=("eq1",),
        out_dir=tmp_path / "out",
        seeds=(0,),
        lrs=(0.01,),
        epochs=1,
        n_train=20,
        n_test=10,
        probe_every=0,
    )
    result = run_transfer(cfg)
    assert {(r["arm"], r["n_runs"], r["seeds_per_run"]) for r in result["summary"]} == {("relu-arm", 2, 1)}
    start = {(r["ppo_run"], r["init"]): r["test_mse"] for r in result["curves"] if r["epoch"] == 0}
    assert start[("r1", "random_ppo")] != start[("r2", "random_ppo")]
    assert replicate_seed(1, 0) != replicate_seed(2, 0) and replicate_seed(1, 0) == replicate_seed(1, 0)
    twin = dataclasses.replace(cfg, checkpoints=(paths[0], paths[0]), out_dir=tmp_path / "twin")
    with pytest.raises(ValueError, match="same PPO seed"):
        run_transfer(twin)
