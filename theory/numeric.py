"""The generated cases run through ``ocp.probe`` (and so ``ocp.metrics``), and the metric verdicts are compared with
the exact ones of :mod:`theory.cases` wherever the theory gives an exact verdict on the sampled points.

The network is Linear(n, 2) → σ → Linear(2, 1): unit 0 is the case's neuron (w, b) with read-out v; unit 1 is a
live companion (w = 0, b = 1, read-out 0) that keeps the layer non-degenerate (Assumption 3) without touching the
loss L = mean ½(y − tᵀx)², which is then exactly the loss of :func:`theory.cases.loss_grad_zero`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import sympy as sp
import torch
from torch import Tensor, nn

from ocp import metrics
from ocp.probe import PlasticityProbe
from theory.activations import analyse
from theory.cases import NeuronCase, dormant, grad_w_zero, loss_grad_zero

#: Pre-activations beyond this size saturate tanh/sigmoid derivatives in float32; the converse checks skip them.
SATURATION = 8


def sample_inputs(case: NeuronCase, per_piece: int = 7) -> list[tuple[sp.Rational, ...]]:
    """Points of the support: every point of a finite piece, and a symmetric dyadic grid inside each open piece."""
    pts = []
    for piece in case.domain.support:
        if piece.dim == 0:
            pts.append(piece.point)
            continue
        for k in range(per_piece):
            t = sp.Rational(2 * k - (per_piece - 1), per_piece + 1)  # dyadic for per_piece = 7, inside (−1, 1)
            # a cube takes the diagonal (±t, ∓t, …); a ball one axis at a time, so the point stays inside
            coeffs = [t * (-1) ** i for i in range(piece.dim)] if not piece.ball else [t * int(i == k % piece.dim) for i in range(piece.dim)]
            pts.append(tuple(p + piece.radius * sum(c * e[j] for c, e in zip(coeffs, piece.basis)) for j, p in enumerate(piece.point)))
    return pts


def build_model(case: NeuronCase, dtype: torch.dtype) -> nn.Sequential:
    n = len(case.w)
    model = nn.Sequential(nn.Linear(n, 2), case.act.module(), nn.Linear(2, 1)).to(dtype)
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[float(x) for x in case.w], [0.0] * n], dtype=dtype))
        model[0].bias.copy_(torch.tensor([float(case.b), 1.0], dtype=dtype))
        model[2].weight.copy_(torch.tensor([[float(case.v), 0.0]], dtype=dtype))
        model[2].bias.zero_()
    return model


@dataclass(frozen=True)
class Measured:
    score: float
    dormant: bool
    magi: float
    max_abs_z: float


def measure(case: NeuronCase, dtype: torch.dtype, dormancy: Callable[[Tensor], Tensor] = metrics.dormancy_scores,
            mask: Callable[[Tensor, float], Tensor] = metrics.dormant_mask) -> Measured:  # fmt: skip
    """Probe the case's network on its sampled support; ``dormancy``/``mask`` can be swapped for a faulty copy."""
    pts = sample_inputs(case)
    x = torch.tensor([[float(c) for c in p] for p in pts], dtype=dtype)
    t = torch.tensor([float(c) for c in case.t], dtype=dtype)
    model = build_model(case, dtype)

    def loss(y: Tensor) -> Tensor:
        return 0.5 * ((y.squeeze(1) - x @ t) ** 2).mean()

    report = PlasticityProbe(model, layers={"0": "1", "2": None}).measure(x, loss).layer("0")
    with torch.no_grad():
        z = model[0](x)[:, 0]
        scores = dormancy(model[1](model[0](x)))
    return Measured(float(scores[0]), bool(mask(scores, 0.0)[0]), float(report.magi[0]), float(z.abs().max()))


def disagreements(case: NeuronCase, dtype: torch.dtype, **faults: Callable) -> list[str]:
    """Where the metric code contradicts an exact verdict on the sampled points (empty list: agreement).

    * exactly dormant on the support ⇒ score exactly 0 and flagged dormant at τ = 0;
    * a finite support that is exactly not dormant ⇒ flagged live (no saturation involved);
    * ∂h/∂w = 0 on the support, or read-out 0 ⇒ MAGI of the training loss exactly 0;
    * a finite support, no kink of σ met, exact ∂L/∂w ≠ 0 ⇒ MAGI > 0 (float64, unsaturated).
    """
    m = measure(case, dtype, **faults)
    out = []
    is_dormant = dormant(case)
    finite = all(p.dim == 0 for p in case.domain.support)
    if is_dormant and not (m.score == 0.0 and m.dormant):
        out.append(f"exactly dormant, but score {m.score} / dormant={m.dormant}")
    if finite and not is_dormant and m.max_abs_z <= SATURATION and m.dormant:
        out.append(f"exactly live, but flagged dormant (score {m.score})")
    pointwise_flat = grad_w_zero_on_support(case)
    if (pointwise_flat or case.v == 0) and m.magi != 0.0:
        out.append(f"∂h/∂w = 0 on the support or read-out 0, but MAGI {m.magi}")
    exact_loss = loss_grad_zero(case)
    meets_kink = any(analyse(case.act).kinks.contains(z) is sp.true for z in _support_pre_activations(case))
    if finite and exact_loss is False and not meets_kink and dtype == torch.float64 and m.max_abs_z <= SATURATION and m.magi == 0.0:
        out.append("exact ∂L/∂w ≠ 0, but MAGI 0")
    return out


def grad_w_zero_on_support(case: NeuronCase) -> bool:
    return grad_w_zero(dataclasses.replace(case, domain=dataclasses.replace(case.domain, region=case.domain.support)))


def _support_pre_activations(case: NeuronCase) -> list[sp.Expr]:
    return [sum(wi * xi for wi, xi in zip(case.w, p)) + case.b for p in sample_inputs(case)]
