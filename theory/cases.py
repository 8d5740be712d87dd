"""Exact evaluation of the paper's statements on one neuron h(x) = σ(wᵀx + b) over a domain D.

Everything is rational arithmetic plus sympy sets, so every verdict here is exact (no sampling): on a piece
{p + Σ u_k e_k : u ∈ (−r, r)^k} the pre-activation z = wᵀx + b runs over an open interval (or one value when the
piece is orthogonal to w), and "h = 0 on the piece" is "that interval lies in Z0".

Domain kinds (how D and the sampling measure μ relate):

* ``open``          an open box or ball, μ uniform on it;
* ``batch``         s and the training loss come from a finite batch, the theorem's ∀x / ∃x₀ range over the open
                    box the batch was drawn from (what an experiment can measure vs. what the theorem quantifies);
* ``finite``        D is a finite sample, μ uniform on it;
* ``affine``        a relatively open patch of a hyperplane or coordinate subspace (what a layer sees when an
                    upstream ReLU unit is dead), μ uniform on it;
* ``disconnected``  two disjoint open boxes, μ uniform on their union.

Statements (Definition 1 / Theorem 1 of the paper):

* A           s = 0, i.e. h = 0 μ-almost surely (equivalently on the support, σ being continuous);
* B[notion]   the gradient vanishes and ∃x₀ in D with h(x₀) = 0, where the gradient is
  ``grad_x`` ∇ₓh on all of D (the theorem's), ``grad_w`` ∂h/∂w on all of D, or ``loss`` ∂L/∂w of the training loss
  L = E_μ ½(v·h(x) − tᵀx)² through a linear read-out v (what experiments measure).

A gradient that does not exist (σ has a kink there) is not zero: the theorem assumes it exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import sympy as sp

from theory.activations import (
    Activation,
    Z,
    analyse,
    derivative,
    in_flat,
    in_zeros,
    is_empty,
    interval_in,
    is_zero_number,
    one_sided_limit,
)

KINDS: tuple[str, ...] = ("open", "batch", "finite", "affine", "disconnected")
NOTIONS: tuple[str, ...] = ("grad_x", "grad_w", "loss")
DIRECTIONS: tuple[str, ...] = ("A=>B", "B=>A")

Vec = tuple[sp.Rational, ...]


def vec(*xs: object) -> Vec:
    return tuple(sp.Rational(x) for x in xs)


@dataclass(frozen=True)
class Piece:
    """{point + Σ_k u_k basis_k : u ∈ U} with U the open cube (−r, r)^k (``ball=False``) or the open ball of radius r
    (``ball=True``, basis orthonormal); no basis: the single point."""

    point: Vec
    basis: tuple[Vec, ...] = ()
    radius: sp.Rational = sp.Integer(1)
    ball: bool = False

    @property
    def dim(self) -> int:
        return len(self.basis)

    def spread(self, direction: Vec) -> sp.Expr:
        """sup over the piece of directionᵀ(x − point): r·‖Bᵀd‖₁ on a cube, r·‖Bᵀd‖₂ on a ball."""
        coeffs = [sum(di * ei for di, ei in zip(direction, e)) for e in self.basis]
        if self.ball:
            return self.radius * sp.sqrt(sum(c**2 for c in coeffs))
        return self.radius * sum(abs(c) for c in coeffs)

    def coordinate_range(self, j: int) -> tuple[sp.Expr, sp.Expr]:
        unit = tuple(sp.Integer(int(i == j)) for i in range(len(self.point)))
        return self.point[j] - self.spread(unit), self.point[j] + self.spread(unit)

    def second_moment(self, i: int, j: int) -> sp.Rational:
        """E[x_i x_j] under the uniform law of the piece: Var u_k = r²/3 on a cube, r²/(k + 2) on a k-ball."""
        var = self.radius**2 / (self.dim + 2) if self.ball else self.radius**2 / 3
        return self.point[i] * self.point[j] + var * sum(e[i] * e[j] for e in self.basis)


@dataclass(frozen=True)
class Domain:
    kind: str
    support: tuple[Piece, ...]
    region: tuple[Piece, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown domain kind {self.kind!r}")
        if not self.region:
            object.__setattr__(self, "region", self.support)

    @property
    def n(self) -> int:
        return len(self.support[0].point)


@dataclass(frozen=True)
class NeuronCase:
    act: Activation
    w: Vec
    b: sp.Rational
    domain: Domain
    v: sp.Rational = sp.Integer(1)
    target: Vec = field(default=())

    def z_range(self, piece: Piece) -> tuple[sp.Expr, sp.Expr]:
        """(lo, hi) of z over the piece; lo == hi when z is constant on it."""
        centre = sum(wi * pi for wi, pi in zip(self.w, piece.point)) + self.b
        return centre - piece.spread(self.w), centre + piece.spread(self.w)

    @property
    def t(self) -> Vec:
        return self.target or tuple(sp.Integer(0) for _ in self.w)


def _zero_on(case: NeuronCase, pieces: tuple[Piece, ...]) -> bool:
    for piece in pieces:
        lo, hi = case.z_range(piece)
        if not (in_zeros(case.act, lo) if lo == hi else interval_in(case.act, lo, hi, "zeros")):
            return False
    return True


def dormant(case: NeuronCase) -> bool:
    """A: s = 0, i.e. h vanishes on the support of μ (assuming a non-degenerate layer)."""
    return _zero_on(case, case.domain.support)


def zero_on_region(case: NeuronCase) -> bool:
    """Lemma 1's conclusion: h = 0 on all of D."""
    return _zero_on(case, case.domain.region)


