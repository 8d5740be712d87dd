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

At a kink of σ the gradient does not exist; each gradient function takes the convention that reads it
(:data:`theory.activations.CONVENTIONS`: ``strict`` counts it as non-zero, ``autograd`` uses PyTorch's value, ``clarke``
asks whether 0 lies in Clarke's generalised gradient).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import sympy as sp

from theory.activations import (
    Activation,
    Z,
    analyse,
    autograd_slope,
    derivative,
    in_flat,
    in_zeros,
    interval_in_flat,
    interval_in_zeros,
    is_empty,
    is_kink,
    is_zero_number,
    kink_slopes,
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
        if not (in_zeros(case.act, lo) if lo == hi else interval_in_zeros(case.act, lo, hi)):
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


def _flat_on(case: NeuronCase, piece: Piece, convention: str) -> bool:
    lo, hi = case.z_range(piece)
    return in_flat(case.act, lo, convention) if lo == hi else interval_in_flat(case.act, lo, hi, convention)


def grad_x_zero(case: NeuronCase, convention: str) -> bool:
    """∇ₓh = σ'(z)·w is 0 at every x ∈ D under the convention (w = 0 makes h constant in x)."""
    if all(wi == 0 for wi in case.w):
        return True
    return all(_flat_on(case, piece, convention) for piece in case.domain.region)


def _grad_w_zero_on(case: NeuronCase, pieces: tuple[Piece, ...], convention: str) -> bool:
    for piece in pieces:
        if piece.dim == 0 and all(x == 0 for x in piece.point):
            continue  # ∂h/∂w = σ'(b)·x with x = 0, and h(0) = σ(b) does not depend on w at all
        if not _flat_on(case, piece, convention):
            return False
    return True


def grad_w_zero(case: NeuronCase, convention: str) -> bool:
    """∂h/∂w = σ'(z)·x is 0 at every x ∈ D under the convention."""
    return _grad_w_zero_on(case, case.domain.region, convention)


def symmetric_about_origin(pieces: tuple[Piece, ...]) -> bool:
    """The pieces, each weighted equally, form a law invariant under x ↦ −x."""
    key = lambda p: (p.point, p.basis, p.radius, p.ball)  # noqa: E731
    negated = [Piece(tuple(-c for c in p.point), p.basis, p.radius, p.ball) for p in pieces]
    return sorted(map(key, pieces), key=str) == sorted(map(key, negated), key=str)


def _kink_loss_gradient_zero(case: NeuronCase, moments: list[sp.Expr], convention: str) -> Optional[bool]:
    """w = 0 and b a kink of σ: the loss gradient near w = 0 is v·σ'(z)·E[(v·σ(z) − tᵀx)·x] with σ'(z) the slope on
    the side of b that z falls on, so only the side each sample falls on matters."""
    left, right = kink_slopes(case.act, case.b)
    support = case.domain.support
    if convention == "autograd":
        return all(is_zero_number(case.v * autograd_slope(case.act, case.b) * m) for m in moments)
    if symmetric_about_origin(support) and in_zeros(case.act, case.b):
        # x ↦ −x swaps the sides of every hyperplane through 0 and σ(b) = 0 makes the integrand even, so every
        # nearby gradient tends to the mean slope times the moments: L is differentiable at w = 0 (strict and Clarke
        # read the same gradient)
        return all(is_zero_number(case.v * (left + right) / 2 * m) for m in moments)
    if not all(p.coordinate_range(0)[0] > 0 for p in support):
        return None
    # support in {x₀ > 0}: w = ±εe₀ puts every sample on one side; those limits are v·σ'_±(b)·moments
    one_sided = [[case.v * slope * m for m in moments] for slope in (left, right)]
    if convention == "strict":
        return False if any(not is_zero_number(g) for side in one_sided for g in side) else None
    if all(is_zero_number(g) for g in one_sided[0]) or all(is_zero_number(g) for g in one_sided[1]):
        return True  # a limit of gradients is 0, so 0 is in Clarke's generalised gradient
    # every limit's first coordinate is v·E[σ'_±(b)·(v·σ(b) − tᵀx)·x₀]: bounded away from 0 when both slopes and
    # v·(v·σ(b) − tᵀx) keep one strict sign on the support, so 0 is not in the convex hull
    ranges = []
    for p in support:
        centre = sum(ti * xi for ti, xi in zip(case.t, p.point))
        ranges += [case.v * (case.v * case.act.expr.subs(Z, case.b) - centre - s * p.spread(case.t)) for s in (-1, 1)]
    if left * right > 0 and (all(r > 0 for r in ranges) or all(r < 0 for r in ranges)):
        return False
    return None


def loss_grad_zero(case: NeuronCase, convention: str) -> Optional[bool]:
    """B's gradient part for the training loss: ∂L/∂w is 0 under the convention. None where this module cannot
    decide exactly.

    ∂L/∂w_j = v·E[(v·σ(z) − tᵀx)·σ'(z)·x_j], with each piece of the support weighted equally. Decided exactly when:
    the read-out weight is 0 (L does not depend on w); ∂h/∂w = 0 on the support; w = 0 (σ(z), σ'(z) are constants
    and only the moments E[x], E[xxᵀ] remain; at a kink see :func:`_kink_loss_gradient_zero`); or a finite support
    (a finite sum; at a kink only autograd's slope gives it a value).
    """
    if case.v == 0:
        return True
    # Clarke's gradient of a sum can miss 0 when every term's contains it: only kink-free flatness carries over
    if _grad_w_zero_on(case, case.domain.support, "strict" if convention == "clarke" else convention):
        return True
    support, n = case.domain.support, case.domain.n
    if all(wi == 0 for wi in case.w):
        s_b = case.act.expr.subs(Z, case.b)
        moments = [
            case.v * s_b * sum(p.point[j] for p in support) / len(support)
            - sum(sum(case.t[i] * p.second_moment(i, j) for i in range(n)) for p in support) / len(support)
            for j in range(n)
        ]
        if is_kink(case.act, case.b):
            return _kink_loss_gradient_zero(case, moments, convention)
        return all(is_zero_number(case.v * derivative(case.act).subs(Z, case.b) * m) for m in moments)
    if all(p.dim == 0 for p in support):
        zs = [sum(wi * xi for wi, xi in zip(case.w, p.point)) + case.b for p in support]
        if any(is_kink(case.act, z) for z in zs) and convention != "autograd":
            return None
        d = derivative(case.act)
        slopes = [autograd_slope(case.act, z) if is_kink(case.act, z) else d.subs(Z, z) for z in zs]
        grads = [
            sum(
                (case.v * case.act.expr.subs(Z, z) - sum(ti * xi for ti, xi in zip(case.t, p.point)))
                * slope
                * p.point[j]
                for z, slope, p in zip(zs, slopes, support)
            )
            for j in range(n)
        ]
        return all(is_zero_number(case.v * g) for g in grads)
    return None


def gradient_zero(case: NeuronCase, notion: str, convention: str) -> Optional[bool]:
    if notion == "grad_x":
        return grad_x_zero(case, convention)
    if notion == "grad_w":
        return grad_w_zero(case, convention)
    if notion == "loss":
        return loss_grad_zero(case, convention)
    raise ValueError(f"unknown gradient notion {notion!r}")


def statement_b(case: NeuronCase, notion: str, convention: str) -> Optional[bool]:
    """B[notion]: zero gradient on D (under the convention) and a zero of h somewhere in D."""
    g = gradient_zero(case, notion, convention)
    if g is False:
        return False
    if not has_zero(case):
        return False
    return g


def implication(case: NeuronCase, notion: str, direction: str, convention: str) -> Optional[bool]:
    """Truth of A ⇒ B[notion] or B[notion] ⇒ A on this case; None where B cannot be decided exactly."""
    a = dormant(case)
    b = statement_b(case, notion, convention)
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


def lemma3(case: NeuronCase, convention: str) -> bool:
    """Lemma 3's first claim on this case: ∇ₓh = 0 on D ⇒ h is constant on D.

    With ∇ₓh = 0, h is constant on each piece (w = 0, or z(piece) lies in the flat set), so comparing one value per
    piece decides it.
    """
    if not grad_x_zero(case, convention):
        return True
    values = [
        case.act.expr.subs(Z, case.z_range(p)[0] if p.dim == 0 else sum(case.z_range(p)) / 2)
        for p in case.domain.region
    ]
    return all(is_zero_number(v - values[0]) for v in values[1:])
