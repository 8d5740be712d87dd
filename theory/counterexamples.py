"""The counterexample catalogue: each entry is data (activation, w, b, D, the assumption or condition it drops, the
statements it breaks, why) plus a check that re-derives the break from scratch.

Neuron entries are built per activation by the mechanism builders below, for exactly the cells where
:mod:`theory.verdicts` answers "fails"; their check is the exact evaluator of :mod:`theory.cases`, which knows
nothing of the verdict rules. Layer-level entries (Assumptions 2 and 3, floating point, the literal Eq. 17) carry
their own check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache, partial
from typing import Callable, Optional

import sympy as sp
import torch

from theory.activations import (
    ACTIVATIONS,
    CONVENTIONS,
    Activation,
    Z,
    analyse,
    by_name,
    derivative,
    in_flat,
    in_zeros,
    is_empty,
    is_kink,
    sign_at,
)
from theory.cases import (
    DIRECTIONS,
    KINDS,
    NOTIONS,
    Domain,
    NeuronCase,
    Piece,
    dormant,
    grad_x_zero,
    has_zero,
    implication,
    lemma1,
    lemma3,
    vec,
)
from theory.symbolic import literal_magi_gradient
from theory.verdicts import FAILS, Verdict, lemma1_verdict, lemma3_verdict, theorem_verdict

#: A statement a counterexample breaks: ("theorem", notion, direction, convention), ("lemma3", "", "", convention),
#: Lemma 1, or ("metric", reading, conclusion, "") for the numerical readings experiments use.
Claim = tuple[str, str, str, str]
LEMMA1: Claim = ("lemma1", "", "", "")
COMPUTED_ZERO: Claim = ("metric", "computed s = 0", "⇒ exact s = 0", "")


def theorem_claim(notion: str, direction: str, convention: str) -> Claim:
    return ("theorem", notion, direction, convention)


def lemma3_claim(convention: str) -> Claim:
    return ("lemma3", "", "", convention)


@dataclass(frozen=True)
class Counterexample:
    id: str
    activation: str
    violates: str
    breaks: tuple[Claim, ...]
    why: str
    kind: str = ""
    case: Optional[NeuronCase] = None
    data: dict = field(default_factory=dict)
    check: Optional[Callable[[], bool]] = None
    #: the break is shown by the intermediate-value theorem; ``case`` only approximates the irrational point
    by_ivt: bool = False

    def verify(self) -> bool:
        """True when every claimed break really happens."""
        if self.check is not None:
            return self.check()
        assert self.case is not None
        for statement, notion, direction, convention in self.breaks:
            if statement == "lemma1":
                broken = not lemma1(self.case)
            elif statement == "lemma3":
                broken = not lemma3(self.case, convention)
            else:
                broken = implication(self.case, notion, direction, convention) is False
            if not broken:
                return False
        return True


# --------------------------------------------------------------------------------------------------------- builders
def _zero_candidates(act: Activation) -> list[sp.Expr]:
    zeros = analyse(act).zeros
    return list(zeros) if isinstance(zeros, sp.FiniteSet) else [zeros.sup]


def _sloped_zero(act: Activation) -> sp.Expr:
    """A zero of σ where σ' exists and is not 0."""
    return next(c for c in _zero_candidates(act) if not is_kink(act, c) and not in_flat(act, c, "strict"))


def _kink_zero(act: Activation) -> sp.Expr:
    return next(c for c in _zero_candidates(act) if is_kink(act, c))


def _flat_zero(act: Activation) -> sp.Expr:
    return analyse(act).zeros.sup - 1


def _flat_nonzero(act: Activation) -> sp.Expr:
    f = analyse(act)
    return sp.Complement(f.flat.interior, f.zeros).inf + 1


def _box(centre: tuple, radius: object = 1) -> Piece:
    n = len(centre)
    return Piece(vec(*centre), tuple(vec(*[int(i == j) for j in range(n)]) for i in range(n)), sp.Rational(radius))


def _points(*pts: tuple) -> tuple[Piece, ...]:
    return tuple(Piece(vec(*p)) for p in pts)