def has_zero(case: NeuronCase) -> bool:
    """∃x₀ ∈ D: h(x₀) = 0."""
    zeros = analyse(case.act).zeros
    for piece in case.domain.region:
        lo, hi = case.z_range(piece)
        if lo == hi:
            if in_zeros(case.act, lo):
                return True
        elif not is_empty(sp.Intersection(zeros, sp.Interval.open(lo, hi))):
            return True
    return False


def grad_x_zero(case: NeuronCase) -> bool:
    """∇ₓh = σ'(z)·w exists and is 0 at every x ∈ D (w = 0 makes h constant in x)."""
    if all(wi == 0 for wi in case.w):
        return True
    for piece in case.domain.region:
        lo, hi = case.z_range(piece)
        if not (in_flat(case.act, lo) if lo == hi else interval_in(case.act, lo, hi, "flat")):
            return False
    return True


def _grad_w_zero_on(case: NeuronCase, pieces: tuple[Piece, ...]) -> bool:
    for piece in pieces:
        lo, hi = case.z_range(piece)
        if piece.dim == 0 and all(x == 0 for x in piece.point):
            continue  # ∂h/∂w = σ'(b)·x with x = 0, and h(0) = σ(b) does not depend on w at all
        if not (in_flat(case.act, lo) if lo == hi else interval_in(case.act, lo, hi, "flat")):
            return False
    return True


def grad_w_zero(case: NeuronCase) -> bool:
    """∂h/∂w = σ'(z)·x exists and is 0 at every x ∈ D."""
    return _grad_w_zero_on(case, case.domain.region)


