"""Symbolic derivations: the chain rule for every activation, the activation facts, Eq. 16–18."""

import pytest
import sympy as sp
import torch

import theory.symbolic as symbolic
from theory.activations import (
    ACTIVATIONS,
    Activation,
    Z,
    analyse,
    autograd_slope,
    by_name,
    critical_point_count,
    derivative,
    in_flat,
    is_kink,
)
from theory.symbolic import chain_rule_holds, literal_magi_gradient, literal_magi_reduces, post_activation_magi_gradient


@pytest.mark.parametrize("act", ACTIVATIONS, ids=lambda a: a.name)
def test_gradients_factor_through_sigma_prime(act):
    assert chain_rule_holds(act, 2)


def test_chain_rule_check_rejects_a_wrong_derivative(monkeypatch):
    monkeypatch.setattr(symbolic, "derivative", lambda act: 2 * sp.diff(act.expr, Z))
    assert not chain_rule_holds(by_name("tanh"), 2)


@pytest.mark.parametrize(
    "name, zeros, kinks, c1",
    [
        ("identity", sp.FiniteSet(0), sp.S.EmptySet, True),
        ("relu", sp.Interval(-sp.oo, 0), sp.FiniteSet(0), False),
        ("leaky_relu", sp.FiniteSet(0), sp.FiniteSet(0), False),
        ("relu6", sp.Interval(-sp.oo, 0), sp.FiniteSet(0, 6), False),
        ("sigmoid", sp.S.EmptySet, sp.S.EmptySet, True),
        ("elu", sp.FiniteSet(0), sp.S.EmptySet, True),
        ("smoothstep", sp.Interval(-sp.oo, 0), sp.S.EmptySet, True),
    ],
)
def test_activation_facts(name, zeros, kinks, c1):
    f = analyse(by_name(name))
    assert f.zeros == zeros and f.kinks == kinks and f.c1 == c1


def test_kink_detection_tells_c1_from_not_c1():
    smooth_corner = Activation("half_square", sp.Piecewise((0, Z <= 0), (Z**2, True)), by_name("relu").module, False)
    assert analyse(smooth_corner).c1
    assert not analyse(by_name("relu")).c1


@pytest.mark.parametrize("name", ["silu", "gelu"])
def test_transcendental_flat_point_is_bracketed(name):
    """σ' of SiLU/GELU has no closed-form root; the sign change brackets one (IVT)."""
    (a, b), *_ = analyse(by_name(name)).flat_brackets
    assert a < b < 0


def _same_for_every_unit(grad: sp.Matrix) -> bool:
    return all(sp.simplify(grad[i, j] - grad[0, j]) == 0 for i in range(grad.rows) for j in range(grad.cols))


def test_eq17_reduces_to_input_column_sums():
    assert literal_magi_reduces(n_batch=3, n_in=2, n_out=3)
    X = sp.Matrix([[1, 2], [3, -1]])
    assert _same_for_every_unit(literal_magi_gradient(X, n_out=3))
    assert literal_magi_gradient(X, n_out=1) == sp.Matrix([[4, 1]])


def test_post_activation_sum_is_unit_dependent():
    """The companion: summing σ(z) instead of z makes ∂S/∂W depend on the unit, so the check above can fail."""
    X = sp.Matrix([[1, 2], [3, -1]])
    grad = post_activation_magi_gradient(by_name("tanh"), X, n_out=2)
    values = {s: v for s, v in zip(sp.symbols("W0_0 W0_1 W1_0 W1_1 b0 b1", real=True), [1, 0, -1, 2, 0, 1])}
    assert not _same_for_every_unit(grad.subs(values))


def _coefficient_solutions(h, xs, unknowns):
    """Solutions for the unknowns that make the polynomial h vanish identically in xs."""
    return sp.solve(sp.Poly(h, *xs).coeffs(), unknowns, dict=True)


def test_no_act_zero_on_open_set_forces_zero_weights_and_bias():
    """identity: h = wᵀx + b ≡ 0 on an open set ⇔ every coefficient is 0 (a polynomial vanishing on an open set)."""
    xs, ws, b = symbolic.neuron_symbols(2)
    h, _, _ = symbolic.neuron_gradients(by_name("identity"), 2)
    assert _coefficient_solutions(h, xs, ws + [b]) == [{ws[0]: 0, ws[1]: 0, b: 0}]


def test_no_act_zero_on_hyperplane_leaves_the_normal_weight_free():
    """The companion: on the hyperplane x₀ = 0 (an upstream dead ReLU) only w₁ and b are forced, w₀ is free, and
    ∇ₓh = (w₀, 0) need not vanish: Lemma 2 needs D open."""
    xs, ws, b = symbolic.neuron_symbols(2)
    h, grad_x, _ = symbolic.neuron_gradients(by_name("identity"), 2)
    (solution,) = _coefficient_solutions(h.subs(xs[0], 0), [xs[1]], ws + [b])
    assert solution == {ws[1]: 0, b: 0} and grad_x[0].subs(solution) == ws[0]


@pytest.mark.parametrize("name", ["silu", "gelu"])
def test_silu_and_gelu_have_exactly_one_critical_point(name):
    """SiLU' has the sign of z + e^z + 1 (increasing, −∞ to ∞); GELU'' = φ(z)(2 − z²), so GELU' runs 0 ↘ ↗ ↘ 1 with
    signs 0, −, +, + at −∞, −√2, √2, ∞: one zero each, so one flat level and Lemma 3 holds on finite D."""
    assert critical_point_count(by_name(name)).count == 1


def test_critical_point_count_can_find_two_and_rejects_a_wrong_sign_factor():
    cubic = Activation("cubic", Z**3 - 3 * Z, by_name("identity").module, True)  # σ' = 3(z² − 1): zeros ±1
    assert critical_point_count(cubic).count == 2
    wrong = Activation("silu", by_name("silu").expr, by_name("silu").module, True, derivative_sign=-(Z + sp.exp(Z) + 1))
    assert critical_point_count(wrong) is None


@pytest.mark.parametrize(
    "name, kink, autograd, strict, clarke",
    [
        ("relu", 0, True, False, True),
        ("relu6", 0, True, False, True),
        ("relu6", 6, True, False, True),
        ("leaky_relu", 0, False, False, False),
    ],
)
def test_kink_conventions(name, kink, autograd, strict, clarke):
    """autograd's slope is read from torch (ReLU'(0) = ReLU6'(0) = ReLU6'(6) = 0, leaky ReLU'(0) = 0.01); Clarke's
    gradient at a kink is the interval between the one-sided slopes."""
    act = by_name(name)
    c = sp.Integer(kink)
    assert [in_flat(act, c, conv) for conv in ("autograd", "strict", "clarke")] == [autograd, strict, clarke]
    assert autograd_slope(act, c) == (sp.Rational(1, 100) if name == "leaky_relu" else 0)


@pytest.mark.parametrize("act", ACTIVATIONS, ids=lambda a: a.name)
def test_autograd_reads_the_derivative_off_the_kinks(act):
    """At every branch point of a piecewise σ that is not a kink (ELU at 0, the clamp at 0 and 1) and at a few
    rational points, torch's derivative is σ' (float64): the conventions differ only at kinks."""
    points = [p for p in (sp.Integer(k) for k in (-3, -1, 0, 1, 2, 7)) if not is_kink(act, p)]
    for p in points:
        z = torch.tensor([float(p)], dtype=torch.float64, requires_grad=True)
        (grad,) = torch.autograd.grad(act.module()(z).sum(), z)
        assert abs(grad.item() - float(derivative(act).subs(Z, p))) < 1e-12, (act.name, p)
