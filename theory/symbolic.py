"""Symbolic derivations (sympy) for one neuron h(x) = σ(wᵀx + b) and for Eq. 16–18 of the paper.

* :func:`neuron_gradients` derives ∇ₓh and ∂h/∂w by differentiating the composed expression, and
  :func:`chain_rule_holds` checks them against σ'(z)·w and σ'(z)·x: the two gradients share the factor σ'(z) and
  differ in the vector (w versus x), which is why a unit with w = 0 can have ∇ₓh = 0 and ∂h/∂w ≠ 0.
* :func:`literal_magi_gradient` encodes S = Σ_k Σ_m Y_km with Y = XWᵀ + b (Eq. 17–18) and returns ∂S/∂W.
"""

from __future__ import annotations

import sympy as sp

from theory.activations import Activation, Z, derivative


def neuron_symbols(n: int) -> tuple[list[sp.Symbol], list[sp.Symbol], sp.Symbol]:
    xs = list(sp.symbols(f"x0:{n}", real=True))
    ws = list(sp.symbols(f"w0:{n}", real=True))
    return xs, ws, sp.Symbol("b", real=True)


def neuron_gradients(act: Activation, n: int) -> tuple[sp.Expr, list[sp.Expr], list[sp.Expr]]:
    """(h, ∇ₓh, ∂h/∂w) for h = σ(Σ_j w_j x_j + b), differentiated as one composed expression."""
    xs, ws, b = neuron_symbols(n)
    pre = sum(w * x for w, x in zip(ws, xs)) + b
    h = act.expr.subs(Z, pre)
    return h, [sp.diff(h, x) for x in xs], [sp.diff(h, w) for w in ws]


def chain_rule_holds(act: Activation, n: int) -> bool:
    """∇ₓh = σ'(z)·w and ∂h/∂w = σ'(z)·x with z = wᵀx + b, as exact symbolic identities.

    Piecewise branches are compared branch by branch on the pre-activation, so the check is exact off the branch
    points; at a kink both sides are sympy's convention and the theorem's "∇h exists" fails anyway.
    """
    xs, ws, b = neuron_symbols(n)
    pre = sum(w * x for w, x in zip(ws, xs)) + b
    slope = derivative(act).subs(Z, pre)
    _, grad_x, grad_w = neuron_gradients(act, n)
    for got, factor in list(zip(grad_x, ws)) + list(zip(grad_w, xs)):
        residual = got - slope * factor
        if sp.simplify(sp.piecewise_fold(residual)) != 0:
            return False
    return True


def literal_magi_gradient(X: sp.Matrix, n_out: int) -> sp.Matrix:
    """∂S/∂W for S = Σ_k Σ_m (X Wᵀ + b)_km (Eq. 17–18); shape (n_out, n_in)."""
    n_batch, n_in = X.shape
    W = sp.Matrix(n_out, n_in, lambda i, j: sp.Symbol(f"W{i}_{j}", real=True))
    bias = sp.Matrix(1, n_out, lambda _, m: sp.Symbol(f"b{m}", real=True))
    Y = X * W.T + sp.ones(n_batch, 1) * bias
    S = sum(Y)
    return sp.Matrix(n_out, n_in, lambda i, j: sp.diff(S, W[i, j]))


def literal_magi_reduces(n_batch: int, n_in: int, n_out: int) -> bool:
    """With symbolic X: ∂S/∂W_ij − Σ_k X_kj ≡ 0 for every i, j, so every unit of the layer gets the same MAGI."""
    X = sp.Matrix(n_batch, n_in, lambda k, j: sp.Symbol(f"X{k}_{j}", real=True))
    grad = literal_magi_gradient(X, n_out)
    column_sums = [sum(X[k, j] for k in range(n_batch)) for j in range(n_in)]
    return all(sp.expand(grad[i, j] - column_sums[j]) == 0 for i in range(n_out) for j in range(n_in))


def post_activation_magi_gradient(act: Activation, X: sp.Matrix, n_out: int) -> sp.Matrix:
    """∂S/∂W when S sums the post-activation outputs σ(XWᵀ + b) instead: Σ_k σ'(z_ki) X_kj, unit-dependent."""
    n_batch, n_in = X.shape
    W = sp.Matrix(n_out, n_in, lambda i, j: sp.Symbol(f"W{i}_{j}", real=True))
    bias = [sp.Symbol(f"b{m}", real=True) for m in range(n_out)]
    S = sum(
        act.expr.subs(Z, sum(X[k, j] * W[m, j] for j in range(n_in)) + bias[m])
        for k in range(n_batch)
        for m in range(n_out)
    )
    return sp.Matrix(n_out, n_in, lambda i, j: sp.diff(S, W[i, j]))
