"""The activation catalogue: each σ once as a sympy expression (for proofs) and once as a torch module (for the
metric code), with the facts the lemmas depend on computed from the expression, never typed in.

Facts (all subsets of ℝ, computed by :func:`analyse`):

* ``zeros``  Z0 = {z : σ(z) = 0}
* ``kinks``  K  = points where σ' has different one-sided limits (σ' does not exist there)
* ``flat``   C0 = {z ∉ K : σ'(z) = 0}

For a real-analytic σ (identity, tanh, sigmoid, softplus, SiLU, GELU) whose critical set sympy cannot solve, C0 is
known to be discrete (σ' is analytic and not identically zero), non-emptiness is shown by a sign change of σ'
between two rationals (intermediate value theorem), and :func:`critical_point_count` counts its points exactly.

At a kink σ' does not exist, and what "the gradient is 0" means there is a convention (:data:`CONVENTIONS`):
``strict`` (a gradient that does not exist is not 0), ``autograd`` (PyTorch's value at the kink, what ``ocp.metrics``
computes) or ``clarke`` (0 lies in Clarke's generalised gradient, the interval between the one-sided slopes).
Off the kinks all three read σ'.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Optional

import sympy as sp
import torch
from torch import Tensor, nn

Z = sp.Symbol("z", real=True)

#: Precision (decimal digits) for sign decisions on transcendental numbers at rational points.
SIGN_DIGITS = 60

#: How a gradient at a kink is read; autograd first, since it is what the metrics measure.
CONVENTIONS: tuple[str, ...] = ("autograd", "strict", "clarke")


class SmoothstepClamp(nn.Module):
    """σ(z) = 3t² − 2t³ with t = clamp(z, 0, 1): C¹, zero on (−∞, 0], one on [1, ∞), flat on both."""

    def forward(self, z: Tensor) -> Tensor:
        t = z.clamp(0.0, 1.0)
        return t * t * (3.0 - 2.0 * t)


@dataclass(frozen=True)
class Activation:
    """``derivative_sign``: an expression with the sign of σ' whose derivative has roots sympy can solve, for an
    analytic σ whose own σ'' has none; :func:`critical_point_count` checks that σ' divided by it is positive."""

    name: str
    expr: sp.Expr
    module: Callable[[], nn.Module]
    analytic: bool
    derivative_sign: Optional[sp.Expr] = None

    def __repr__(self) -> str:
        return f"Activation({self.name})"


ACTIVATIONS: tuple[Activation, ...] = (
    Activation("identity", Z, nn.Identity, analytic=True),
    Activation("relu", sp.Piecewise((0, Z <= 0), (Z, True)), nn.ReLU, analytic=False),
    Activation("leaky_relu", sp.Piecewise((Z / 100, Z < 0), (Z, True)), lambda: nn.LeakyReLU(0.01), analytic=False),
    Activation("relu6", sp.Piecewise((0, Z <= 0), (Z, Z <= 6), (6, True)), nn.ReLU6, analytic=False),
    Activation("tanh", sp.tanh(Z), nn.Tanh, analytic=True),
    Activation("sigmoid", 1 / (1 + sp.exp(-Z)), nn.Sigmoid, analytic=True),
    Activation("softplus", sp.log(1 + sp.exp(Z)), nn.Softplus, analytic=True),
    Activation("silu", Z / (1 + sp.exp(-Z)), nn.SiLU, analytic=True, derivative_sign=Z + sp.exp(Z) + 1),
    Activation("gelu", Z / 2 * (1 + sp.erf(Z / sp.sqrt(2))), nn.GELU, analytic=True),
    Activation("elu", sp.Piecewise((sp.exp(Z) - 1, Z < 0), (Z, True)), nn.ELU, analytic=False),
    Activation(
        "smoothstep",
        sp.Piecewise((0, Z <= 0), (3 * Z**2 - 2 * Z**3, Z < 1), (1, True)),
        SmoothstepClamp,
        analytic=False,
    ),
)

ACTIVATION_NAMES: tuple[str, ...] = tuple(a.name for a in ACTIVATIONS)


def by_name(name: str) -> Activation:
    for act in ACTIVATIONS:
        if act.name == name:
            return act
    raise KeyError(f"unknown activation {name!r}; known: {ACTIVATION_NAMES}")


@dataclass(frozen=True)
class Facts:
    """Sets of ℝ describing σ; ``flat_points`` are rational brackets (a, b) each holding a point of C0 by sign change
    when C0 is not solvable in closed form."""

    zeros: sp.Set
    kinks: sp.Set
    flat: sp.Set
    flat_solved: bool
    flat_brackets: tuple[tuple[sp.Rational, sp.Rational], ...]
    continuous: bool

    @property
    def c1(self) -> bool:
        return self.continuous and is_empty(self.kinks)


def decided(answer: Optional[bool], what: str) -> bool:
    """sympy's three-valued answer, with "undecided" raised rather than read as False."""
    if answer is None:
        raise ArithmeticError(f"sympy cannot decide {what}")
    return bool(answer)


