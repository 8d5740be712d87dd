"""Case generators: layers (w, b, read-out), activations and domains of every kind, driven either by hypothesis
(:func:`cases`, shrinkable) or by a seeded ``random.Random`` (:func:`random_cases`, for the report). One generator
serves both through the small :class:`Picker` interface.

Numbers are dyadic rationals k/4, so float64 holds inputs and pre-activations exactly. The neuron is drawn in one of
four modes: ``random``; ``dormant`` (aims at A: z kept inside the zero set, w = 0 or w ⟂ an affine patch at an
isolated zero); ``flat`` (aims at B: z inside a flat stretch of σ); ``crossing`` (a zero of σ inside D).
"""

from __future__ import annotations

import random
from typing import Callable, Iterator, Optional, Protocol, Sequence, TypeVar

import sympy as sp
from hypothesis import strategies as st

from theory.activations import ACTIVATIONS, Activation, analyse, is_empty
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
    return Piece(vec(*centre), tuple(_unit(n, i) for i in range(n)), pick.choice([sp.Rational(1, 4), sp.Rational(1, 2), sp.Integer(1)]))


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
        return Domain(kind, (Piece(tuple(_q(pick) for _ in range(n)), basis, pick.choice([sp.Rational(1, 2), sp.Integer(1)])),))
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


def random_cases(seed: int, count: int, act: Optional[Activation] = None, kind: Optional[str] = None) -> Iterator[NeuronCase]:
    rng = random.Random(seed)
    for _ in range(count):
        yield build_case(RandomPicker(rng), act, kind)
