"""The hand-derived PPO gradient against torch autograd on the loss definitions the probe uses, and a whole update
against a torch reference loop (autograd, torch.optim.Adam, clip_grad_norm_)."""

import numpy as np
import pytest
import torch

from ocp.agent import ACTIVATIONS, Agent
from ocp.flat_adam import FlatAdam
from ocp.interventions import make_intervention
from ocp.ppo import normalize_advantages, policy_loss, value_loss
from ocp.update import PPOUpdate, UpdateSettings

OBS, ACT = 7, 3


def settings(**kw) -> UpdateSettings:
    base = dict(
        update_epochs=1,
        num_minibatches=1,
        norm_adv=True,
        clip_coef=0.2,
        clip_vloss=True,
        ent_coef=0.0,
        vf_coef=0.5,
        max_grad_norm=0.5,
        target_kl=None,
    )
    base.update(kw)
    return UpdateSettings(**base)


def make_batch(agent: Agent, n: int, seed: int) -> dict[str, np.ndarray]:
    """A batch whose ratios fall below, inside and above the clip range, and whose old values lie within and beyond
    ±0.2 of the new ones, so every branch of both losses is taken."""
    rng = np.random.default_rng(seed)
    obs = rng.standard_normal((n, OBS)).astype(np.float32)
    actions = rng.standard_normal((n, ACT)).astype(np.float32)
    with torch.no_grad():
        logprob, _, value = agent.evaluate_actions(torch.from_numpy(obs), torch.from_numpy(actions))
    return {
        "obs": obs,
        "actions": actions,
        "logprobs": (logprob.numpy() - rng.uniform(-0.5, 0.5, n)).astype(np.float32),
        "values": (value.numpy() + rng.uniform(-0.6, 0.6, n)).astype(np.float32),
        "advantages": (rng.standard_normal(n) * 2 + 0.3).astype(np.float32),
        "returns": (value.numpy() + rng.standard_normal(n)).astype(np.float32),
    }


def torch_loss(agent: Agent, batch: dict[str, np.ndarray], s: UpdateSettings) -> dict[str, torch.Tensor]:
    t = {k: torch.from_numpy(v) for k, v in batch.items()}
    logprob, entropy, new_values = agent.evaluate_actions(t["obs"], t["actions"])
    adv = normalize_advantages(t["advantages"]) if s.norm_adv else t["advantages"]
    pg = policy_loss(logprob, t["logprobs"], adv, s.clip_coef)
    v = value_loss(new_values, t["values"], t["returns"], s.clip_coef, s.clip_vloss)
    ent = entropy.mean()
    return {"loss": pg - s.ent_coef * ent + s.vf_coef * v, "policy_loss": pg, "value_loss": v, "entropy": ent}


def agent_with_optimizer(activation: str, seed: int = 0) -> tuple[Agent, FlatAdam]:
    torch.manual_seed(seed)
    agent = Agent(OBS, ACT, hidden_sizes=(16, 12), activation=activation, init_log_std=-0.3)
    with torch.no_grad():
        for net in (agent.actor, agent.critic):
            for m in net:
                if isinstance(m, torch.nn.Linear):
                    m.weight.mul_(3.0)  # an actor output far from 0, so the ratios spread
                    m.bias.normal_(0.0, 0.3)
    return agent, FlatAdam(agent.parameters(), lr=3e-4, eps=1e-5)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize(
    "options",
    [dict(), dict(norm_adv=False), dict(clip_vloss=False), dict(ent_coef=0.01, vf_coef=1.3, clip_coef=0.1)],
    ids=["cleanrl", "raw-advantages", "no-value-clip", "entropy-bonus"],
)
def test_minibatch_gradient_matches_autograd(activation, options):
    agent, opt = agent_with_optimizer(activation)
    s = settings(**options)
    batch = make_batch(agent, 96, seed=1)
    ours = PPOUpdate(agent, opt, s).minibatch_gradient(batch)
    ref = torch_loss(agent, batch, s)
    grads = torch.autograd.grad(ref["loss"], list(agent.parameters()))
    for name in ("policy_loss", "value_loss", "entropy"):  # means of O(1) terms: float32 rounding is ~1e-7 absolute
        assert ours[name] == pytest.approx(ref[name].item(), rel=1e-5, abs=1e-6), name
    for p, g in zip(agent.parameters(), grads):
        scale = float(g.abs().max()) + 1e-12
        np.testing.assert_allclose(opt.grad_view(p), g.numpy(), rtol=1e-4, atol=1e-5 * scale)
    # The batch reaches every branch: ratios on both sides of the clip range, value deltas beyond ±ε.
    with torch.no_grad():
        logprob, _, value = agent.evaluate_actions(torch.from_numpy(batch["obs"]), torch.from_numpy(batch["actions"]))
    ratio = torch.exp(logprob - torch.from_numpy(batch["logprobs"]))
    eps = s.clip_coef
    assert (ratio < 1 - eps).any() and (ratio > 1 + eps).any() and ((ratio - 1).abs() < eps).any()
    assert ((value - torch.from_numpy(batch["values"])).abs() > eps).any()
    assert ours["clipfrac"] == int(((ratio - 1).abs() > eps).sum()) / len(ratio)
    assert all(type(v) is float for v in ours.values()), {k: type(v) for k, v in ours.items()}  # plain numbers in CSV
    logratio = logprob - torch.from_numpy(batch["logprobs"])
    # Both are means of differences of float32 log-densities of magnitude ~10, each rounded to ~1e-6 (by
    # CPU-dependent kernels), so the mean of the differences is only that exact in absolute terms.
    assert ours["approx_kl"] == pytest.approx(float(((ratio - 1) - logratio).mean()), rel=1e-4, abs=4e-6)
    assert ours["old_approx_kl"] == pytest.approx(float((-logratio).mean()), rel=1e-4, abs=4e-6)


