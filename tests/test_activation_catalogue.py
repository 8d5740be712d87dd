"""Every metric over every activation, driven by one catalogue (in the manner of PyTorch's OpInfo).

Each case says where the activation is exactly zero and whether it is flat there. A unit with zero incoming weights
and that bias is constant on any batch; the catalogue then predicts, exactly, its dormancy score, its MAGI under a
training loss, and both activation-gradient scores. One parametrised test checks all predictions for all cases.
"""

from dataclasses import dataclass
from typing import Callable, Optional

import pytest
import torch
from torch import nn

from ocp.probe import PlasticityProbe


@dataclass(frozen=True)
class ActivationCase:
    name: str
    make: Callable[[], nn.Module]
    zero_at: Optional[float]  # a pre-activation z0 with sigma(z0) == 0 exactly; None if sigma is never 0 there
    flat_at_zero: bool  # sigma'(z0) == 0 in PyTorch's autograd
    live_bias: float = 0.5  # bias of the other units, so that they are generically non-zero


CATALOGUE = [
    ActivationCase("identity", nn.Identity, 0.0, False),
    ActivationCase("relu", nn.ReLU, -1.0, True, live_bias=3.0),
    ActivationCase("leaky_relu", nn.LeakyReLU, 0.0, False),
    ActivationCase("relu6", nn.ReLU6, -1.0, True, live_bias=3.0),
    ActivationCase("tanh", nn.Tanh, 0.0, False),
    ActivationCase("sigmoid", nn.Sigmoid, None, False),
    ActivationCase("softplus", nn.Softplus, None, False),
    ActivationCase("gelu", nn.GELU, 0.0, False),
    ActivationCase("silu", nn.SiLU, 0.0, False),
    ActivationCase("elu", nn.ELU, 0.0, False),
    ActivationCase("hardtanh", nn.Hardtanh, 0.0, False),
    ActivationCase("hardswish", nn.Hardswish, -4.0, True, live_bias=3.0),
    ActivationCase("hardsigmoid", nn.Hardsigmoid, -4.0, True, live_bias=0.0),
]


def build(case: ActivationCase, dtype=torch.float64):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), case.make(), nn.Linear(4, 2)).to(dtype)
    with torch.no_grad():
        net[0].bias.fill_(case.live_bias)
        net[0].weight[1].zero_()
        net[0].bias[1] = case.zero_at if case.zero_at is not None else -1.0
    return net


@pytest.mark.parametrize("case", CATALOGUE, ids=[c.name for c in CATALOGUE])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_constant_unit_verdicts(case, dtype):
    net = build(case, dtype)
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(1), dtype=dtype)
    target = torch.randn(64, 2, generator=torch.Generator().manual_seed(2), dtype=dtype)

    def loss(out):
        return ((out - target) ** 2).mean()

    post = PlasticityProbe(net).measure(x, loss).layer("0")
    pre = PlasticityProbe(net, activation_gradient="pre").measure(x, loss).layer("0")
    others = [0, 2, 3]

    # Dormancy: exactly zero iff sigma(b) == 0 (Lemma 1 on the sample); the other units are live.
    if case.zero_at is not None:
        assert post.dormancy_scores[1] == 0 and post.dormant_mask(0.0)[1]
    else:
        assert post.dormancy_scores[1] > 0 and not post.dormant_mask(0.0)[1]
    assert (post.dormancy_scores[others] > 0).all()

    # MAGI of the constant unit: dL/dW_1j = sum_n delta_n sigma'(b) x_nj, zero iff sigma is flat at b.
    if case.flat_at_zero:
        assert post.magi[1] == 0 and post.zero_gradient_mask(0.0)[1]
    else:
        assert post.magi[1] > 0 and not post.zero_gradient_mask(0.0)[1]
    assert (post.magi[others] > 0).all()

    # dL/dh does not see sigma': non-zero for every unit whose outgoing weights are non-zero.
    assert (post.activation_gradient_scores > 0).all()
    # dL/dz = sigma'(z) dL/dh: zero exactly for the flat case.
    assert (pre.activation_gradient_scores[1] == 0) == case.flat_at_zero
    # Both notions agree where sigma' = 1 (identity).
    if case.name == "identity":
        torch.testing.assert_close(pre.activation_gradient_scores, post.activation_gradient_scores)


def test_catalogue_covers_every_recognised_element_wise_activation_we_claim():
    names = {c.make.__name__ for c in CATALOGUE}
    assert {"ReLU", "Identity", "Tanh", "LeakyReLU", "ReLU6", "Sigmoid", "Softplus", "GELU", "SiLU", "ELU"} <= names


def test_pre_activation_gradient_refuses_in_place_relu():
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(inplace=True), nn.Linear(4, 1))
    with pytest.raises(ValueError, match="in place"):
        PlasticityProbe(net, activation_gradient="pre").measure(torch.randn(5, 3), "output_sum")
    # The default (post-activation) works with in-place activations.
    report = PlasticityProbe(net).measure(torch.randn(5, 3), "output_sum").layer("0")
    assert report.activation == "ReLU" and (report.features >= 0).all()