def is_empty(s: sp.Set) -> bool:
    return decided(s.is_empty, f"whether {s} is empty")


def is_subset(a: sp.Set, b: sp.Set) -> bool:
    answer = a.is_subset(b)
    if answer is None:  # sympy's is_subset gives up on some unions; the complement is usually explicit
        return is_empty(sp.Complement(a, b))
    return bool(answer)


def derivative(act: Activation) -> sp.Expr:
    return sp.diff(act.expr, Z)


def _boundaries(expr: sp.Expr) -> list[sp.Expr]:
    """Real numbers at which a Piecewise switches branch."""
    points: set[sp.Expr] = set()
    for pw in expr.atoms(sp.Piecewise):
        for _, cond in pw.args:
            for rel in (
                [cond] if isinstance(cond, sp.core.relational.Relational) else cond.atoms(sp.core.relational.Relational)
            ):
                points.update(side for side in (rel.lhs, rel.rhs) if side.is_number)
    return sorted(points, key=float)


def one_sided_limit(expr: sp.Expr, c: sp.Expr, direction: str) -> sp.Expr:
    """One-sided limit at a branch point, taken on the branch active on that side (sympy's own ``limit`` of a
    Piecewise evaluates the branch condition at c itself and gets kinks wrong)."""
    probe = c - sp.Rational(1, 10**6) if direction == "-" else c + sp.Rational(1, 10**6)
    branch = expr
    while isinstance(branch, sp.Piecewise):
        branch = next(e for e, cond in branch.args if bool(cond.subs(Z, probe)))
    return sp.limit(branch, Z, c, direction)


def value(expr: sp.Expr, c: sp.Expr) -> sp.Expr:
    return expr.subs(Z, c)


def is_zero_at(expr: sp.Expr, c: sp.Expr) -> bool:
    return is_zero_number(value(expr, c))


def is_zero_number(v: sp.Expr) -> bool:
    """Exact when sympy decides; otherwise |v| < 10^-(SIGN_DIGITS-10) at SIGN_DIGITS digits."""
    decided = v.is_zero
    if decided is None:
        decided = sp.simplify(v).is_zero
    if decided is not None:
        return bool(decided)
    return abs(sp.N(v, SIGN_DIGITS)) < sp.Float(10) ** (10 - SIGN_DIGITS)


def sign_at(expr: sp.Expr, c: sp.Expr) -> int:
    v = sp.N(value(expr, c), SIGN_DIGITS)
    return int(sp.sign(v))


def _sign_change_brackets(
    expr: sp.Expr, grid: tuple[int, ...] = tuple(range(-16, 17))
) -> tuple[tuple[sp.Rational, sp.Rational], ...]:
    """Brackets (a, b) of consecutive grid points z = k/8 where expr changes sign: each holds a root (IVT)."""
    points = [sp.Rational(k, 8) for k in grid]
    signs = [sign_at(expr, p) for p in points]
    return tuple((a, b) for a, b, sa, sb in zip(points, points[1:], signs, signs[1:]) if sa * sb < 0)


@lru_cache(maxsize=None)
def analyse(act: Activation) -> Facts:
    d = derivative(act)
    kinks, continuous = [], True
    for c in _boundaries(act.expr):
        if one_sided_limit(act.expr, c, "-") != one_sided_limit(act.expr, c, "+"):
            continuous = False
        if one_sided_limit(d, c, "-") != one_sided_limit(d, c, "+"):
            kinks.append(c)
    kink_set = sp.FiniteSet(*kinks) if kinks else sp.S.EmptySet
    zeros = sp.solveset(act.expr, Z, sp.S.Reals)
    flat = sp.solveset(d, Z, sp.S.Reals)
    solved = not flat.atoms(sp.ConditionSet) and not isinstance(flat, sp.ConditionSet)
    brackets: tuple[tuple[sp.Rational, sp.Rational], ...] = ()
    if solved:
        flat = sp.Complement(flat, kink_set) if kinks else flat
    else:
        brackets = _sign_change_brackets(d)
    return Facts(
        zeros=zeros, kinks=kink_set, flat=flat, flat_solved=solved, flat_brackets=brackets, continuous=continuous
    )


def is_kink(act: Activation, c: sp.Expr) -> bool:
    return analyse(act).kinks.contains(c) is sp.true


