"""Case generators: layers (w, b, read-out), activations and domains of every kind, driven either by hypothesis
(:func:`cases`, shrinkable) or by a seeded ``random.Random`` (:func:`premise_cases_for`, for the report). One
generator serves both through the small :class:`Picker` interface.

Numbers are dyadic rationals k/4, so float64 holds inputs and pre-activations exactly. The neuron is drawn in one of
four modes: ``random``; ``dormant`` (aims at A: z kept inside the zero set, w = 0 or w ⟂ an affine patch at an
isolated zero); ``flat`` (aims at B: z inside a flat stretch of σ); ``crossing`` (a zero of σ inside D).

:func:`build_premise_case` builds cases that satisfy a cell's premise (A, B, or ∇ₓh = 0) by construction, so that
the implication is really tested: it picks zero and flat points of σ first, then w and b, then the domain.
"""

from __future__ import annotations

import random
from typing import Callable, Iterator, Optional, Protocol, Sequence, TypeVar

import sympy as sp
from hypothesis import strategies as st

from theory.activations import ACTIVATIONS, Activation, analyse, flat_set, is_empty
from theory.cases import KINDS, Domain, NeuronCase, Piece, vec

T = TypeVar("T")


class Picker(Protocol):
    def choice(self, options: Sequence[T]) -> T: ...

    def integer(self, lo: int, hi: int) -> int: ...


class RandomPicker:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def choice(self, options: Sequence[T]) -> T:
        return self.rng.choice(list(options))

    def integer(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)


class DrawPicker:
    def __init__(self, draw: Callable) -> None:
        self.draw = draw

    def choice(self, options: Sequence[T]) -> T:
        return self.draw(st.sampled_from(list(options)))

    def integer(self, lo: int, hi: int) -> int:
        return self.draw(st.integers(lo, hi))


def _q(pick: Picker, bound: int = 8) -> sp.Rational:
    return sp.Rational(pick.integer(-bound, bound), 4)


def _unit(n: int, i: int) -> tuple[sp.Rational, ...]:
    return vec(*[int(i == j) for j in range(n)])


def _box(pick: Picker, n: int, centre: Optional[tuple] = None) -> Piece:
    centre = centre if centre is not None else tuple(_q(pick) for _ in range(n))
    return Piece(
        vec(*centre),
        tuple(_unit(n, i) for i in range(n)),
        pick.choice([sp.Rational(1, 4), sp.Rational(1, 2), sp.Integer(1)]),
    )


def _inner_points(pick: Picker, box: Piece, count: int) -> tuple[Piece, ...]:
    """Points strictly inside a box: dyadic offsets k/8 of the radius, |k| ≤ 7 (exact in float)."""
    pts = []
    for _ in range(count):
        pts.append(Piece(tuple(c + box.radius * sp.Rational(pick.integer(-7, 7), 8) for c in box.point)))
    return tuple(pts)


def _domain(pick: Picker, kind: str, n: int) -> Domain:
    if kind == "open":
        box = _box(pick, n)
        return Domain(kind, (Piece(box.point, box.basis, box.radius, ball=pick.choice([False, True])),))
    if kind == "batch":
        box = _box(pick, n)
        return Domain(kind, _inner_points(pick, box, pick.integer(1, n + 2)), (box,))
    if kind == "finite":
        pts = {tuple(_q(pick) for _ in range(n)) for _ in range(pick.integer(1, n + 2))}
        if pick.integer(0, 3) == 0:
            pts.add(tuple(sp.Integer(0) for _ in range(n)))  # what a layer sees when every upstream unit is dead
        return Domain(kind, tuple(Piece(vec(*p)) for p in sorted(pts)))
    if kind == "affine":
        fixed = pick.integer(0, n - 1)
        if n == 2 and pick.choice([True, False]):
            a, c = pick.integer(1, 3), pick.integer(-3, 3)  # the line {x : x₀·c − x₁·a = const}
            basis: tuple = (vec(a, c),)
        else:
            basis = tuple(_unit(n, i) for i in range(n) if i != fixed)
        return Domain(
            kind, (Piece(tuple(_q(pick) for _ in range(n)), basis, pick.choice([sp.Rational(1, 2), sp.Integer(1)])),)
        )
    if kind == "disconnected":
        first = _box(pick, n)
        gap = 2 * first.radius + sp.Rational(pick.integer(1, 8), 4)
        second = Piece(tuple(c + gap * int(i == 0) for i, c in enumerate(first.point)), first.basis, first.radius)
        return Domain(kind, (first, second))
    raise ValueError(f"unknown domain kind {kind!r}")