def test_value_loss_tie_splits_the_gradient_as_torch_does():
    """V = V_old exactly: the clipped and unclipped squares tie, torch.maximum gives each half, and clamp passes
    its half on, so the gradient is the plain one."""
    agent, opt = agent_with_optimizer("tanh")
    s = settings()
    batch = make_batch(agent, 8, seed=2)
    update = PPOUpdate(agent, opt, s)
    batch["values"] = update.critic.forward(batch["obs"])[:, 0].copy()
    update.minibatch_gradient(batch)
    ref = torch_loss(agent, batch, s)
    grads = torch.autograd.grad(ref["loss"], list(agent.critic.parameters()))
    for p, g in zip(agent.critic.parameters(), grads):
        np.testing.assert_allclose(opt.grad_view(p), g.numpy(), rtol=1e-4, atol=1e-7)


def reference_update(
    agent: Agent,
    batch: dict[str, np.ndarray],
    s: UpdateSettings,
    generator: torch.Generator,
    intervention=None,
    networks=None,
) -> None:
    """The update as a plain torch loop: autograd, clip_grad_norm_, torch.optim.Adam."""
    opt = torch.optim.Adam(agent.parameters(), lr=3e-4, eps=1e-5, foreach=False)
    size = len(batch["obs"])
    mb = size // s.num_minibatches
    for _ in range(s.update_epochs):
        order = torch.randperm(size, generator=generator).numpy()
        for start in range(0, size, mb):
            part = {k: v[order[start : start + mb]] for k, v in batch.items()}
            loss = torch_loss(agent, part, s)["loss"]
            if intervention is not None and (reg := intervention.regulariser(networks)) is not None:
                loss = loss + reg
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(agent.parameters(), s.max_grad_norm)
            opt.step()
            if intervention is not None:
                intervention.after_step(networks)


@pytest.mark.parametrize("intervention", ["none", "l2_init", "weight_clipping"])
def test_update_matches_a_torch_reference_loop(intervention):
    s = settings(update_epochs=2, num_minibatches=3)
    results = []
    for use_reference in (False, True):
        agent, opt = agent_with_optimizer("relu")
        networks = {"actor": agent.actor, "critic": agent.critic}
        hook = None
        if intervention != "none":
            hook = make_intervention(intervention, **({"coef": 0.5} if intervention == "l2_init" else {"kappa": 1.0}))
            hook.bind(networks)
        batch = make_batch(agent, 48, seed=3)
        generator = torch.Generator().manual_seed(7)
        if use_reference:
            reference_update(agent, batch, s, generator, hook, networks)
        else:
            PPOUpdate(agent, opt, s, hook, networks).run(batch, generator)
        results.append([p.detach().clone() for p in agent.parameters()])
    moved = 0
    for ours, ref, start in zip(*results, agent_with_optimizer("relu")[0].parameters()):
        torch.testing.assert_close(ours, ref, rtol=0, atol=1e-6)
        moved += int((ours != start.detach()).sum())
    assert moved > 0.9 * sum(p.numel() for p in results[0])  # six Adam steps moved (almost) every parameter


def test_update_statistics_and_target_kl_stop():
    agent, opt = agent_with_optimizer("tanh")
    batch = make_batch(agent, 40, seed=4)
    stats = PPOUpdate(agent, opt, settings(update_epochs=5, num_minibatches=4, target_kl=1e-9)).run(
        batch, torch.Generator().manual_seed(0)
    )
    assert stats["epochs_run"] == 1 and int(opt.state[agent.actor_logstd]["step"]) == 4
    stats = PPOUpdate(agent, opt, settings(update_epochs=3, num_minibatches=4)).run(
        batch, torch.Generator().manual_seed(0)
    )
    assert stats["epochs_run"] == 3 and int(opt.state[agent.actor_logstd]["step"]) == 4 + 12
    assert set(stats) == {
        "policy_loss",
        "value_loss",
        "entropy",
        "clipfrac",
        "old_approx_kl",
        "approx_kl",
        "epochs_run",
    }