def _hyperplane_case(act: Activation, kind: str, c: sp.Expr) -> NeuronCase:
    """w ⟂ D and z ≡ c on D: h ≡ σ(c) on D and ∇ₓh = σ'(c)·w."""
    support = _points((0, -1), (0, 1)) if kind == "finite" else (Piece(vec(0, 0), (vec(0, 1),)),)
    return NeuronCase(act, vec(1, 0), c, Domain(kind, support))


def sloped_zero_hyperplane(act: Activation, kind: str) -> NeuronCase:
    """w ⟂ D and z ≡ c on D with σ(c) = 0 but σ'(c) ≠ 0: h ≡ 0 on D, ∇ₓh = σ'(c)·w ≠ 0."""
    return _hyperplane_case(act, kind, _sloped_zero(act))


def kink_hyperplane(act: Activation, kind: str) -> NeuronCase:
    """w ⟂ D and z ≡ c on D with c a zero and a kink of σ: h ≡ 0 on D, ∇ₓh = σ'(c)·w does not exist."""
    return _hyperplane_case(act, kind, _kink_zero(act))


def _zero_weights_case(act: Activation, kind: str, c: sp.Expr) -> NeuronCase:
    """w = 0, b = c with σ(c) = 0 on D ⊂ {x₀ > 0}: h ≡ 0 and ∇ₓh = 0; ∂h/∂w = σ'(c)·x, target t = x₀."""
    domains = {
        "open": Domain("open", (_box((2, 0)),)),
        "finite": Domain("finite", _points((1, 1), (2, -1), (3, 0))),
        "affine": Domain("affine", (Piece(vec(2, 0), (vec(0, 1),)),)),
        "disconnected": Domain("disconnected", (_box((2, 0)), _box((5, 0)))),
        "batch": Domain(
            "batch",
            _points((sp.Rational(3, 2), sp.Rational(1, 2)), (sp.Rational(5, 2), -sp.Rational(1, 2))),
            (_box((2, 0)),),
        ),
    }
    return NeuronCase(act, vec(0, 0), c, domains[kind], v=sp.Integer(1), target=vec(1, 0))


def zero_weights_at_zero(act: Activation, kind: str) -> NeuronCase:
    """w = 0, b = c with σ(c) = 0 ≠ σ'(c): h ≡ 0 and ∇ₓh = 0, yet ∂h/∂w = σ'(c)·x and ∂L/∂w ≠ 0 (target t = x₀)."""
    return _zero_weights_case(act, kind, _sloped_zero(act))


def kink_zero_weights(act: Activation, kind: str) -> NeuronCase:
    """w = 0, b = c a zero and a kink of σ: h ≡ 0 and ∇ₓh = 0, ∂h/∂w = σ'(c)·x does not exist (or is non-zero under
    the convention)."""
    return _zero_weights_case(act, kind, _kink_zero(act))


def kink_symmetric_inputs(act: Activation, kind: str) -> NeuronCase:
    """w = 0, b = c a zero and a kink of σ, inputs symmetric about 0, read-out 1, target t = x₀: h ≡ 0, and the two
    sides of the kink see mirror images of the data, so L is differentiable at w = 0 with gradient
    −½(σ'₋(c) + σ'₊(c))·E[x₀·x] ≠ 0."""
    domains = {
        "open": Domain("open", (_box((0, 0)),)),
        "finite": Domain("finite", _points((2, 1), (-2, -1))),
        "affine": Domain("affine", (Piece(vec(0, 0), (vec(1, 0),)),)),
        "disconnected": Domain("disconnected", (_box((2, 0)), _box((-2, 0)))),
        "batch": Domain(
            "batch",
            _points((sp.Rational(1, 2), sp.Rational(1, 2)), (-sp.Rational(1, 2), -sp.Rational(1, 2))),
            (_box((0, 0)),),
        ),
    }
    return NeuronCase(act, vec(0, 0), _kink_zero(act), domains[kind], v=sp.Integer(1), target=vec(1, 0))


def _some_zero(act: Activation) -> sp.Expr:
    return _zero_candidates(act)[0]


def batch_misses(act: Activation, kind: str) -> NeuronCase:
    """h = 0 on every batch point but not on the box the batch came from."""
    zeros = analyse(act).zeros
    if not is_empty(zeros.interior):
        b, x0 = zeros.sup, -sp.Rational(1, 2)
    else:
        b, x0 = _some_zero(act), sp.Integer(0)
    batch = _points((x0, sp.Rational(1, 2)), (x0, -sp.Rational(1, 2)))
    return NeuronCase(act, vec(1, 0), b, Domain("batch", batch, (_box((0, 0)),)))


