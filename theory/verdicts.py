"""Which cell of the verdict table holds, derived from the activation's zero/flat/kink sets.

Each rule below reduces a statement about h(x) = σ(wᵀx + b) on a domain kind to a fact about the subsets Z0
(zeros), C0 (flat points) and K (kinks) of ℝ that :func:`theory.activations.analyse` computes with sympy. The
reductions (written out in ``theory/README.md``) use only: z(D) is an open interval for an open connected D and
w ≠ 0, a finite set for a finite D, a point when w ⟂ D; a function with zero derivative on an interval is constant
there. A rule answers ``fails`` only with a mechanism that :mod:`theory.counterexamples` can instantiate and verify.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

import sympy as sp

from theory.activations import Z, Activation, analyse, flat_nonempty, in_flat, is_empty, is_subset

PROVED, FAILS, UNDECIDED = "proved", "fails", "undecided"


@dataclass(frozen=True)
class Verdict:
    status: str
    reason: str
    mechanism: Optional[str] = None


@dataclass(frozen=True)
class SetFacts:
    zeros_empty: bool
    zeros_flat: bool  # Z0 ⊆ C0: every zero is a flat point
    zero_interior_flat: bool  # int Z0 ⊆ C0
    flat_nonempty: Optional[bool]
    flat_meets_zeros: bool  # C0 ∩ Z0 ≠ ∅
    flat_outside_zeros: Optional[bool]  # C0 \ Z0 ≠ ∅
    open_flat_meets_zeros: bool  # int C0 ∩ Z0 ≠ ∅
    open_flat_outside_zeros: bool  # int C0 \ Z0 ≠ ∅


def _points(s: sp.Set) -> Optional[list[sp.Expr]]:
    return list(s) if isinstance(s, sp.FiniteSet) else None


@lru_cache(maxsize=None)
def set_facts(act: Activation) -> SetFacts:
    f = analyse(act)
    zeros, zero_points = f.zeros, _points(f.zeros)
    if zero_points is not None:
        zeros_flat = all(in_flat(act, c) for c in zero_points)
        meets = any(in_flat(act, c) for c in zero_points)
    else:
        zeros_flat = is_subset(zeros, f.flat)
        meets = not is_empty(sp.Intersection(f.flat, zeros))
    if f.flat_solved:
        outside: Optional[bool] = not is_empty(sp.Complement(f.flat, zeros))
        interior = f.flat.interior
    else:
        # σ analytic: C0 is discrete (empty interior); a bracket free of zeros holds a flat point outside Z0.
        outside = any(is_empty(sp.Intersection(zeros, sp.Interval(a, b))) for a, b in f.flat_brackets) or None
        interior = sp.S.EmptySet
    return SetFacts(
        zeros_empty=is_empty(zeros),
        zeros_flat=zeros_flat,
        zero_interior_flat=is_subset(zeros.interior, f.flat) if f.flat_solved else is_empty(zeros.interior),
        flat_nonempty=flat_nonempty(act),
        flat_meets_zeros=meets,
        flat_outside_zeros=outside,
        open_flat_meets_zeros=not is_empty(sp.Intersection(interior, zeros)),
        open_flat_outside_zeros=not is_empty(sp.Complement(interior, zeros)),
    )


def theorem_verdict(act: Activation, kind: str, notion: str, direction: str) -> Verdict:
    s = set_facts(act)
    if direction == "A=>B":
        if s.zeros_empty:
            return Verdict(PROVED, "vacuous: σ has no zero, so s > 0")
        if notion == "grad_x" and kind in ("open", "disconnected"):
            if s.zero_interior_flat:
                return Verdict(PROVED, "z(D) is open, so z(D) ⊆ int Z0 ⊆ C0 (or w = 0, h constant in x)")
            return Verdict(UNDECIDED, "int Z0 ⊄ C0 was not shown")
        if kind == "batch" and notion != "loss":
            return Verdict(FAILS, "h = 0 on the batch does not make h = 0 on the box", "batch-misses")
        if s.zeros_flat:
            return Verdict(PROVED, "Z0 ⊆ C0: σ(z) = 0 forces σ'(z) = 0 pointwise")
        mechanism = "sloped-zero-hyperplane" if notion == "grad_x" else "zero-weights-at-zero"
        return Verdict(FAILS, "some zero of σ is not a flat point (σ' ≠ 0 or a kink)", mechanism)
    if direction != "B=>A":
        raise ValueError(f"unknown direction {direction!r}")
    if s.zeros_empty:
        return Verdict(PROVED, "vacuous: σ has no zero, B cannot hold")
    if notion == "loss":
        return Verdict(FAILS, "read-out weights 0 give ∂L/∂w = 0 for a live unit", "dead-outgoing")
    if kind in ("open", "affine", "batch"):
        return Verdict(PROVED, "D connected of positive dimension: σ' = 0 on the interval z(D), so h is constant")
    if notion == "grad_w" and kind == "finite":
        if s.flat_nonempty is False:
            return Verdict(PROVED, "C0 = ∅: ∂h/∂w = σ'(z)x = 0 forces x = 0, so D ⊆ {0}")
        if s.flat_nonempty:
            return Verdict(FAILS, "the origin has ∂h/∂w = 0 whatever h(0) is, next to a flat point", "origin-plus-flat")
        return Verdict(UNDECIDED, "C0 not decided")
    meets, outside = (
        (s.flat_meets_zeros, s.flat_outside_zeros) if kind == "finite" else (s.open_flat_meets_zeros, s.open_flat_outside_zeros)
    )
    if meets and outside:
        return Verdict(FAILS, "two flat levels, one of them 0, on separate pieces of D", "two-flat-levels")
    if meets is False or outside is False:
        return Verdict(PROVED, "flat points are all zeros or none is: one level on all of D")
    return Verdict(UNDECIDED, "C0 \\ Z0 not decided")


def _flat_levels(act: Activation, open_only: bool) -> Optional[int]:
    """How many values σ takes on C0 (or on int C0): one per interval component; None when C0 is not solved."""
    f = analyse(act)
    if not f.flat_solved:
        return 0 if open_only else None  # analytic σ: int C0 = ∅
    flat = f.flat.interior if open_only else f.flat
    if is_empty(flat):
        return 0
    parts = list(flat.args) if isinstance(flat, sp.Union) else [flat]
    points = []
    for part in parts:
        if isinstance(part, sp.FiniteSet):
            points += list(part)
        else:
            lo, hi = part.inf, part.sup
            points.append(hi - 1 if lo is sp.S.NegativeInfinity else lo + 1 if hi is sp.S.Infinity else (lo + hi) / 2)
    return len({sp.nsimplify(act.expr.subs(Z, p)) for p in points})


def lemma3_verdict(act: Activation, kind: str) -> Verdict:
    """∇ₓh = 0 on D ⇒ h constant on D."""
    if kind in ("open", "affine", "batch"):
        return Verdict(PROVED, "D connected: σ' = 0 on the interval z(D)")
    levels = _flat_levels(act, open_only=kind == "disconnected")
    if levels is None:
        return Verdict(UNDECIDED, "C0 has no closed form: the number of flat levels is not decided")
    if levels >= 2:
        return Verdict(FAILS, "σ is flat at two levels; D's pieces can sit on both", "two-flat-levels")
    return Verdict(PROVED, "σ takes at most one value on its flat set")


def lemma1_verdict(act: Activation, kind: str) -> Verdict:
    s = set_facts(act)
    if not analyse(act).continuous:
        return Verdict(UNDECIDED, "σ not continuous")
    if s.zeros_empty:
        return Verdict(PROVED, "vacuous: σ has no zero")
    if kind == "batch":
        return Verdict(FAILS, "the batch does not charge the box", "batch-misses")
    return Verdict(PROVED, "σ continuous and μ charges every relatively open subset of D")