def _z_offsets(w: tuple, pieces: Sequence[Piece]) -> tuple[sp.Rational, sp.Rational]:
    """Range of wᵀx (no bias) over the pieces: the bias then moves it where a mode wants it."""
    lo, hi = [], []
    for p in pieces:
        centre = sum(wi * pi for wi, pi in zip(w, p.point))
        lo.append(centre - p.spread(w))
        hi.append(centre + p.spread(w))
    return min(lo), max(hi)


def _neuron(pick: Picker, act: Activation, domain: Domain, n: int) -> tuple[tuple, sp.Rational]:
    f = analyse(act)
    mode = pick.choice(["random", "dormant", "flat", "crossing"])
    w = tuple(_q(pick, 4) for _ in range(n))
    if pick.integer(0, 5) == 0:
        w = vec(*[0] * n)
    pieces = domain.support + domain.region
    if mode == "dormant" and not is_empty(f.zeros):
        if not is_empty(f.zeros.interior):
            _, hi = _z_offsets(w, domain.support)
            return w, f.zeros.sup - hi - sp.Rational(pick.integer(0, 2), 4)
        c = list(f.zeros)[0]
        piece = domain.support[0]
        if domain.kind == "affine" and pick.choice([True, False]):
            # w orthogonal to the patch: the unit is constant on it
            normal = [sp.Integer(0)] * n
            if len(piece.basis) == n - 1 and all(sum(abs(x) for x in e) == 1 for e in piece.basis):
                normal[next(i for i in range(n) if all(e[i] == 0 for e in piece.basis))] = sp.Integer(1)
            else:
                e = piece.basis[0]
                normal[0], normal[1] = -e[1], e[0]
            w = tuple(normal)
            return w, c - sum(wi * pi for wi, pi in zip(w, piece.point))
        return vec(*[0] * n), c
    if mode == "flat" and f.flat_solved and not is_empty(f.flat.interior):
        components = list(f.flat.interior.args) if isinstance(f.flat.interior, sp.Union) else [f.flat.interior]
        if domain.kind == "disconnected" and len(components) > 1 and pick.choice([True, False]):
            return _straddle(domain, components[0], components[-1], n)
        component = pick.choice(components)
        lo, hi = _z_offsets(w, domain.support)
        if component.sup is sp.oo:
            return w, component.inf - lo + sp.Rational(pick.integer(0, 4), 4)
        return w, component.sup - hi - sp.Rational(pick.integer(0, 4), 4)
    if mode == "crossing" and not is_empty(f.zeros):
        lo, hi = _z_offsets(w, pieces)
        anchor = f.zeros.sup if f.zeros.sup.is_finite else sp.Integer(0)
        return w, anchor - (lo + hi) / 2
    return w, _q(pick)


def _straddle(domain: Domain, low: sp.Interval, high: sp.Interval, n: int) -> tuple[tuple, sp.Rational]:
    """w along e₀ steep enough that the first box maps into the low flat stretch and the second into the high one."""
    first, second = domain.support
    gap = second.point[0] - first.point[0]
    slope = (high.inf - low.sup) / (gap - 2 * first.radius) + sp.Rational(1, 4)
    w = vec(*([slope] + [0] * (n - 1)))
    return w, low.sup - slope * (first.point[0] + first.radius)


def build_case(pick: Picker, act: Optional[Activation] = None, kind: Optional[str] = None) -> NeuronCase:
    act = act or pick.choice(ACTIVATIONS)
    kind = kind or pick.choice(KINDS)
    n = pick.integer(2 if kind == "affine" else 1, 3)
    domain = _domain(pick, kind, n)
    w, b = _neuron(pick, act, domain, n)
    v = pick.choice([sp.Integer(0), sp.Integer(1), -sp.Rational(1, 2)])
    target = tuple(_q(pick, 4) for _ in range(n))
    return NeuronCase(act, tuple(w), sp.nsimplify(b), domain, v=v, target=target)


def build_layer(pick: Picker, act: Optional[Activation] = None, kind: Optional[str] = None) -> tuple[NeuronCase, ...]:
    """1–4 units with one activation on one domain, each drawn like a single case (so some are dormant)."""
    first = build_case(pick, act, kind)
    units = [first]
    for _ in range(pick.integer(0, 3)):
        w, b = _neuron(pick, first.act, first.domain, len(first.w))
        v = pick.choice([sp.Integer(0), sp.Integer(1), -sp.Rational(1, 2)])
        units.append(NeuronCase(first.act, tuple(w), sp.nsimplify(b), first.domain, v=v, target=first.target))
    return tuple(units)


