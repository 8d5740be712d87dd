"""Each intervention changes exactly the chosen entries in the specified way and patches Adam's state to match."""

import math

import pytest
import torch
from torch import nn

from ocp.agent import mlp
from ocp.flat_adam import FlatAdam
from ocp.interventions import GradientReDo, L2Init, ReDo, ShrinkPerturb, WeightClipping, make_intervention
from ocp.probe import PlasticityProbe


def setup():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 1))
    x = torch.randn(32, 3)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(2):  # populate Adam's moments
        opt.zero_grad()
        net(x).square().mean().backward()
        opt.step()
    with torch.no_grad():
        net[0].weight[1].zero_()
        net[0].bias[1] = -1.0  # unit (0, 1) dead: dormant and zero-gradient
        net[4].weight[0, 2] = 0.0  # unit (2, 2) gets no gradient through its outgoing weight
    return net, x, opt


def snapshot(net, opt):
    params = {n: p.detach().clone() for n, p in net.named_parameters()}
    state = {n: {k: v.clone() for k, v in opt.state[p].items()} for n, p in net.named_parameters()}
    return params, state


def probe(net, x):
    return PlasticityProbe(net).measure(x, lambda out: out.square().mean())


def assert_only_changed(before, after, allowed):
    """Every entry outside ``allowed`` (name -> bool mask) is bit-identical."""
    for name, old in before.items():
        keep = ~allowed.get(name, torch.zeros_like(old, dtype=torch.bool))
        assert torch.equal(old[keep], after[name][keep]), name


def test_redo_recycles_exactly_the_dormant_unit():
    net, x, opt = setup()
    result = probe(net, x)
    assert result.layer("0").dormant_mask(0.0).tolist() == [False, True, False, False]
    layer2_dormant = result.layer("2").dormant_mask(0.0)
    params, state = snapshot(net, opt)
    out_before = net(x).detach()
    log = ReDo(every=1, tau=0.0).on_schedule({"critic": net}, opt, {"critic": result}, torch.Generator().manual_seed(0))
    assert log == {"critic/units_reset": 1.0 + float(layer2_dormant.sum())}

    d0, d2 = result.layer("0").dormant_mask(0.0), layer2_dormant
    changed = {
        "0.weight": d0[:, None].expand(4, 3),
        "0.bias": d0,
        "2.weight": d0[None, :].expand(3, 4) | d2[:, None].expand(3, 4),
        "2.bias": d2,
        "4.weight": d2[None, :],
    }
    new = dict(net.named_parameters())
    assert_only_changed(params, new, changed)
    assert not torch.equal(new["0.weight"][1], params["0.weight"][1])  # fresh incoming weights
    assert new["0.bias"][1] == 0.0 and (new["2.weight"][:, 1] == 0).all()
    # Zero outgoing weights: the network's function is unchanged at the moment of the reset.
    torch.testing.assert_close(net(x), out_before, rtol=0, atol=0)
    for name, p in net.named_parameters():
        st = opt.state[p]
        for key in ("exp_avg", "exp_avg_sq"):
            m = changed.get(name)
            if m is not None:
                assert (st[key][m] == 0).all(), (name, key)
                assert torch.equal(st[key][~m], state[name][key][~m]), (name, key)
            else:
                assert torch.equal(st[key], state[name][key]), (name, key)
        assert torch.equal(st["step"], state[name]["step"])
    # The optimiser still holds the live parameters.
    assert [id(p) for p in opt.param_groups[0]["params"]] == [id(p) for p in net.parameters()]