def two_flat_levels(act: Activation, kind: str) -> NeuronCase:
    """z(D) meets two flat stretches of σ, at level 0 and at another level: ∇h = 0 on D, h(x₀) = 0, s > 0."""
    c1, c2 = _flat_zero(act), _flat_nonzero(act)
    if kind == "finite":
        support = _points((c1,), (c2,))
    else:
        support = (_box((c1,), sp.Rational(1, 4)), _box((c2,), sp.Rational(1, 4)))
    return NeuronCase(act, vec(1), sp.Integer(0), Domain(kind, support))


def origin_plus_flat(act: Activation, kind: str) -> NeuronCase:
    """D = {0, x₁}: ∂h/∂w = σ'(b)·0 = 0 at the origin whatever h(0) is, and x₁ sits on a flat point of σ."""
    f = analyse(act)
    if f.flat_solved and not is_empty(sp.Intersection(f.flat, f.zeros)):
        b = sp.Rational(1, 2)  # h(0) = σ(1/2) ≠ 0; x₁ = −3/2 lands on z = −1, flat and zero
        x1 = _flat_zero(act) - b
    else:
        a, hi = f.flat_brackets[0]
        root = sp.nsolve(derivative(act), Z, (a + hi) / 2, prec=80)
        b, x1 = sp.Integer(0), sp.Rational(str(root))  # h(0) = 0; x₁ approximates the flat point: σ'(x₁) ≠ 0
    return NeuronCase(act, vec(1), b, Domain("finite", _points((0,), (x1,))))


def dead_outgoing(act: Activation, kind: str) -> NeuronCase:
    """Read-out weight v = 0: ∂L/∂w = 0 exactly, while the unit is live and has a zero inside D."""
    c = _some_zero(act)
    domains = {
        "open": Domain("open", (_box((0,)),)),
        "finite": Domain("finite", _points((0,), (1,))),
        "affine": Domain("affine", (Piece(vec(0, 0), (vec(1, 0),)),)),
        "disconnected": Domain("disconnected", (_box((0,), sp.Rational(1, 2)), _box((3,), sp.Rational(1, 2)))),
        "batch": Domain("batch", _points((0,), (sp.Rational(1, 2),)), (_box((0,)),)),
    }
    d = domains[kind]
    w = vec(1, 0) if d.n == 2 else vec(1)
    return NeuronCase(act, w, c, d, v=sp.Integer(0), target=vec(*([1] + [0] * (d.n - 1))))


def _ivt_origin_plus_flat(act: Activation) -> bool:
    """For analytic σ the flat point x₁ is irrational and no rational sample hits it; the break is shown instead:
    σ' changes sign on a rational bracket [a, b] (so some x₁ in it has σ'(x₁) = 0, IVT), σ has no zero on [a, b]
    (so h(x₁) ≠ 0), and σ(0) = 0 (so h(0) = 0 and ∂h/∂w(0) = σ'(0)·0 = 0). With w = 1, b = 0, D = {0, x₁}: B holds,
    A fails."""
    f = analyse(act)
    a, b = f.flat_brackets[0]
    d = derivative(act)
    sign_change = sign_at(d, a) * sign_at(d, b) < 0
    no_zero = is_empty(sp.Intersection(f.zeros, sp.Interval(a, b)))
    return sign_change and no_zero and in_zeros(act, sp.Integer(0))


@dataclass(frozen=True)
class Mechanism:
    name: str
    build: Callable[[Activation, str], NeuronCase]
    violates: str
    why: str


KINK = "Assumption 1 (σ not C¹ at the zero)"