@st.composite
def layers(draw: Callable, act: Optional[Activation] = None, kind: Optional[str] = None) -> tuple[NeuronCase, ...]:
    return build_layer(DrawPicker(draw), act, kind)


@st.composite
def cases(draw: Callable, act: Optional[Activation] = None, kind: Optional[str] = None) -> NeuronCase:
    return build_case(DrawPicker(draw), act, kind)


# ------------------------------------------------------------------------------------- premise-directed generation
#: What a case must satisfy for a cell to test anything: A (s = 0) for A ⇒ B and Lemma 1, B[notion] for B ⇒ A,
#: ∇ₓh = 0 for Lemma 3.
PREMISES: tuple[str, ...] = ("A", "B:grad_x", "B:grad_w", "B:loss", "grad_x=0")


def _rational_points(s: sp.Set) -> list[sp.Rational]:
    """A few rational points of a subset of ℝ: its rational elements, finite endpoints it contains, and points k/4
    inside each interval."""
    if isinstance(s, sp.Union):
        return [p for part in s.args for p in _rational_points(part)]
    if isinstance(s, sp.FiniteSet):
        return [p for p in s if p.is_Rational]
    if isinstance(s, sp.Interval):
        lo, hi = s.inf, s.sup
        ends = [
            e for e, is_open in ((lo, s.left_open), (hi, s.right_open)) if e.is_finite and not is_open and e.is_Rational
        ]
        if lo.is_infinite and hi.is_infinite:
            inner = [sp.Rational(k, 4) for k in range(-4, 5)]
        elif lo.is_infinite:
            inner = [hi - sp.Rational(k, 4) for k in range(1, 5)]
        elif hi.is_infinite:
            inner = [lo + sp.Rational(k, 4) for k in range(1, 5)]
        else:
            inner = [lo + (hi - lo) * sp.Rational(k, 4) for k in range(1, 4)]
        return ends + [p for p in inner if p.is_Rational]
    return []


def _stretches(s: sp.Set) -> list[sp.Interval]:
    """The open intervals of a subset of ℝ's interior."""
    interior = s.interior
    parts = list(interior.args) if isinstance(interior, sp.Union) else [interior]
    return [p for p in parts if isinstance(p, sp.Interval)]


def _solve_onto(pick: Picker, w: tuple, b: sp.Rational, target: sp.Rational, n: int) -> tuple:
    """A point x with wᵀx + b = target: free coordinates drawn, one coordinate with w_j ≠ 0 solved for."""
    x = [_q(pick) for _ in range(n)]
    j = next(i for i, wi in enumerate(w) if wi != 0)
    x[j] = (target - b - sum(wi * xi for i, (wi, xi) in enumerate(zip(w, x)) if i != j)) / w[j]
    return tuple(x)


def _level_domain(pick: Picker, kind: str, n: int, w: tuple, b: sp.Rational, targets: list) -> Domain:
    """A domain of a lower-dimensional kind on which z = wᵀx + b is constant on each piece, at the given targets."""
    if kind == "affine":
        j = next(i for i, wi in enumerate(w) if wi != 0)  # w = w_j·e_j: the patch spans the other axes
        point = _solve_onto(pick, w, b, targets[0], n)
        basis = tuple(_unit(n, i) for i in range(n) if i != j)
        return Domain(kind, (Piece(point, basis, pick.choice([sp.Rational(1, 2), sp.Integer(1)])),))
    points = sorted({_solve_onto(pick, w, b, t, n) for t in targets})
    pieces = tuple(Piece(vec(*p)) for p in points)
    if kind == "finite":
        return Domain(kind, pieces)
    centre = points[0]  # batch: the box the batch was drawn from holds every point
    radius = max(abs(a - c) for p in points for a, c in zip(p, centre)) + sp.Rational(1, 2)
    return Domain(kind, pieces, (Piece(centre, tuple(_unit(n, i) for i in range(n)), radius),))


def _stretch_case(pick: Picker, kind: str, n: int, stretch: sp.Interval) -> Optional[tuple[tuple, sp.Rational, Domain]]:
    """w ≠ 0 and b placing z(D) (support and region) strictly inside the open interval ``stretch``."""
    domain = _domain(pick, kind, n)
    w = tuple(_q(pick, 4) for _ in range(n))
    if all(wi == 0 for wi in w):
        w = _unit(n, 0)
    lo, hi = _z_offsets(w, domain.support + domain.region)
    margin = sp.Rational(pick.integer(1, 4), 4)
    if stretch.sup.is_finite:
        b = stretch.sup - hi - margin
    else:
        b = stretch.inf - lo + margin
    if not (stretch.inf < lo + b and hi + b < stretch.sup):
        return None
    return w, b, domain


