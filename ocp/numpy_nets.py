"""The agent's MLPs in numpy: a forward pass and a hand-derived backward pass over views of the torch parameters.

The training loop evaluates the actor and the critic hundreds of thousands of times on tiny batches (one observation
per environment step; 64-sample minibatches). At that size a torch operator's dispatch and autograd bookkeeping
cost several times its arithmetic, so the loop computes these passes in numpy instead, on arrays that share memory
with the ``nn.Linear`` parameters. The torch modules stay the one model: the probe, the interventions and the
checkpoints use them, and every in-place edit of a parameter is seen here at once.

The backward pass is the textbook one for ``y_l = act(y_{l-1} W_lᵀ + b_l)``: ∂W_l = g_lᵀ y_{l-1}, ∂b_l = Σ_batch g_l,
g_{l-1} = act'(y_{l-1}) ⊙ (g_l W_l), with act' read from the post-activation output as torch's autograd does
(ReLU: 1 where the output is > 0; tanh: 1 − y²; identity: 1). ``tests/test_numpy_nets.py`` checks forward and
gradients against torch autograd for every activation.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from torch import nn

from ocp.agent import ACTIVATIONS


def _relu_forward(h: np.ndarray) -> np.ndarray:
    return np.maximum(h, 0.0, out=h)


def _tanh_forward(h: np.ndarray) -> np.ndarray:
    return np.tanh(h, out=h)


def _identity(h: np.ndarray) -> np.ndarray:
    return h


def _relu_backward(g: np.ndarray, y: np.ndarray) -> np.ndarray:
    g *= y > 0
    return g


def _tanh_backward(g: np.ndarray, y: np.ndarray) -> np.ndarray:
    g *= 1.0 - y * y
    return g


def _identity_backward(g: np.ndarray, y: np.ndarray) -> np.ndarray:
    return g


#: name -> (forward in place on the pre-activation, backward in place on the gradient given the post-activation).
ACTIVATION_PASSES: dict[str, tuple[Callable, Callable]] = {
    "relu": (_relu_forward, _relu_backward),
    "tanh": (_tanh_forward, _tanh_backward),
    "identity": (_identity, _identity_backward),
}
_ACTIVATION_NAMES = {cls: name for name, cls in ACTIVATIONS.items()}


class NumpyMLP:
    """An ``nn.Sequential`` of ``Linear`` layers with agent activations between them, seen through numpy.

    ``forward(x, inputs)`` returns the output and, when given a list, appends the input of every linear layer (the
    observation, then each post-activation), which ``backward`` needs. The arrays alias the module's parameters;
    :meth:`check_aliasing` raises if a parameter has since been replaced by another tensor (an in-place edit is fine).
    """

    def __init__(self, net: nn.Sequential):
        self.net = net
        self.linears: list[nn.Linear] = []
        activations: list[str] = []
        for module in net:
            if isinstance(module, nn.Linear):
                if module.bias is None:
                    raise ValueError("NumpyMLP needs every Linear layer to have a bias")
                self.linears.append(module)
            elif type(module) in _ACTIVATION_NAMES:
                activations.append(_ACTIVATION_NAMES[type(module)])
            else:
                raise ValueError(
                    f"NumpyMLP supports Linear layers and the activations {sorted(ACTIVATIONS)}, got {module}"
                )
        if len(activations) != len(self.linears) - 1 or len(set(activations)) > 1:
            raise ValueError(f"expected Linear (activation Linear)* with one activation kind, got {net}")
        passes = ACTIVATION_PASSES[activations[0]] if activations else (_identity, _identity_backward)
        self._act, self._act_backward = passes
        self.weights = [m.weight.detach().numpy() for m in self.linears]
        self.biases = [m.bias.detach().numpy() for m in self.linears]
        self._addresses = self._parameter_addresses()

    def _parameter_addresses(self) -> list[int]:
        return [p.data_ptr() for m in self.linears for p in (m.weight, m.bias)]

    def check_aliasing(self) -> None:
        if self._parameter_addresses() != self._addresses:
            raise RuntimeError(
                "a parameter of the network was replaced by a new tensor, so the numpy view no longer sees it; "
                "edit parameters in place (param.copy_, param[...] = ...) instead of assigning param.data"
            )

    def forward(self, x: np.ndarray, inputs: list[np.ndarray] | None = None) -> np.ndarray:
        last = len(self.weights) - 1
        y = x
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            if inputs is not None:
                inputs.append(y)
            h = y @ w.T
            h += b
            y = self._act(h) if i < last else h
        return y

    def backward(
        self,
        grad_out: np.ndarray,
        inputs: Sequence[np.ndarray],
        weight_grads: Sequence[np.ndarray],
        bias_grads: Sequence[np.ndarray],
    ) -> None:
        """Write ∂loss/∂W and ∂loss/∂b of every layer into ``weight_grads`` / ``bias_grads`` (overwritten, not
        accumulated), given ∂loss/∂output and the layer inputs recorded by :meth:`forward`."""
        g = grad_out
        for i in range(len(self.weights) - 1, -1, -1):
            np.matmul(g.T, inputs[i], out=weight_grads[i])
            np.sum(g, axis=0, out=bias_grads[i])
            if i:
                g = self._act_backward(g @ self.weights[i], inputs[i])