MECHANISMS: dict[str, Mechanism] = {
    m.name: m
    for m in (
        Mechanism(
            "sloped-zero-hyperplane",
            sloped_zero_hyperplane,
            "D not open (finite or lower-dimensional)",
            "Lemma 2's mean-value step moves x off D; on a hyperplane orthogonal to w the unit is 0 but not flat",
        ),
        Mechanism(
            "kink-hyperplane",
            kink_hyperplane,
            KINK,
            "z ≡ c on a D orthogonal to w, with c a zero of σ at its kink: h ≡ 0 on D and ∇ₓh = σ'(c)·w does not "
            "exist (or the convention reads it as non-zero)",
        ),
        Mechanism(
            "zero-weights-at-zero",
            zero_weights_at_zero,
            "gradient notion: ∂h/∂w and ∂L/∂w, not ∇ₓh",
            "h ≡ 0 on an open D forces w = 0 and σ(b) = 0 only; ∂h/∂w = σ'(b)·x stays non-zero",
        ),
        Mechanism(
            "kink-zero-weights",
            kink_zero_weights,
            KINK,
            "w = 0 and b a zero of σ at its kink: h ≡ 0 and ∇ₓh = 0, but ∂h/∂w = σ'(b)·x does not exist (or the "
            "convention reads it as non-zero)",
        ),
        Mechanism(
            "kink-symmetric-inputs",
            kink_symmetric_inputs,
            KINK,
            "w = 0, b a zero of σ at its kink, inputs symmetric about 0: the two sides of the kink see mirror "
            "images of the data, so L is differentiable at w = 0 with gradient −½(σ'₋ + σ'₊)·E[(tᵀx)·x] ≠ 0; "
            "only autograd's ReLU'(0) = 0 reads it as 0",
        ),
        Mechanism(
            "batch-misses",
            batch_misses,
            "finite samples (s from a batch, ∀x over the box)",
            "a batch has measure zero in the box: h can vanish on it and nowhere else",
        ),
        Mechanism(
            "two-flat-levels",
            two_flat_levels,
            "D disconnected (or finite)",
            "∇h = 0 makes h constant on each connected piece only; the pieces sit at levels 0 and ≠ 0",
        ),
        Mechanism(
            "origin-plus-flat",
            origin_plus_flat,
            "finite samples (a sample at x = 0)",
            "∂h/∂w = σ'(z)·x vanishes at x = 0 whatever h(0) is (an all-dead upstream layer feeds x = 0)",
        ),
        Mechanism(
            "dead-outgoing",
            dead_outgoing,
            "gradient notion: ∂L/∂w through later layers",
            "∂L/∂w = E[∂L/∂h · σ'(z) x] is 0 when the unit's outgoing weights are 0, however live the unit is",
        ),
    )
}

IVT_NOTE = (
    "; shown by the intermediate-value theorem: σ' changes sign on a rational bracket free of zeros of σ, so "
    "an irrational x₁ in it is flat and h(x₁) ≠ 0; the stored rational x₁ only approximates it and is not "
    "itself a counterexample (σ'(x₁) ≠ 0 there)"
)


@lru_cache(maxsize=None)
def neuron_catalogue() -> tuple[Counterexample, ...]:
    """One entry per (mechanism, activation, domain kind) that some failing cell of the verdict table names, under
    any gradient convention; the entry lists every (claim, convention) it breaks."""
    wanted: dict[tuple[str, str, str], list[Claim]] = {}
    for act in ACTIVATIONS:
        for kind in KINDS:
            rules: list[tuple[Claim, Verdict]] = [(LEMMA1, lemma1_verdict(act, kind))]
            for convention in CONVENTIONS:
                rules += [
                    (theorem_claim(n, d, convention), theorem_verdict(act, kind, n, d, convention))
                    for n in NOTIONS
                    for d in DIRECTIONS
                ]
                rules.append((lemma3_claim(convention), lemma3_verdict(act, kind, convention)))
            for claim, v in rules:
                if v.status == FAILS:
                    wanted.setdefault((v.mechanism, act.name, kind), []).append(claim)
    entries = []
    for (mech_name, act_name, kind), claims in sorted(wanted.items()):
        mech, act = MECHANISMS[mech_name], by_name(act_name)
        by_ivt = mech_name == "origin-plus-flat" and not analyse(act).flat_solved
        entries.append(
            Counterexample(
                f"{mech_name}/{kind}/{act_name}",
                act_name,
                mech.violates,
                tuple(claims),
                mech.why + (IVT_NOTE if by_ivt else ""),
                kind,
                mech.build(act, kind),
                check=partial(_ivt_origin_plus_flat, act) if by_ivt else None,
                by_ivt=by_ivt,
            )
        )
    return tuple(entries)


