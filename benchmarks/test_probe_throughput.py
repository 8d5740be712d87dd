"""Probe throughput against its floor (one plain forward + backward) and against a naive one-metric-per-pass
reference, on the paper's PPO networks, a wide MLP and a small conv net. Goal: probe <= 1.3x plain."""

import pytest
import torch
from torch import nn

from ocp import metrics
from ocp.probe import PROBED_LAYER_TYPES, PlasticityProbe

ACTIVATIONS = {"relu": nn.ReLU, "identity": nn.Identity, "tanh": nn.Tanh}


def mlp(sizes, act):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[act]())
    return nn.Sequential(*layers)


def convnet(act):
    a = ACTIVATIONS[act]
    return nn.Sequential(nn.Conv2d(3, 16, 3), a(), nn.Conv2d(16, 32, 3), a(), nn.Flatten(), nn.Linear(32 * 12 * 12, 1))


# name -> (model factory, input shape, output dim)
MODELS = {
    "ppo_actor_64x64_b2048": (lambda act: mlp((17, 64, 64, 6), act), (2048, 17), 6),
    "ppo_critic_64x64_b2048": (lambda act: mlp((17, 64, 64, 1), act), (2048, 17), 1),
    "wide_mlp_4x1024_b8192": (lambda act: mlp((64, 1024, 1024, 1024, 1024, 1), act), (8192, 64), 1),
    "conv_2layer_b256_16x16": (convnet, (256, 3, 16, 16), 1),
}


def setup(model_name, act, device):
    torch.manual_seed(0)
    factory, in_shape, out_dim = MODELS[model_name]
    net = factory(act).to(device)
    x = torch.randn(in_shape, device=device)
    target = torch.randn(in_shape[0], out_dim, device=device)

    def loss(out):
        return ((out - target) ** 2).mean()

    return net, x, loss


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def naive_reference(net, x, loss):
    """What peer code does: one pass per metric (activations; weight gradients via .backward(); GraMa via
    retain_grad), each with its own hooks."""
    layers = [m for m in net.modules() if isinstance(m, PROBED_LAYER_TYPES)]
    acts_modules = [m for m in net.modules() if isinstance(m, tuple(ACTIVATIONS.values()))]
    captured = []
    handles = [m.register_forward_hook(lambda m, i, o: captured.append(o.detach())) for m in acts_modules]
    with torch.no_grad():
        net(x)
    for h in handles:
        h.remove()
    dormancy = [metrics.dormancy_scores(a) for a in captured]

    net.zero_grad()
    loss(net(x)).backward()
    magi = [metrics.gradient_scores(metrics.magi(m.weight.grad)) for m in layers]

    kept = []

    def keep(m, i, o):
        o.retain_grad()
        kept.append(o)

    handles = [m.register_forward_hook(keep) for m in acts_modules]
    net.zero_grad()
    loss(net(x)).backward()
    for h in handles:
        h.remove()
    grama = [metrics.activation_gradient_scores(o.grad) for o in kept]
    net.zero_grad()
    return dormancy, magi, grama


@pytest.mark.parametrize("act", list(ACTIVATIONS))
@pytest.mark.parametrize("model_name", list(MODELS))
@pytest.mark.parametrize("variant", ["plain", "probe", "naive"])
def test_probe_throughput(timed, count_ops, device, model_name, act, variant):
    net, x, loss = setup(model_name, act, device)
    params = list(net.parameters())
    if variant == "plain":

        def call():
            torch.autograd.grad(loss(net(x)), params)

    elif variant == "probe":
        probe = PlasticityProbe(net)

        def call():
            probe.measure(x, loss)

    else:

        def call():
            naive_reference(net, x, loss)

    def fn():
        call()
        sync(device)

    group = f"probe/{model_name}/{act}/{device.type}"
    rounds = 3 if model_name.startswith("wide") and device.type == "cpu" else None
    timed(group, variant, fn, rounds=rounds)
    count_ops(group, variant, call)
