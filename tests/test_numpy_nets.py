"""The numpy passes of the agent's MLPs against torch, for every activation the agent offers."""

import numpy as np
import pytest
import torch
from torch import nn

from ocp.agent import ACTIVATIONS, mlp
from ocp.numpy_nets import ACTIVATION_PASSES, NumpyMLP


def test_every_agent_activation_has_numpy_passes():
    assert set(ACTIVATION_PASSES) == set(ACTIVATIONS)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("batch", [1, 37])
def test_forward_and_backward_match_autograd(activation, batch):
    torch.manual_seed(0)
    net = mlp(5, (8, 6), 3, activation, out_gain=1.0)
    for m in net:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.bias, std=0.5)  # non-zero biases, so a wrong bias gradient shows
    x = torch.randn(batch, 5)
    upstream = torch.randn(batch, 3)
    out = net(x)
    grads = torch.autograd.grad(out, list(net.parameters()), upstream)

    np_net = NumpyMLP(net)
    inputs: list[np.ndarray] = []
    np_out = np_net.forward(x.numpy(), inputs)
    np.testing.assert_allclose(np_out, out.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert [a.shape for a in inputs] == [(batch, 5), (batch, 8), (batch, 6)]
    w_grads = [np.full(m.weight.shape, np.nan, np.float32) for m in np_net.linears]
    b_grads = [np.full(m.bias.shape, np.nan, np.float32) for m in np_net.linears]
    np_net.backward(upstream.numpy(), inputs, w_grads, b_grads)
    expected = [g.numpy() for g in grads]
    got = [g for pair in zip(w_grads, b_grads) for g in pair]
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)


def test_relu_gradient_is_zero_where_the_output_is_exactly_zero():
    """torch's ReLU passes no gradient at a pre-activation of exactly 0; neither does the numpy pass."""
    net = mlp(2, (2,), 1, "relu", out_gain=1.0)
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))  # unit 1's pre-activation is exactly 0
        net[0].bias.zero_()
        net[2].weight.fill_(1.0)
    x = torch.tensor([[2.0, 3.0]])
    np_net = NumpyMLP(net)
    inputs: list[np.ndarray] = []
    np_net.forward(x.numpy(), inputs)
    w = [np.zeros((2, 2), np.float32), np.zeros((1, 2), np.float32)]
    b = [np.zeros(2, np.float32), np.zeros(1, np.float32)]
    np_net.backward(np.ones((1, 1), np.float32), inputs, w, b)
    assert w[0].tolist() == [[2.0, 3.0], [0.0, 0.0]] and b[0].tolist() == [1.0, 0.0]
    torch_grads = torch.autograd.grad(net(x).sum(), [net[0].weight, net[0].bias])
    assert torch_grads[0].tolist() == w[0].tolist() and torch_grads[1].tolist() == b[0].tolist()


def test_views_see_in_place_edits_and_refuse_replaced_parameters():
    net = mlp(3, (4,), 2, "tanh", out_gain=1.0)
    np_net = NumpyMLP(net)
    x = np.ones((1, 3), np.float32)
    with torch.no_grad():
        net[2].weight.zero_()
        net[2].bias.copy_(torch.tensor([1.5, -2.0]))
    assert np_net.forward(x).tolist() == [[1.5, -2.0]]
    np_net.check_aliasing()
    net[0].weight.data = torch.zeros(4, 3)
    with pytest.raises(RuntimeError, match="replaced by a new tensor"):
        np_net.check_aliasing()


def test_unsupported_modules_are_refused_by_name():
    with pytest.raises(ValueError, match="Sigmoid"):
        NumpyMLP(nn.Sequential(nn.Linear(2, 2), nn.Sigmoid(), nn.Linear(2, 1)))
    with pytest.raises(ValueError, match="bias"):
        NumpyMLP(nn.Sequential(nn.Linear(2, 1, bias=False)))
    with pytest.raises(ValueError, match="one activation kind"):
        NumpyMLP(nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2), nn.Tanh(), nn.Linear(2, 1)))