def build_premise_case(pick: Picker, act: Activation, kind: str, premise: str, convention: str) -> Optional[NeuronCase]:
    """A case built to satisfy ``premise`` (one of :data:`PREMISES`) for σ under the gradient convention: the zero
    and flat points of σ are picked first, then w and b, then a domain of the kind that z maps onto them. None when
    no construction applies (the premise may be impossible). Whether the premise really holds is for the exact
    evaluator to say."""
    f = analyse(act)
    zeros, flat = f.zeros, flat_set(act, convention) if f.flat_solved else sp.S.EmptySet
    n = pick.integer(2 if kind == "affine" else 1, 3)
    v = pick.choice([sp.Integer(0), sp.Integer(1), -sp.Rational(1, 2)])
    target: tuple = tuple(_q(pick, 4) for _ in range(n))
    gradient = premise.split(":")[-1]
    if premise == "B:loss":
        gradient = pick.choice(["grad_x", "grad_w", "zero-moments"])
        if gradient == "grad_x":
            v = sp.Integer(0)  # a read-out of 0: L does not depend on w
        if gradient == "zero-moments":
            target = vec(*[0] * n)  # w = 0, σ(b) = 0, t = 0: the residual v·σ(b) − tᵀx vanishes
    if premise == "A":
        first, rest, stretch_sets, bias_set = zeros, zeros, [zeros], zeros
    elif premise == "grad_x=0":
        first, rest, stretch_sets, bias_set = flat, flat, [flat], sp.S.Reals
    else:
        zero_flat = sp.Intersection(zeros, flat)
        first, rest, stretch_sets = zero_flat, flat, [zero_flat]
        bias_set = zeros if gradient == "grad_x" else zero_flat if gradient == "grad_w" else zeros
    options: list[Callable[[], Optional[tuple[tuple, sp.Rational, Domain]]]] = []
    biases = _rational_points(bias_set)
    if biases:
        options.append(lambda: (vec(*[0] * n), pick.choice(biases), _domain(pick, kind, n)))
    firsts, rests = _rational_points(first), _rational_points(rest)
    if kind in ("finite", "affine", "batch") and firsts:

        def level() -> tuple[tuple, sp.Rational, Domain]:
            j, b = pick.integer(0, n - 1), _q(pick)
            w = tuple(
                sp.Integer(pick.choice([1, -1])) if i == j else (_q(pick, 4) if kind != "affine" else sp.Integer(0))
                for i in range(n)
            )
            targets = [pick.choice(firsts)] + [
                pick.choice(rests) for _ in range(pick.integer(0, 2) if kind != "affine" else 0)
            ]
            return w, b, _level_domain(pick, kind, n, w, b, targets)

        options.append(level)
    if kind == "finite" and gradient == "grad_w" and _rational_points(zeros):

        def origin() -> tuple[tuple, sp.Rational, Domain]:
            # ∂h/∂w = σ'(b)·0 at the origin; h(0) = σ(b) = 0 supplies B's zero; other points sit on flat points
            b, w = pick.choice(_rational_points(zeros)), tuple(sp.Integer(pick.choice([1, -1])) for _ in range(n))
            points = {tuple(sp.Integer(0) for _ in range(n))} | {
                _solve_onto(pick, w, b, pick.choice(rests), n) for _ in range(pick.integer(0, 2) if rests else 0)
            }
            return w, b, Domain(kind, tuple(Piece(vec(*p)) for p in sorted(points)))

        options.append(origin)
    stretches = [s for group in stretch_sets for s in _stretches(group)]
    if stretches:
        options.append(lambda: _stretch_case(pick, kind, n, pick.choice(stretches)))
    if not options:
        return None
    built = pick.choice(options)()
    if built is None:
        return None
    w, b, domain = built
    return NeuronCase(act, tuple(w), sp.nsimplify(b), domain, v=v, target=target)


def premise_cases_for(
    seed: int, count: int, act: Activation, kind: str, premise: str, convention: str
) -> Iterator[NeuronCase]:
    """``count`` draws of :func:`build_premise_case` from a seeded generator (draws with no construction are
    skipped)."""
    rng = random.Random(seed)
    for _ in range(count):
        case = build_premise_case(RandomPicker(rng), act, kind, premise, convention)
        if case is not None:
            yield case


@st.composite
def premise_cases(draw: Callable, act: Activation, kind: str, premise: str, convention: str) -> Optional[NeuronCase]:
    return build_premise_case(DrawPicker(draw), act, kind, premise, convention)