def _one_sided_derivatives(case: NeuronCase, c: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
    d = derivative(case.act)
    if analyse(case.act).kinks.contains(c) is sp.true:
        return one_sided_limit(d, c, "-"), one_sided_limit(d, c, "+")
    value = sp.simplify(d.subs(Z, c))
    return value, value


def loss_grad_zero(case: NeuronCase) -> Optional[bool]:
    """B's gradient part for the training loss: ∂L/∂w exists and is 0. None where this module cannot decide exactly.

    ∂L/∂w_j = v·E[(v·σ(z) − tᵀx)·σ'(z)·x_j], with each piece of the support weighted equally. Decided exactly when:
    the read-out weight is 0 (∂L/∂h ≡ 0); ∂h/∂w = 0 on the support; w = 0 (σ(z), σ'(z) are constants and only the
    moments E[x], E[xxᵀ] remain; at a kink of σ, with the support in {x₀ > 0}, the one-sided derivatives along e₀
    use σ'_±(b), and a non-zero one means the gradient is not 0); or a finite support meeting no kink (a finite sum).
    """
    if case.v == 0 or _grad_w_zero_on(case, case.domain.support):
        return True
    support, n = case.domain.support, case.domain.n
    kinks = analyse(case.act).kinks
    if all(wi == 0 for wi in case.w):
        s_b = case.act.expr.subs(Z, case.b)
        moments = [
            case.v * s_b * sum(p.point[j] for p in support) / len(support)
            - sum(sum(case.t[i] * p.second_moment(i, j) for i in range(n)) for p in support) / len(support)
            for j in range(n)
        ]
        if kinks.contains(case.b) is not sp.true:
            return all(is_zero_number(case.v * derivative(case.act).subs(Z, case.b) * m) for m in moments)
        if all(p.coordinate_range(0)[0] > 0 for p in support):
            left, right = _one_sided_derivatives(case, case.b)
            if any(not is_zero_number(case.v * slope * moments[0]) for slope in (left, right)):
                return False
        return None
    if all(p.dim == 0 for p in support):
        zs = [sum(wi * xi for wi, xi in zip(case.w, p.point)) + case.b for p in support]
        if any(kinks.contains(z) is sp.true for z in zs):
            return None
        d = derivative(case.act)
        grads = [
            sum((case.v * case.act.expr.subs(Z, z) - sum(ti * xi for ti, xi in zip(case.t, p.point))) * d.subs(Z, z) * p.point[j]
                for z, p in zip(zs, support))
            for j in range(n)
        ]  # fmt: skip
        return all(is_zero_number(case.v * g) for g in grads)
    return None


def gradient_zero(case: NeuronCase, notion: str) -> Optional[bool]:
    if notion == "grad_x":
        return grad_x_zero(case)
    if notion == "grad_w":
        return grad_w_zero(case)
    if notion == "loss":
        return loss_grad_zero(case)
    raise ValueError(f"unknown gradient notion {notion!r}")


def statement_b(case: NeuronCase, notion: str) -> Optional[bool]:
    """B[notion]: zero gradient on D and a zero of h somewhere in D."""
    g = gradient_zero(case, notion)
    if g is False:
        return False
    if not has_zero(case):
        return False
    return g


def implication(case: NeuronCase, notion: str, direction: str) -> Optional[bool]:
    """Truth of A ⇒ B[notion] or B[notion] ⇒ A on this case; None where B cannot be decided exactly."""
    a = dormant(case)
    b = statement_b(case, notion)
    if direction == "A=>B":
        return True if not a else b
    if direction == "B=>A":
        if b is None:
            return None
        return (not b) or a
    raise ValueError(f"unknown direction {direction!r}")


def lemma1(case: NeuronCase) -> bool:
    """Lemma 1 on this case: s = 0 ⇒ h = 0 on all of D."""
    return (not dormant(case)) or zero_on_region(case)


def lemma3(case: NeuronCase) -> bool:
    """Lemma 3's first claim on this case: ∇ₓh = 0 on D ⇒ h is constant on D.

    With ∇ₓh = 0, h is constant on each piece (w = 0, or z(piece) lies in the flat set), so comparing one value per
    piece decides it.
    """
    if not grad_x_zero(case):
        return True
    values = [case.act.expr.subs(Z, case.z_range(p)[0] if p.dim == 0 else sum(case.z_range(p)) / 2) for p in case.domain.region]
    return all(is_zero_number(v - values[0]) for v in values[1:])