def _flat_adam_setup():
    """``setup()``'s network and batch trained by ``FlatAdam`` instead (2 steps, shared count 2)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 1))
    x = torch.randn(32, 3)
    opt = FlatAdam(net.parameters(), lr=1e-3)
    for _ in range(2):
        grads = torch.autograd.grad(net(x).square().mean(), list(net.parameters()))
        for p, g in zip(net.parameters(), grads):
            opt.grad_view(p)[...] = g.numpy()
        opt.step()
    with torch.no_grad():
        net[0].weight[1].zero_()
        net[0].bias[1] = -1.0
        net[4].weight[0, 2] = 0.0
    return net, x, opt


def _entry_steps(net, opt):
    steps, out = opt.state_dict()["entry_steps"], {}
    for name, p in net.named_parameters():
        offset, n = opt._slices[id(p)]
        out[name] = steps[offset : offset + n].view(p.shape)
    return out


def test_redo_restarts_adam_step_counts_as_chosen():
    # reset_entries: exactly the entries whose moments are zeroed start again at t = 0; the rest keep t = 2.
    net, x, opt = _flat_adam_setup()
    result = probe(net, x)
    d0, d2 = result.layer("0").dormant_mask(0.0), result.layer("2").dormant_mask(0.0)
    assert d0.tolist() == [False, True, False, False]
    ReDo(every=1, tau=0.0, adam_step="reset_entries").on_schedule(
        {"c": net}, opt, {"c": result}, torch.Generator().manual_seed(0)
    )
    restarted = {
        "0.weight": d0[:, None].expand(4, 3),
        "0.bias": d0,
        "2.weight": d0[None, :].expand(3, 4) | d2[:, None].expand(3, 4),
        "2.bias": d2,
        "4.weight": d2[None, :].expand(1, 3),
        "4.bias": torch.zeros(1, dtype=torch.bool),
    }
    for name, steps in _entry_steps(net, opt).items():
        assert torch.equal(steps, torch.where(restarted[name], 0.0, 2.0).double()), name
        assert (opt.state[dict(net.named_parameters())[name]]["exp_avg"][restarted[name]] == 0).all()
    assert int(opt.state[net[0].weight]["step"]) == 2

    # reset_tensors (timoklein/redo): whole tensors of every hidden layer and of the layer after it, the output bias
    # excepted, whether or not a unit there was recycled; FlatAdam and torch's Adam alike.
    net, x, opt = _flat_adam_setup()
    ReDo(every=1, tau=0.0, adam_step="reset_tensors").on_schedule(
        {"c": net}, opt, {"c": probe(net, x)}, torch.Generator()
    )
    assert {n: s.unique().tolist() for n, s in _entry_steps(net, opt).items()} == {
        "0.weight": [0.0],
        "0.bias": [0.0],
        "2.weight": [0.0],
        "2.bias": [0.0],
        "4.weight": [0.0],
        "4.bias": [2.0],
    }
    net, x, opt = setup()
    ReDo(every=1, tau=0.0, adam_step="reset_tensors").on_schedule(
        {"c": net}, opt, {"c": probe(net, x)}, torch.Generator()
    )
    assert {n: float(opt.state[p]["step"]) for n, p in net.named_parameters()} == {
        "0.weight": 0.0,
        "0.bias": 0.0,
        "2.weight": 0.0,
        "2.bias": 0.0,
        "4.weight": 0.0,
        "4.bias": 2.0,
    }

    # keep (the default): the shared count stays and no per-entry count is created.
    net, x, opt = _flat_adam_setup()
    ReDo(every=1, tau=0.0).on_schedule({"c": net}, opt, {"c": probe(net, x)}, torch.Generator())
    assert opt.state_dict()["entry_steps"] is None and int(opt.state[net[0].weight]["step"]) == 2


def test_redo_step_restart_refusals():
    net, x, opt = setup()
    params, _ = snapshot(net, opt)
    with pytest.raises(ValueError, match="one step count per tensor"):
        ReDo(every=1, tau=0.0, adam_step="reset_entries").on_schedule(
            {"c": net}, opt, {"c": probe(net, x)}, torch.Generator()
        )
    assert all(torch.equal(p, params[n]) for n, p in net.named_parameters())  # refused before any edit
    with pytest.raises(ValueError, match="adam_step must be one of"):
        ReDo(adam_step="zero")
    with pytest.raises(ValueError, match="needs mode='reset'"):
        GradientReDo(mode="perturb", adam_step="reset_entries")
    assert GradientReDo(adam_step="reset_tensors").adam_step == "reset_tensors"


def test_gradient_redo_selects_zero_gradient_units_and_perturb_keeps_outgoing_weights():
    net, x, opt = setup()
    result = probe(net, x)
    zg = result.layer("2").zero_gradient_mask(0.0)
    assert zg[2] and not result.layer("2").dormant_mask(0.0)[2]  # live but gradient-free
    params, state = snapshot(net, opt)
    GradientReDo(every=1, tau=0.0, mode="perturb", noise_scale=0.5).on_schedule(
        {"critic": net}, opt, {"critic": result}, torch.Generator().manual_seed(1)
    )
    rows0 = result.layer("0").zero_gradient_mask(0.0)
    changed = {"0.weight": rows0[:, None].expand(4, 3), "2.weight": zg[:, None].expand(3, 4)}
    new = dict(net.named_parameters())
    assert_only_changed(params, new, changed)
    assert not torch.equal(new["2.weight"][2], params["2.weight"][2])
    for name, p in net.named_parameters():  # perturbation leaves Adam alone
        assert all(torch.equal(opt.state[p][k], state[name][k]) for k in ("exp_avg", "exp_avg_sq"))


def test_gradient_redo_reset_mode_zeroes_outgoing_weights():
    net, x, opt = setup()
    result = probe(net, x)
    GradientReDo(every=1, tau=0.0).on_schedule(
        {"critic": net}, opt, {"critic": result}, torch.Generator().manual_seed(1)
    )
    assert net[4].weight[0, 2] == 0 and opt.state[net[4].weight]["exp_avg"][0, 2] == 0


def test_shrink_perturb_exact_and_fresh_noise():
    net, _, opt = setup()
    params, _ = snapshot(net, opt)
    ShrinkPerturb(every=1, shrink=0.5, perturb=0.0).on_schedule({"n": net}, opt, {}, torch.Generator().manual_seed(0))
    for name, p in net.named_parameters():
        torch.testing.assert_close(p.detach(), 0.5 * params[name], rtol=0, atol=0)
    g = torch.Generator().manual_seed(0)
    sp = ShrinkPerturb(every=1, shrink=1.0, perturb=0.1)
    first = net[0].weight.detach().clone()
    sp.on_schedule({"n": net}, opt, {}, g)
    delta1 = net[0].weight.detach() - first
    second = net[0].weight.detach().clone()
    sp.on_schedule({"n": net}, opt, {}, g)
    delta2 = net[0].weight.detach() - second
    assert not torch.allclose(delta1, delta2)  # fresh noise each time, not a fixed perturbation
    # A plain nn.Linear's own initialisation is PyTorch's default: uniform within 1/√fan_in (fan-in 3 here).
    assert delta1.abs().max() <= 0.1 / math.sqrt(3) and delta1.abs().max() > 0.05 / math.sqrt(3)


def test_fresh_weights_come_from_each_layer_of_the_agent_its_own_initialisation():
    """Shrink & perturb on the PPO actor: the noise of each layer is p times that layer's own orthogonal
    initialisation, gain √2 for the hidden layers and 0.01 for the output layer."""
    actor = mlp(5, (8, 6), 3, "tanh", out_gain=0.01)
    opt = torch.optim.Adam(actor.parameters(), lr=1e-3)
    before = [actor[i].weight.detach().clone() for i in (0, 2, 4)]
    ShrinkPerturb(every=1, shrink=1.0, perturb=0.1).on_schedule(
        {"actor": actor}, opt, {}, torch.Generator().manual_seed(0)
    )
    deltas = [actor[i].weight.detach() - b for i, b in zip((0, 2, 4), before)]
    # (8, 5) and (6, 8): tall or wide orthogonal matrices of gain g, times p: Q Qᵀ or Qᵀ Q = (p g)² I.
    torch.testing.assert_close(deltas[0].T @ deltas[0], 0.02 * torch.eye(5), atol=1e-6, rtol=0)
    torch.testing.assert_close(deltas[1] @ deltas[1].T, 0.02 * torch.eye(6), atol=1e-6, rtol=0)
    torch.testing.assert_close(deltas[2] @ deltas[2].T, (0.1 * 0.01) ** 2 * torch.eye(3), atol=1e-10, rtol=0)


def test_l2_init_regulariser_value():
    net, _, _ = setup()
    reg = L2Init(coef=0.5)
    reg.bind({"n": net})
    assert reg.regulariser({"n": net}).item() == 0.0
    with torch.no_grad():
        net[0].weight[0, :2] += 1.0
        net[2].bias[0] -= 2.0
    assert reg.regulariser({"n": net}).item() == pytest.approx(0.5 * (2 * 1.0 + 4.0))


def test_weight_clipping_bounds():
    """Elsayed et al.'s bound κ/√fan_in for every layer, on weights and biases alike."""
    net, _, _ = setup()
    clip = WeightClipping(kappa=1.5)
    clip.bind({"n": net})
    assert clip.state_dict()["bounds"]["n"] == [1.5 / math.sqrt(3), 1.5 / 2.0, 1.5 / math.sqrt(3)]  # fan-in 3, 4, 3
    bound0 = 1.5 / math.sqrt(3)
    with torch.no_grad():
        net[0].weight[0, 0] = 10.0
        net[0].weight[0, 1] = -10.0
        net[0].bias[1] = -1.0  # the dead unit's bias, beyond the bound
        net[2].bias[0] = 0.7  # inside layer 2's bound 0.75
    before = net[0].weight.detach().clone()
    clip.after_step({"n": net})
    w = net[0].weight.detach()
    assert w[0, 0].item() == pytest.approx(bound0) and w[0, 1].item() == pytest.approx(-bound0)
    assert net[0].bias[1].item() == pytest.approx(-bound0) and net[2].bias[0].item() == pytest.approx(0.7)
    inside = before.abs() <= bound0
    assert torch.equal(w[inside], before[inside])


