"""Which cell of the verdict table holds, derived from the activation's zero/flat/kink sets.

Each rule below reduces a statement about h(x) = σ(wᵀx + b) on a domain kind to a fact about the subsets Z0
(zeros), C0 (flat points) and K (kinks) of ℝ that :func:`theory.activations.analyse` computes with sympy. The
reductions (written out in ``theory/README.md``) use only: z(D) is an open interval for an open connected D and
w ≠ 0, a finite set for a finite D, a point when w ⟂ D; a function with zero derivative on an interval is constant
there. A rule answers ``fails`` only with a mechanism that :mod:`theory.counterexamples` can instantiate and verify,
and ``vacuous`` when the implication's premise can never hold. Gradients at kinks are read under one of the
conventions of :data:`theory.activations.CONVENTIONS`, which enters through C0.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

import sympy as sp

from theory.activations import (
    Activation,
    Z,
    analyse,
    critical_point_count,
    flat_nonempty,
    flat_set,
    in_flat,
    is_empty,
    is_subset,
    kink_slopes,
)

#: "vacuous": the premise of the implication can never hold, so it holds without saying anything.
PROVED, VACUOUS, FAILS, UNDECIDED = "proved", "vacuous", "fails", "undecided"


@dataclass(frozen=True)
class Verdict:
    status: str
    reason: str
    mechanism: Optional[str] = None


@dataclass(frozen=True)
class SetFacts:
    """Facts about Z0 and C0, with C0 read under one gradient convention."""

    zeros_empty: bool
    zeros_flat: bool  # Z0 ⊆ C0: every zero is a flat point
    zero_interior_flat: bool  # int Z0 ⊆ C0
    kink_zeros: tuple[sp.Expr, ...]  # Z0 ∩ K
    flat_nonempty: Optional[bool]
    flat_meets_zeros: bool  # C0 ∩ Z0 ≠ ∅
    flat_outside_zeros: Optional[bool]  # C0 \ Z0 ≠ ∅
    open_flat_meets_zeros: bool  # int C0 ∩ Z0 ≠ ∅
    open_flat_outside_zeros: bool  # int C0 \ Z0 ≠ ∅


def _points(s: sp.Set) -> Optional[list[sp.Expr]]:
    return list(s) if isinstance(s, sp.FiniteSet) else None


@lru_cache(maxsize=None)
def set_facts(act: Activation, convention: str) -> SetFacts:
    f = analyse(act)
    zeros, zero_points, flat = f.zeros, _points(f.zeros), flat_set(act, convention)
    if zero_points is not None:
        zeros_flat = all(in_flat(act, c, convention) for c in zero_points)
        meets = any(in_flat(act, c, convention) for c in zero_points)
    else:
        zeros_flat = is_subset(zeros, flat)
        meets = not is_empty(sp.Intersection(flat, zeros))
    if f.flat_solved:
        outside: Optional[bool] = not is_empty(sp.Complement(flat, zeros))
        interior = flat.interior
    else:
        # σ analytic: C0 is discrete (empty interior); a bracket free of zeros holds a flat point outside Z0.
        outside = any(is_empty(sp.Intersection(zeros, sp.Interval(a, b))) for a, b in f.flat_brackets) or None
        interior = sp.S.EmptySet
    return SetFacts(
        zeros_empty=is_empty(zeros),
        zeros_flat=zeros_flat,
        zero_interior_flat=is_subset(zeros.interior, flat) if f.flat_solved else is_empty(zeros.interior),
        kink_zeros=tuple(c for c in f.kinks if zeros.contains(c) is sp.true),
        flat_nonempty=flat_nonempty(act, convention),
        flat_meets_zeros=meets,
        flat_outside_zeros=outside,
        open_flat_meets_zeros=not is_empty(sp.Intersection(interior, zeros)),
        open_flat_outside_zeros=not is_empty(sp.Complement(interior, zeros)),
    )


def _sloped_zero_mechanism(act: Activation, notion: str, convention: str) -> str:
    """The failing zero is a kink the convention does not read as flat, or a zero where σ' ≠ 0."""
    kinked = any(not in_flat(act, c, convention) for c in set_facts(act, convention).kink_zeros)
    if notion == "grad_x":
        return "kink-hyperplane" if kinked else "sloped-zero-hyperplane"
    if notion == "grad_w":
        return "kink-zero-weights" if kinked else "zero-weights-at-zero"
    return "kink-symmetric-inputs" if kinked else "zero-weights-at-zero"