# ---------------------------------------------------------------------------------------------- layer-level entries
def _heavy_tail(half_density: sp.Expr) -> bool:
    """x symmetric with density half_density on x > 0; identity layer; unit 0: h = x, unit 1: h ≡ 1. Under Cauchy,
    E|h₀| = ∞ and s₁ = 1 / ((∞ + 1)/2) = 0 while h₁ ≡ 1 ≠ 0."""
    x = _POSITIVE_X
    e0 = 2 * sp.integrate(x * half_density, (x, 0, sp.oo))  # E|x| by symmetry
    e1 = 2 * sp.integrate(half_density, (x, 0, sp.oo))
    s1 = e1 / ((e0 + e1) / 2)  # extended reals: 1 / ∞ = 0
    return e1 == 1 and s1 == 0


_POSITIVE_X = sp.Symbol("x", positive=True)
CAUCHY = 1 / (sp.pi * (1 + _POSITIVE_X**2))
GAUSSIAN = sp.exp(-(_POSITIVE_X**2) / 2) / sp.sqrt(2 * sp.pi)


def _all_zero_layer() -> bool:
    """ReLU layer, both units w = 0, b = −1: h ≡ 0, ∇h ≡ 0 (B holds) but s = 0/0 is undefined, so not 0 (A fails)."""
    unit = NeuronCase(by_name("relu"), vec(0, 0), sp.Integer(-1), Domain("open", (_box((0, 0)),)))
    layer = (unit, unit)
    if not all(dormant(u) for u in layer):
        return False
    s = sp.Integer(0) / sp.Integer(0)  # E|h_i| / ((1/H) Σ_k E|h_k|) with every expectation exactly 0
    return all(grad_x_zero(unit, c) for c in CONVENTIONS) and has_zero(unit) and s is sp.nan


def _underflow(dtype: torch.dtype, z: int) -> bool:
    """sigmoid(z) rounds to 0 (computed s = 0, computed gradient 0) though σ(z) = 1/(1 + e^{-z}) > 0 exactly."""
    exact = 1 / (1 + sp.exp(-z))
    zt = torch.tensor([float(z)], dtype=dtype, requires_grad=True)
    h = torch.sigmoid(zt)
    (g,) = torch.autograd.grad(h.sum(), zt)
    return bool(exact > 0) and h.item() == 0.0 and g.item() == 0.0


def _naive_score_underflow() -> bool:
    """A float32 score computed as mean|h_i| / layer mean underflows to 0 for h_i = 1e-30 next to h_k = 1e20."""
    acts = torch.tensor([[1e-30, 1e20]], dtype=torch.float32)
    means = acts.abs().mean(0)
    naive = means / means.mean()
    exact = sp.Rational(10) ** -30 / ((sp.Rational(10) ** -30 + sp.Rational(10) ** 20) / 2)
    return naive[0].item() == 0.0 and exact > 0


def _tanh_saturation(z: int) -> bool:
    """tanh at z = 20: h ≈ 1 (not dormant), exact σ'(20) = sech²(20) > 0, but 1 − tanh² rounds to 0 in float32 and
    float64, so autograd reports an exactly zero gradient for a unit that is neither dormant nor exactly flat."""
    exact = sp.sech(z) ** 2
    zero_in_both = True
    for dtype in (torch.float32, torch.float64):
        zt = torch.tensor([float(z)], dtype=dtype, requires_grad=True)
        (g,) = torch.autograd.grad(torch.tanh(zt).sum(), zt)
        zero_in_both &= g.item() == 0.0 and torch.tanh(zt).item() > 0.99
    return bool(exact > 0) and zero_in_both


def _literal_magi() -> bool:
    """Eq. 16–18 taken literally: S = Σ_k Σ_m (XWᵀ + b)_km, so ∂S/∂W_ij = Σ_k X_kj for every unit i. With
    W = [[1, 1], [1, 1]], b = (−10, 0) on X, unit 0 is dead under ReLU (z < 0 on every row) and unit 1 live, yet
    G₀ = G₁ > 0; centring X makes G = 0 for both."""
    X, W, b = sp.Matrix([[1, 2], [3, -1]]), sp.Matrix([[1, 1], [1, 1]]), sp.Matrix([[-10, 0]])
    Y = X * W.T + sp.ones(2, 1) * b
    dead, live = all(y < 0 for y in Y[:, 0]), all(y > 0 for y in Y[:, 1])
    grad = literal_magi_gradient(X, n_out=2)
    G = [sum(abs(grad[i, j]) for j in range(2)) / 2 for i in range(2)]
    centred = literal_magi_gradient(X - sp.ones(2, 1) * (sp.ones(1, 2) * X) / 2, n_out=2)
    return dead and live and G[0] == G[1] and G[0] > 0 and all(g == 0 for g in centred)