def test_refuses_an_optimiser_over_replaced_parameters():
    # The peer-framework bug: modules replaced after the optimiser was built.
    net, x, opt = setup()
    result = probe(net, x)
    net[2] = nn.Linear(4, 3)
    with pytest.raises(ValueError, match="does not hold the network's current parameters"):
        ReDo(every=1, tau=0.0).on_schedule({"n": net}, opt, {"n": result}, torch.Generator())


def test_schedule_and_factory():
    assert [ReDo(every=3).due(u) for u in range(7)] == [False, False, False, True, False, False, True]
    assert not make_intervention("none").due(5)
    assert isinstance(make_intervention("redo", every=2, tau=0.1), ReDo)
    with pytest.raises(ValueError, match="unknown intervention"):
        make_intervention("reset_everything")
    with pytest.raises(ValueError, match="bad parameters"):
        make_intervention("redo", kappa=2)
    with pytest.raises(ValueError, match="every"):
        ReDo(every=-1)
    with pytest.raises(ValueError, match="mode"):
        GradientReDo(mode="shake")


def test_bound_state_roundtrips_and_per_update_logs():
    net, x, opt = setup()
    l2 = L2Init(coef=0.5)
    l2.bind({"critic": net})
    state = l2.state_dict()
    with torch.no_grad():
        net[0].weight.add_(1.0)  # θ − θ₀ = 1 on the 12 entries of W_0
    fresh = L2Init(coef=0.5)
    fresh.load_state_dict(state)
    assert float(fresh.regulariser({"critic": net})) == pytest.approx(0.5 * 12)
    assert fresh.update_log() == {"all/regulariser_mean": pytest.approx(6.0)} and fresh.update_log() == {}

    clip = WeightClipping(kappa=1.0)
    clip.bind({"critic": net})
    copy = WeightClipping(kappa=1.0)
    copy.load_state_dict(clip.state_dict())
    bound = copy.state_dict()["bounds"]["critic"][0]
    over = int((net[0].weight.abs() > bound).sum())
    copy.after_step({"critic": net})
    assert copy.update_log()["critic/weights_clipped"] >= over > 0
    with pytest.raises(ValueError, match="has no state"):
        ReDo(every=1, tau=0.0).load_state_dict({"x": 1})


def test_gradient_redo_logs_what_it_did():
    net, x, opt = setup()
    result = probe(net, x)
    gen = torch.Generator().manual_seed(0)
    n = float(sum(int(result.layer(name).zero_gradient_mask(0.0).sum()) for name in ("0", "2")))
    assert GradientReDo(every=1, tau=0.0, mode="perturb").on_schedule({"c": net}, opt, {"c": result}, gen) == {
        "c/units_perturbed": n
    }
    assert GradientReDo(every=1, tau=0.0).needs_probe and not L2Init().needs_probe