def theorem_verdict(act: Activation, kind: str, notion: str, direction: str, convention: str) -> Verdict:
    s = set_facts(act, convention)
    if direction == "A=>B":
        if s.zeros_empty:
            return Verdict(VACUOUS, "σ has no zero", None)
        if notion == "grad_x" and kind in ("open", "disconnected"):
            if s.zero_interior_flat:
                return Verdict(PROVED, "z(D) is open, so z(D) ⊆ int Z0 ⊆ C0 (or w = 0, h constant in x)")
            return Verdict(UNDECIDED, "int Z0 ⊄ C0 was not shown")
        if kind == "batch" and notion != "loss":
            return Verdict(FAILS, "h = 0 on the batch does not make h = 0 on the box", "batch-misses")
        if not s.zeros_flat:
            return Verdict(
                FAILS,
                "some zero of σ is not a flat point (σ' ≠ 0, or a kink not read as flat)",
                _sloped_zero_mechanism(act, notion, convention),
            )
        if notion == "loss" and convention == "clarke" and s.kink_zeros:
            if any(sum(kink_slopes(act, c)) != 0 for c in s.kink_zeros):
                return Verdict(
                    FAILS,
                    "a zero at a kink: w = 0 on inputs symmetric about 0 makes L differentiable "
                    "with gradient ½(σ'₋ + σ'₊)·E[…] ≠ 0",
                    "kink-symmetric-inputs",
                )
            return Verdict(UNDECIDED, "a zero at a kink with σ'₋ + σ'₊ = 0 was not decided")
        return Verdict(PROVED, "Z0 ⊆ C0: σ(z) = 0 forces σ'(z) = 0 pointwise, so every term of the gradient is 0")
    if direction != "B=>A":
        raise ValueError(f"unknown direction {direction!r}")
    if s.zeros_empty:
        return Verdict(VACUOUS, "σ has no zero", None)
    if notion == "loss":
        return Verdict(FAILS, "read-out weights 0 give ∂L/∂w = 0 for a live unit", "dead-outgoing")
    if notion == "grad_w" and kind != "finite" and not s.flat_meets_zeros:
        # B needs ∂h/∂w = σ'(z)·x = 0 at the points x ≠ 0 that D has near its zero of h: a zero of σ in C0
        return Verdict(VACUOUS, "no zero of σ is flat", None)
    if kind in ("open", "affine", "batch"):
        if notion == "grad_w":
            return Verdict(
                PROVED,
                "D connected of positive dimension: σ' = 0 on z(D \\ {0}), so h is constant on "
                "each connected piece of D \\ {0} (two when D is one-dimensional and 0 ∈ D) and, h being "
                "continuous, on D",
            )
        return Verdict(
            PROVED, "D connected of positive dimension: σ' = 0 on the interval z(D) (or w = 0), so h is constant"
        )
    if notion == "grad_w" and kind == "finite":
        if s.flat_nonempty is False:
            return Verdict(PROVED, "C0 = ∅: ∂h/∂w = σ'(z)x = 0 forces x = 0, so D ⊆ {0}")
        if s.flat_nonempty:
            return Verdict(FAILS, "the origin has ∂h/∂w = 0 whatever h(0) is, next to a flat point", "origin-plus-flat")
        return Verdict(UNDECIDED, "C0 not decided")
    meets, outside = (
        (s.flat_meets_zeros, s.flat_outside_zeros)
        if kind == "finite"
        else (s.open_flat_meets_zeros, s.open_flat_outside_zeros)
    )
    if meets and outside:
        return Verdict(FAILS, "two flat levels, one of them 0, on separate pieces of D", "two-flat-levels")
    if meets is False or outside is False:
        return Verdict(PROVED, "C0 does not both meet Z0 and leave it: one level on all of D")
    return Verdict(UNDECIDED, "C0 \\ Z0 not decided")


def _flat_levels(act: Activation, open_only: bool, convention: str) -> tuple[Optional[int], str]:
    """How many values σ takes on C0 (or on int C0), with the reason; None when it is not decided."""
    f = analyse(act)
    if not f.flat_solved:
        if open_only:
            return 0, "σ analytic: int C0 = ∅"
        count = critical_point_count(act)
        if count is None or count.count > 1:
            return None, "C0 has no closed form and is not a single point"
        return count.count, count.argument  # at most one flat point: at most one level
    flat = flat_set(act, convention)
    flat = flat.interior if open_only else flat
    if is_empty(flat):
        return 0, "C0 = ∅"
    parts = list(flat.args) if isinstance(flat, sp.Union) else [flat]
    points = []
    for part in parts:
        if isinstance(part, sp.FiniteSet):
            points += list(part)
        else:
            lo, hi = part.inf, part.sup
            points.append(hi - 1 if lo is sp.S.NegativeInfinity else lo + 1 if hi is sp.S.Infinity else (lo + hi) / 2)
    return len({sp.nsimplify(act.expr.subs(Z, p)) for p in points}), "one value per interval of C0"


def lemma3_verdict(act: Activation, kind: str, convention: str) -> Verdict:
    """∇ₓh = 0 on D ⇒ h constant on D."""
    if kind in ("open", "affine", "batch"):
        return Verdict(PROVED, "D connected: σ' = 0 on the interval z(D)")
    levels, why = _flat_levels(act, open_only=kind == "disconnected", convention=convention)
    if levels is None:
        return Verdict(UNDECIDED, why)
    if levels >= 2:
        return Verdict(FAILS, "σ is flat at two levels; D's pieces can sit on both", "two-flat-levels")
    return Verdict(PROVED, f"σ takes at most one value on its flat set ({why})")


def lemma1_verdict(act: Activation, kind: str) -> Verdict:
    s = set_facts(act, "strict")  # Lemma 1 involves no gradient
    if not analyse(act).continuous:
        return Verdict(UNDECIDED, "σ not continuous")
    if s.zeros_empty:
        return Verdict(VACUOUS, "σ has no zero", None)
    if kind == "batch":
        return Verdict(FAILS, "the batch does not charge the box", "batch-misses")
    return Verdict(PROVED, "σ continuous and μ charges every relatively open subset of D")