LAYER_CATALOGUE: tuple[Counterexample, ...] = (
    Counterexample(
        "a2-heavy-tail",
        "identity",
        "Assumption 2 (E|h_k| unbounded for a neighbour k)",
        (LEMMA1,) + tuple(theorem_claim("grad_x", "A=>B", c) for c in CONVENTIONS),
        "a neighbour with E|h_k| = ∞ makes every finite unit's s = 0; Theorem 1 bounds only unit i, so its "
        "own assumptions allow this (h_i ≡ 1 has s_i = 0 but no zero anywhere). A definitional edge case: "
        "s_i = 1/∞ is read as 0 in the extended reals; in ordinary arithmetic s_i is undefined",
        "open",
        check=partial(_heavy_tail, CAUCHY),
        data={"x": "Cauchy(0, 1) on ℝ", "W": [[1], [0]], "b": [0, 1]},
    ),
    Counterexample(
        "a3-all-zero-layer",
        "relu",
        "Assumption 3 (layer mean 0)",
        tuple(theorem_claim("grad_x", "B=>A", c) for c in CONVENTIONS),
        "every unit dead: s = 0/0 is undefined, so B holds and A ('s = 0') is not even defined",
        "open",
        check=_all_zero_layer,
        data={"W": [[0, 0], [0, 0]], "b": [-1, -1], "D": "(−1, 1)²"},
    ),
    Counterexample(
        "fp32-sigmoid-underflow",
        "sigmoid",
        "floating point (float32) vs exact s = 0",
        (COMPUTED_ZERO,),
        "sigmoid(−200) = 1/(1+e^200) ≈ 1.4e−87 is 0 in float32: computed s = 0 and gradient 0, exact s > 0",
        "finite",
        check=lambda: _underflow(torch.float32, -200),
        data={"z": -200},
    ),
    Counterexample(
        "fp64-sigmoid-underflow",
        "sigmoid",
        "floating point (float64) vs exact s = 0",
        (COMPUTED_ZERO,),
        "sigmoid(−800) ≈ e^−800 is below float64's smallest subnormal: computed 0, exact > 0",
        "finite",
        check=lambda: _underflow(torch.float64, -800),
        data={"z": -800},
    ),
    Counterexample(
        "fp32-naive-score-underflow",
        "identity",
        "floating point (float32 score division)",
        (COMPUTED_ZERO,),
        "mean|h_i| / layer mean = 1e−30 / 5e19 underflows to 0 in float32; exact s_i = 2e−50 > 0",
        "finite",
        check=_naive_score_underflow,
        data={"acts": [[1e-30, 1e20]]},
    ),
    Counterexample(
        "fp-tanh-saturation",
        "tanh",
        "floating point (float32 and float64) vs exact ∇h = 0",
        (("metric", "computed ∇h = 0", "⇒ dormant", ""),),
        "tanh(20) rounds to 1, so autograd's 1 − tanh² is exactly 0: a zero-gradient unit with s ≈ 1",
        "finite",
        check=partial(_tanh_saturation, 20),
        data={"z": 20},
    ),
    Counterexample(
        "literal-eq17-magi",
        "relu",
        "gradient notion: the literal S of Eq. 17",
        (("metric", "literal-Eq.17 MAGI = 0", "⇔ dormant", ""),),
        "∂S/∂W_ij = Σ_k X_kj is the same for every unit: a dead unit has MAGI > 0, centred inputs give 0 to all",
        "finite",
        check=_literal_magi,
        data={"X": [[1, 2], [3, -1]], "W": [[1, 1], [1, 1]], "b": [-10, 0]},
    ),
)


def catalogue() -> tuple[Counterexample, ...]:
    return neuron_catalogue() + LAYER_CATALOGUE


def entries_for(activation: str, kind: str, claim: Claim) -> list[Counterexample]:
    return [c for c in neuron_catalogue() if c.activation == activation and c.kind == kind and claim in c.breaks]
