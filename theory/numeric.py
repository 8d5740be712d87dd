"""The generated cases run through ``ocp.probe`` (and so ``ocp.metrics``), and the metric verdicts are compared with
the exact ones of :mod:`theory.cases` wherever the theory gives an exact verdict on the sampled points.

A layer is Linear(n, H) → σ → Linear(H, 1) trained on L = mean ½(y − tᵀx)²; every unit is a :class:`NeuronCase` on
the same domain. A single case is probed next to a live companion unit (w = 0, b = 1, read-out 0), which keeps the
layer non-degenerate (Assumption 3) without touching the loss, so the loss is exactly that of
:func:`theory.cases.loss_grad_zero`. The exact gradients are read under autograd's convention at kinks
(:data:`CONVENTION`), the one torch computes.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import Callable, Sequence

import sympy as sp
import torch
from torch import Tensor, nn

from ocp import metrics
from ocp.probe import PlasticityProbe
from theory.cases import Domain, NeuronCase, dormant, grad_w_zero, loss_grad_zero

#: The gradient convention at kinks that the metric code computes (ReLU'(0) = 0 and so on).
CONVENTION = "autograd"

#: Pre-activations beyond this size saturate tanh/sigmoid derivatives in float32; the converse checks skip them.
SATURATION = 8

#: Grid coordinates inside (−1, 1), dyadic so that float32 and float64 hold every input exactly.
TICKS = tuple(sp.Rational(2 * k - 7, 8) for k in range(8))


def sample_inputs(domain: Domain) -> list[tuple[sp.Rational, ...]]:
    """Points of the support: every point of a finite piece, and the grid TICKS^k inside each open piece (the part
    of it inside the unit ball for a ball)."""
    pts = []
    for piece in domain.support:
        if piece.dim == 0:
            pts.append(piece.point)
            continue
        for coeffs in itertools.product(TICKS, repeat=piece.dim):
            if piece.ball and sum(c**2 for c in coeffs) >= 1:
                continue
            pts.append(
                tuple(
                    p + piece.radius * sum(c * e[j] for c, e in zip(coeffs, piece.basis))
                    for j, p in enumerate(piece.point)
                )
            )
    return pts


def build_model(units: Sequence[NeuronCase], dtype: torch.dtype) -> nn.Sequential:
    n, width = len(units[0].w), len(units)
    model = nn.Sequential(nn.Linear(n, width), units[0].act.module(), nn.Linear(width, 1)).to(dtype)
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[float(x) for x in u.w] for u in units], dtype=dtype))
        model[0].bias.copy_(torch.tensor([float(u.b) for u in units], dtype=dtype))
        model[2].weight.copy_(torch.tensor([[float(u.v) for u in units]], dtype=dtype))
        model[2].bias.zero_()
    return model


@dataclass(frozen=True)
class Measured:
    scores: tuple[float, ...]
    dormant: tuple[bool, ...]
    magi: tuple[float, ...]
    degenerate: bool
    max_abs_z: float


def measure(
    units: Sequence[NeuronCase],
    dtype: torch.dtype,
    dormancy: Callable[[Tensor], Tensor] = metrics.dormancy_scores,
    mask: Callable[[Tensor, float], Tensor] = metrics.dormant_mask,
) -> Measured:
    """Probe the layer on its sampled support; ``dormancy``/``mask`` can be swapped for a faulty copy."""
    x = torch.tensor([[float(c) for c in p] for p in sample_inputs(units[0].domain)], dtype=dtype)
    t = torch.tensor([float(c) for c in units[0].t], dtype=dtype)
    model = build_model(units, dtype)

    def loss(y: Tensor) -> Tensor:
        return 0.5 * ((y.squeeze(1) - x @ t) ** 2).mean()

    report = PlasticityProbe(model, layers={"0": "1", "2": None}).measure(x, loss).layer("0")
    with torch.no_grad():
        z = model[0](x)
        scores = dormancy(model[1](z))
    return Measured(
        tuple(scores.tolist()),
        tuple(mask(scores, 0.0).tolist()),
        tuple(report.magi.tolist()),
        report.degenerate,
        float(z.abs().max()),
    )


def with_companion(case: NeuronCase) -> tuple[NeuronCase, NeuronCase]:
    companion = dataclasses.replace(case, w=tuple(sp.Integer(0) for _ in case.w), b=sp.Integer(1), v=sp.Integer(0))
    return case, companion


def layer_disagreements(units: Sequence[NeuronCase], dtype: torch.dtype, **faults: Callable) -> list[str]:
    """Where the metric code contradicts an exact verdict on the sampled points (empty list: agreement).

    * every unit exactly dormant (Assumption 3 fails) ⇒ the layer is reported degenerate and every unit flagged;
    * a unit exactly dormant on the support ⇒ flagged dormant at τ = 0, with score exactly 0 (or NaN when the
      sampled layer is all zero);
    * a unit exactly live on a finite support ⇒ not flagged (no saturation involved);
    * ∂h/∂w = 0 on the support (autograd's convention at kinks), or read-out 0 ⇒ that unit's MAGI of the training
      loss is exactly 0;
    * the only unit with a read-out, finite support, exact ∂L/∂w ≠ 0 under autograd's convention ⇒ MAGI > 0
      (float64, unsaturated).
    """
    m = measure(units, dtype, **faults)
    out = []
    exact = [dormant(u) for u in units]
    finite = all(p.dim == 0 for p in units[0].domain.support)
    if all(exact) and not (m.degenerate and all(m.dormant)):
        out.append(f"all units exactly dormant, but degenerate={m.degenerate}, flags {m.dormant}")
    for i, u in enumerate(units):
        # the samples can miss a live unit's support, so the sampled layer may be degenerate (NaN) even when
        # the exact one is not: a dormant unit then reads NaN, flagged dormant
        if exact[i] and not (m.dormant[i] and (m.scores[i] == 0.0 or m.degenerate)):
            out.append(f"unit {i} exactly dormant, but score {m.scores[i]} / dormant={m.dormant[i]}")
        if finite and not exact[i] and m.max_abs_z <= SATURATION and m.dormant[i]:
            out.append(f"unit {i} exactly live, but flagged dormant (score {m.scores[i]})")
        if (u.v == 0 or grad_w_zero_on_support(u)) and m.magi[i] != 0.0:
            out.append(f"unit {i}: ∂h/∂w = 0 on the support or read-out 0, but MAGI {m.magi[i]}")
        alone = all(o.v == 0 for j, o in enumerate(units) if j != i)
        converse = finite and alone and dtype == torch.float64 and m.max_abs_z <= SATURATION
        if converse and loss_grad_zero(u, CONVENTION) is False and m.magi[i] == 0.0:
            out.append(f"unit {i}: exact ∂L/∂w ≠ 0, but MAGI 0")
    return out


def disagreements(case: NeuronCase, dtype: torch.dtype, **faults: Callable) -> list[str]:
    """:func:`layer_disagreements` for one case next to its live companion."""
    return layer_disagreements(with_companion(case), dtype, **faults)


def grad_w_zero_on_support(case: NeuronCase) -> bool:
    return grad_w_zero(
        dataclasses.replace(case, domain=dataclasses.replace(case.domain, region=case.domain.support)), CONVENTION
    )