def kink_slopes(act: Activation, c: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
    """(σ'₋(c), σ'₊(c)): the one-sided slopes at a kink."""
    d = derivative(act)
    return one_sided_limit(d, c, "-"), one_sided_limit(d, c, "+")


@lru_cache(maxsize=None)
def autograd_slope(act: Activation, c: sp.Expr) -> sp.Expr:
    """The derivative PyTorch's autograd returns for the torch module at the kink c (float64), as the exact one-sided
    slope it equals; a value that is neither one-sided slope raises."""
    z = torch.tensor([float(c)], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(act.module()(z).sum(), z)
    for slope in kink_slopes(act, c):
        if abs(float(slope) - grad.item()) <= 1e-12:
            return slope
    raise ArithmeticError(f"{act.name}: autograd's {grad.item()} at {c} is neither one-sided slope")


def kink_gradient_zero(act: Activation, c: sp.Expr, convention: str) -> bool:
    """Whether "σ'(c) = 0" holds at the kink c under the convention."""
    if convention == "strict":
        return False
    if convention == "autograd":
        return autograd_slope(act, c) == 0
    if convention == "clarke":
        left, right = kink_slopes(act, c)
        return min(left, right) <= 0 <= max(left, right)
    raise ValueError(f"unknown convention {convention!r}")


@lru_cache(maxsize=65536)
def in_flat(act: Activation, c: sp.Expr, convention: str) -> bool:
    """c ∈ C0 under the convention: σ'(c) = 0, or c is a kink the convention reads as flat."""
    if is_kink(act, c):
        return kink_gradient_zero(act, c, convention)
    return is_zero_at(derivative(act), c)


@lru_cache(maxsize=None)
def flat_set(act: Activation, convention: str) -> sp.Set:
    """C0 under the convention: the points where σ' = 0 plus the kinks the convention reads as flat."""
    facts = analyse(act)
    flat_kinks = [c for c in facts.kinks if kink_gradient_zero(act, c, convention)]
    return sp.Union(facts.flat, sp.FiniteSet(*flat_kinks)) if flat_kinks else facts.flat


@lru_cache(maxsize=65536)
def in_zeros(act: Activation, c: sp.Expr) -> bool:
    return is_zero_at(act.expr, c)


@lru_cache(maxsize=65536)
def interval_in_zeros(act: Activation, lo: sp.Expr, hi: sp.Expr) -> bool:
    """Whether the open interval (lo, hi) lies in Z0."""
    return is_subset(sp.Interval.open(lo, hi), analyse(act).zeros)


@lru_cache(maxsize=65536)
def interval_in_flat(act: Activation, lo: sp.Expr, hi: sp.Expr, convention: str) -> bool:
    """Whether the open interval (lo, hi) lies in C0 under the convention.

    An analytic σ' that is not identically zero vanishes on no open interval: a nonzero value at the midpoint
    settles it.
    """
    if not analyse(act).flat_solved:
        mid = (lo + hi) / 2
        if in_flat(act, mid, convention):
            raise ArithmeticError(f"{act.name}: σ' vanishes at the midpoint {mid}; cannot decide the interval")
        return False
    return is_subset(sp.Interval.open(lo, hi), flat_set(act, convention))


def flat_nonempty(act: Activation, convention: str) -> Optional[bool]:
    facts = analyse(act)
    if facts.flat_solved:
        return not is_empty(flat_set(act, convention))
    return True if facts.flat_brackets else None


def _sign(v: sp.Expr) -> int:
    if v in (sp.oo, -sp.oo):
        return 1 if v == sp.oo else -1
    return 0 if is_zero_number(v) else int(sp.sign(sp.N(v, SIGN_DIGITS)))


@dataclass(frozen=True)
class CriticalCount:
    count: int
    argument: str


@lru_cache(maxsize=None)
def critical_point_count(act: Activation) -> Optional[CriticalCount]:
    """The exact number of zeros of σ' for an analytic σ, with the argument; None where the argument does not apply.

    g is σ' or ``act.derivative_sign`` (checked: σ'/g simplifies to an expression sympy proves positive). The real
    roots of g', when sympy solves them, split ℝ into open intervals on which g' ≠ 0, so g is strictly monotone on
    each and has a zero inside one exactly when its values (limits at ±∞) at the two ends have strictly opposite
    signs; zeros at the split points are counted directly.
    """
    d = derivative(act)
    g = act.derivative_sign if act.derivative_sign is not None else d
    if g is not d and sp.simplify(d / g).is_positive is not True:
        return None
    splits = sp.solveset(sp.diff(g, Z), Z, sp.S.Reals)
    if not isinstance(splits, sp.FiniteSet) and not is_empty(splits):
        return None
    points = sorted(splits, key=float) if isinstance(splits, sp.FiniteSet) else []
    ends = [sp.limit(g, Z, -sp.oo)] + [g.subs(Z, p) for p in points] + [sp.limit(g, Z, sp.oo)]
    signs = [_sign(e) for e in ends]
    count = signs[1:-1].count(0) + sum(1 for a, b in zip(signs, signs[1:]) if a * b < 0)
    factor = "g = σ'" if g is d else f"g = {g} has the sign of σ' (σ'/g = {sp.simplify(d / g)} > 0)"
    roots = ", ".join(map(str, points)) or "none"
    argument = (
        f"{factor}; g' has the real roots: {roots}, so g is strictly monotone between them; the signs of g at "
        f"−∞, {roots + ', ' if points else ''}+∞ are {', '.join(map(str, signs))}: σ' has exactly {count} zero(s)"
    )
    return CriticalCount(count, argument)
