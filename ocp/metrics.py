"""Plasticity metrics: one exact definition each, as pure tensor functions.

Every function works on CPU and CUDA tensors, in float32 and float64, and never loops over neurons in Python.
Conventions shared by all per-unit scores:

* A layer has ``H`` units. Per-unit inputs are shaped ``(N, H)`` or ``(N, H, *spatial)``: batch first, unit second,
  as PyTorch's ``nn.Linear`` and ``nn.Conv*`` produce them.
* Scores are normalised by the *layer mean* (ReDo's code, and Definition 1 of He, "Rethinking Plasticity in Deep RL",
  2026), with no epsilon. When the layer mean is exactly zero the score is 0/0: every score is NaN and the layer is
  *degenerate* (Assumption 3 of the paper fails). The masks count such units as dormant / zero-gradient.
* Sums are accumulated in float64 and the score is formed as ``H * sum_i / sum_all`` (the batch size cancels), so a
  unit with any non-zero value never gets a score of exactly 0 through underflow: a positive score too small for the
  output dtype is rounded up to the smallest positive subnormal. Hence ``s_i == 0`` exactly iff every value of unit
  ``i`` in the batch is exactly zero — the sample version of Lemma 1's premise.

Bad input (wrong rank, empty batch, NaN/inf, non-boolean masks) raises ``ValueError`` naming the argument.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

__all__ = [
    "dormancy_scores",
    "dormant_mask",
    "magi",
    "gradient_scores",
    "zero_gradient_mask",
    "absolute_zero_gradient_mask",
    "activation_gradient_scores",
    "overlap_coefficient",
    "persistence",
    "singular_values",
    "effective_rank",
    "srank",
    "stable_rank",
    "feature_rank",
    "ranks",
    "weight_statistics",
    "dormancy_scores_deferred",
    "activation_gradient_scores_deferred",
    "magi_deferred",
    "gradient_scores_deferred",
    "weight_statistics_deferred",
    "all_finite",
    "check_threshold",
]


# --------------------------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------------------------


def _check_float_tensor(
    x: Tensor, name: str, min_dim: int, max_dim: Optional[int] = None, check_finite: bool = True
) -> None:
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not torch.is_floating_point(x):
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.dim() < min_dim or (max_dim is not None and x.dim() > max_dim):
        wanted = f"{min_dim}" if max_dim == min_dim else f"{min_dim} to {max_dim}" if max_dim else f">= {min_dim}"
        raise ValueError(f"{name} must have {wanted} dimensions, got shape {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)}): need at least one sample and one unit")
    if check_finite and not all_finite(x):
        raise ValueError(f"{name} contains NaN or inf")


def all_finite(x: Tensor) -> bool:
    """``torch.isfinite(x).all()`` with two operators and one device sync in the common case.

    Any NaN or inf element makes the sum NaN or inf, so a finite sum proves every element finite; only a non-finite
    sum (bad input, or a sum that overflows) needs the elementwise check.
    """
    return math.isfinite(x.sum().item()) or bool(torch.isfinite(x).all())


def check_threshold(value: float, name: str) -> float:
    """``value`` as a float, or a ``ValueError`` naming ``name`` unless it is finite and ≥ 0."""
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


def _check_mask(mask: Tensor, name: str) -> None:
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        got = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
        raise ValueError(f"{name} must be a boolean tensor, got {got}")


# --------------------------------------------------------------------------------------------------------------
# Normalised per-unit scores (dormancy, zero-gradient index, activation-gradient score)
# --------------------------------------------------------------------------------------------------------------


def _normalise_by_layer_mean(unit_sums: Tensor, total: Tensor, dtype: torch.dtype) -> Tensor:
    """``H * unit_sums / total`` in ``dtype``, with ``total = unit_sums.sum()`` (a float64 tensor, so no host read);
    NaN everywhere if it is 0 (see the module docstring)."""
    # 1/0 = inf, and 0 * inf gives NaN when the total is 0.
    scores = (unit_sums * (total.reciprocal() * unit_sums.numel())).to(dtype)
    tiny = torch.finfo(dtype).smallest_normal * torch.finfo(dtype).eps  # smallest positive subnormal
    return torch.where(unit_sums > 0, scores.clamp_min(tiny), scores)


def _abs_sums(x: Tensor, dims: list[int]) -> tuple[Tensor, Tensor]:
    """Sums of |x| over ``dims`` in float64 and their total, with one pass over ``x`` in its own dtype and no host
    read. A sum of non-negative numbers is 0 only if every term is 0, so no underflow can fake a zero here; NaN or
    inf in ``x``, and a float32 sum that overflows, show up as a non-finite total."""
    sums = x.abs().sum(dim=dims).to(torch.float64)
    return sums, sums.sum()


def _abs_sums_checked(x: Tensor, dims: list[int], name: str) -> tuple[Tensor, Tensor]:
    """:func:`_abs_sums` for an input whose total was not finite: a finite input whose float32 sums overflow is summed
    again in float64; NaN or inf in ``x`` is an error naming ``name``."""
    sums, total = _abs_sums(x, dims)
    # Only a non-finite per-unit sum is an error here; a total that overflows is for the normalising callers to judge.
    if not bool(torch.isfinite(sums).all()):
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name} contains NaN or inf")
        sums = x.abs().sum(dim=dims, dtype=torch.float64)
        total = sums.sum()
        if not bool(torch.isfinite(sums).all()):
            raise ValueError(f"{name}: the sum of |values| overflows float64")
    return sums, total


def _unit_dims(x: Tensor) -> list[int]:
    """The dimensions a per-unit mean runs over: the batch and every spatial one."""
    return [0] + list(range(2, x.dim()))


def _layer_normalised_abs_mean_deferred(x: Tensor, name: str) -> tuple[Tensor, Tensor]:
    _check_float_tensor(x, name, min_dim=2, check_finite=False)
    unit_sums, total = _abs_sums(x, _unit_dims(x))
    return _normalise_by_layer_mean(unit_sums, total, x.dtype), total


def _layer_normalised_abs_mean(x: Tensor, name: str) -> Tensor:
    scores, witness = _layer_normalised_abs_mean_deferred(x, name)
    if math.isfinite(witness.item()):  # the one host read of the common case
        return scores
    unit_sums, total = _abs_sums_checked(x, _unit_dims(x), name)
    if not math.isfinite(total.item()):
        raise ValueError(f"{name}: the sum of |values| overflows float64")
    return _normalise_by_layer_mean(unit_sums, total, x.dtype)


def dormancy_scores(acts: Tensor) -> Tensor:
    r"""Dormancy index of every unit of one layer.

    .. math:: s_i = \frac{\mathbb{E}_x |h_i(x)|}{\frac{1}{H}\sum_k \mathbb{E}_x |h_k(x)|}

    Source: He (2026), Definition 1, Eq. 2; identical to the score of Sokar et al. (2023, "The Dormant Neuron
    Phenomenon in Deep RL", Def. 3.1) as their code computes it (divided by the layer *mean*), but without their
    ``1e-9`` in the denominator: an all-zero layer gives NaN, not 0.

    Args:
        acts: post-activation outputs of the layer on a batch, shape ``(N, H)`` or ``(N, H, *spatial)``; for a conv
            layer the expectation runs over the batch and all spatial positions.

    Returns:
        ``(H,)`` scores in ``acts.dtype``; every entry NaN when the layer mean is exactly 0.
    """
    return _layer_normalised_abs_mean(acts, "acts")


def _mask_at_or_below(scores: Tensor, tau: float, name: str) -> Tensor:
    _check_float_tensor_allow_nan(scores, name)
    tau = check_threshold(tau, "tau")
    nan = torch.isnan(scores)
    if bool(nan.any()) and not bool(nan.all()):
        raise ValueError(f"{name} has NaN for some units but not all; layer-normalised scores are NaN all together")
    return (scores <= tau) | nan


def _check_float_tensor_allow_nan(x: Tensor, name: str) -> None:
    if not isinstance(x, Tensor) or not torch.is_floating_point(x):
        got = x.dtype if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a floating-point tensor, got {got}")
    if x.dim() != 1 or x.numel() == 0:
        raise ValueError(f"{name} must be a non-empty 1-D tensor of per-unit values, got shape {tuple(x.shape)}")
    if bool(torch.isinf(x).any()):
        raise ValueError(f"{name} contains inf")


def dormant_mask(scores: Tensor, tau: float = 0.0) -> Tensor:
    r"""Units with :math:`s_i \le \tau` (Sokar et al. 2023 call a unit :math:`\tau`-dormant when :math:`s_i \le \tau`).

    ``tau = 0`` means exactly zero (no ``isclose``). NaN scores (a degenerate layer whose outputs are all exactly 0)
    count as dormant: every unit of such a layer is dead, and a ``NaN <= tau`` comparison would silently say the
    opposite.
    """
    return _mask_at_or_below(scores, tau, "scores")


def magi(weight_grad: Tensor) -> Tensor:
    r"""Mean Absolute Gradient Intensity of every unit (He 2026, Definition 2, Eq. 16).

    .. math:: G_i = \frac{1}{n_{in}} \sum_j \left|\frac{\partial S}{\partial W_{ij}}\right|

    Args:
        weight_grad: gradient of the objective with respect to the layer's weight, shape ``(H, n_in)`` for
            ``nn.Linear`` or ``(H, C_in/groups, *kernel)`` for ``nn.Conv*``, where the mean runs over every incoming
            dimension. The bias gradient is not part of the definition.
    """
    G, witness = magi_deferred(weight_grad)
    if math.isfinite(witness.item()):  # the one host read of the common case
        return G
    flat = weight_grad.flatten(1)
    return (_abs_sums_checked(flat, [1], "weight_grad")[0] / flat.shape[1]).to(weight_grad.dtype)


def gradient_scores(G: Tensor) -> Tensor:
    r"""Zero-gradient index :math:`z_i = G_i / (\frac{1}{H}\sum_k G_k)`: MAGI normalised like dormancy.

    NaN everywhere when every :math:`G_k` is exactly 0 (the same 0/0 rule as :func:`dormancy_scores`).
    """
    z, witness = gradient_scores_deferred(G)
    if math.isfinite(witness.item()):  # the one host read of the common case
        return z
    G64 = G.to(torch.float64)
    total, smallest = torch.stack([G64.sum(), G64.min()]).tolist()
    if not math.isfinite(total) and not bool(torch.isfinite(G).all()):
        raise ValueError("G contains NaN or inf")
    if smallest < 0:
        raise ValueError("G must be non-negative (MAGI values are means of absolute gradients)")
    raise ValueError("G: the sum of the values overflows float64")


def zero_gradient_mask(z: Tensor, tau: float = 0.0) -> Tensor:
    r"""Units with :math:`z_i \le \tau`; ``tau = 0`` means exactly zero; NaN (all gradients zero) counts as zero."""
    return _mask_at_or_below(z, tau, "z")


def absolute_zero_gradient_mask(G: Tensor, theta: float) -> Tensor:
    r"""Units with :math:`G_i < \theta`, unnormalised.

    This is the rule of the paper author's published code (``mean|grad| < 0.05``). It depends on the scale of the
    loss and of the layer's inputs, which is why the normalised :func:`zero_gradient_mask` is our default.
    """
    _check_float_tensor(G, "G", min_dim=1, max_dim=1)
    theta = check_threshold(theta, "theta")
    return G < theta


def activation_gradient_scores(acts_grad: Tensor) -> Tensor:
    r"""GraMa's gradient-magnitude score (Liu et al. 2025, "Neuroplastic Expansion"/"GraMa", Eq. 2).

    .. math::
        g_i = \frac{\mathbb{E}_x |\partial L / \partial h_i(x)|}
                   {\frac{1}{H}\sum_k \mathbb{E}_x |\partial L / \partial h_k(x)|}

    Args:
        acts_grad: per-sample gradients of the objective with respect to the layer's post-activation outputs,
            shape ``(N, H)`` or ``(N, H, *spatial)`` — what one backward pass gives for the layer's output tensor.

    Unlike MAGI (a batch-summed weight gradient), per-sample terms cannot cancel here. Same 0/0 rule as
    :func:`dormancy_scores`.
    """
    return _layer_normalised_abs_mean(acts_grad, "acts_grad")


# --------------------------------------------------------------------------------------------------------------
# Deferred forms: the same scores without reading anything on the host
# --------------------------------------------------------------------------------------------------------------
#
# Each returns ``(result, witness)``: ``witness`` is a 0-dim float64 tensor on the input's device; where it is finite,
# the checked function above returns exactly ``result`` without an error. Where it is not (NaN or inf in the input, a
# float32 sum that overflows, a float64 layer total that overflows) the checked function is the one to call: it
# raises naming the problem, sums again in float64, or (MAGI, whose per-unit values need no layer total) returns the
# same result. A caller that measures many layers (the probe) reads every witness at once, with one host
# synchronisation, and tests finiteness on the host (cheaper than ``torch.isfinite`` on the device).


def dormancy_scores_deferred(acts: Tensor) -> tuple[Tensor, Tensor]:
    """:func:`dormancy_scores` and its witness, with no host read."""
    return _layer_normalised_abs_mean_deferred(acts, "acts")


def activation_gradient_scores_deferred(acts_grad: Tensor) -> tuple[Tensor, Tensor]:
    """:func:`activation_gradient_scores` and its witness, with no host read."""
    return _layer_normalised_abs_mean_deferred(acts_grad, "acts_grad")


def magi_deferred(weight_grad: Tensor) -> tuple[Tensor, Tensor]:
    """:func:`magi` and its witness, with no host read."""
    _check_float_tensor(weight_grad, "weight_grad", min_dim=2, check_finite=False)
    flat = weight_grad.flatten(1)
    sums, total = _abs_sums(flat, [1])
    return (sums / flat.shape[1]).to(weight_grad.dtype), total


def gradient_scores_deferred(G: Tensor) -> tuple[Tensor, Tensor]:
    """:func:`gradient_scores` and its witness, with no host read."""
    _check_float_tensor(G, "G", min_dim=1, max_dim=1, check_finite=False)
    G64 = G.to(torch.float64)
    total = G64.sum()
    witness = total / (G64.min() >= 0)  # a negative G is an error too: total / 0 is not finite
    return _normalise_by_layer_mean(G64, total, G.dtype), witness


def weight_statistics_deferred(
    weight: Tensor,
    bias: Optional[Tensor] = None,
    reference_weight: Optional[Tensor] = None,
    reference_bias: Optional[Tensor] = None,
) -> tuple[list[str], Tensor]:
    """The names of :func:`weight_statistics` and their values as one float64 tensor, with no host read (the
    values are finite when the checked function returns them)."""
    _check_float_tensor(weight, "weight", min_dim=1, check_finite=False)
    w = weight.detach()
    names = ["weight_abs_mean", "weight_l2", "weight_abs_max"]
    w_abs = w.abs()
    values = [w_abs.mean(), torch.linalg.vector_norm(w), w_abs.max()]
    if bias is not None:
        _check_float_tensor(bias, "bias", min_dim=1, max_dim=1, check_finite=False)
        b = bias.detach()
        names += ["bias_abs_mean", "bias_l2", "bias_abs_max"]
        b_abs = b.abs()
        values += [b_abs.mean(), torch.linalg.vector_norm(b), b_abs.max()]
    if reference_weight is not None:
        if reference_weight.shape != weight.shape:
            raise ValueError(
                f"reference_weight has shape {tuple(reference_weight.shape)}, weight has {tuple(weight.shape)}"
            )
        names.append("weight_distance")
        values.append(torch.linalg.vector_norm(w - reference_weight.detach().to(w)))
    if reference_bias is not None and bias is not None:
        if reference_bias.shape != bias.shape:
            raise ValueError(f"reference_bias has shape {tuple(reference_bias.shape)}, bias has {tuple(bias.shape)}")
        names.append("bias_distance")
        values.append(torch.linalg.vector_norm(bias.detach() - reference_bias.detach().to(bias)))
    # stack promotes mixed dtypes exactly
    return names, torch.stack(values).to(torch.float64)


# --------------------------------------------------------------------------------------------------------------
# Set overlap
# --------------------------------------------------------------------------------------------------------------


def _check_mask_pair(a: Tensor, b: Tensor, names: tuple[str, str]) -> None:
    _check_mask(a, names[0])
    _check_mask(b, names[1])
    if a.shape != b.shape:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )


def overlap_coefficient(a: Tensor, b: Tensor) -> float:
    r"""Szymkiewicz–Simpson overlap :math:`|A \cap B| / \min(|A|, |B|)` of two unit sets (He 2026, Definition 3,
    Eq. 19).

    ``a`` and ``b`` are boolean masks of the same shape. When either set is empty the ratio is 0/0 and the result is
    NaN: "no dormant units at one of the two times" is not the same statement as "no overlap".
    """
    _check_mask_pair(a, b, ("a", "b"))
    smaller = min(int(a.sum()), int(b.sum()))
    if smaller == 0:
        return math.nan
    return int((a & b).sum()) / smaller


def persistence(prev: Tensor, cur: Tensor) -> float:
    r""":math:`|P \cap C| / |P|`: the share of previously flagged units still flagged (what dopamine's ReDo logs).

    NaN when the previous set is empty.
    """
    _check_mask_pair(prev, cur, ("prev", "cur"))
    n_prev = int(prev.sum())
    if n_prev == 0:
        return math.nan
    return int((prev & cur).sum()) / n_prev


# --------------------------------------------------------------------------------------------------------------
# Ranks of a feature matrix
# --------------------------------------------------------------------------------------------------------------


def singular_values(phi: Tensor) -> Tensor:
    """Singular values of a feature matrix ``phi`` (N x d), descending, in float64.

    Computed in float64 for a stable cumulative share; if the (e.g. CUDA) solver fails to converge, retried on CPU.
    """
    _check_float_tensor(phi, "phi", min_dim=2, max_dim=2)
    phi64 = phi.detach().to(torch.float64)
    try:
        return torch.linalg.svdvals(phi64)
    except torch.linalg.LinAlgError:
        return torch.linalg.svdvals(phi64.cpu()).to(phi.device)


def _effective_rank(sigma: Tensor) -> float:
    total = sigma.sum()
    if total == 0:
        return math.nan
    p = sigma / total
    entropy = -torch.where(p > 0, p * torch.log(p), torch.zeros_like(p)).sum()
    return float(torch.exp(entropy))


def _srank(sigma: Tensor, delta: float) -> int:
    delta = float(delta)
    if not 0.0 <= delta < 1.0:
        raise ValueError(f"delta must be in [0, 1), got {delta}")
    total = sigma.sum()
    if total == 0:
        return 0
    share = torch.cumsum(sigma, dim=0) / total
    target = torch.tensor([1.0 - delta], dtype=share.dtype, device=share.device)
    # The last cumulative share may round to just below 1; k never exceeds the number of singular values.
    return min(int(torch.searchsorted(share, target)[0]) + 1, sigma.numel())


def _stable_rank(sigma: Tensor) -> float:
    if sigma[0] == 0:
        return math.nan
    return float((sigma**2).sum() / sigma[0] ** 2)


def _feature_rank(sigma: Tensor, n_samples: int, eps: float) -> int:
    eps = check_threshold(eps, "eps")
    return int((sigma / math.sqrt(n_samples) > eps).sum())


def effective_rank(phi: Tensor) -> float:
    r"""Effective rank of Roy & Vetterli (2007): :math:`\exp(-\sum_k p_k \log p_k)` with
    :math:`p = \sigma / \sum\sigma`.

    ``0 log 0 = 0``. NaN for the all-zero matrix (``p`` is 0/0 there).
    """
    return _effective_rank(singular_values(phi))


def srank(phi: Tensor, delta: float = 0.01) -> int:
    r"""srank of Kumar et al. (2021, "Implicit Under-Parameterization", Eq. 1): least :math:`k` with
    :math:`\sum_{i \le k} \sigma_i / \sum_i \sigma_i \ge 1 - \delta`.

    Not a stable rank (see :func:`stable_rank`), although two peer code bases call it one. The all-zero matrix has
    srank 0.
    """
    return _srank(singular_values(phi), delta)


def stable_rank(phi: Tensor) -> float:
    r"""Stable rank :math:`\sum_i \sigma_i^2 / \sigma_{\max}^2 = \|\Phi\|_F^2 / \|\Phi\|_2^2`
    (Rudelson & Vershynin 2007). NaN for the all-zero matrix."""
    return _stable_rank(singular_values(phi))


def feature_rank(phi: Tensor, eps: float = 0.01) -> int:
    r"""Feature rank of Lyle et al. (2022, "Understanding and Preventing Capacity Loss in RL"):
    :math:`|\{i : \sigma_i(\Phi / \sqrt{N}) > \epsilon\}|` for ``phi`` of shape (N, d)."""
    return _feature_rank(singular_values(phi), phi.shape[0], eps)


def ranks(phi: Tensor, delta: float = 0.01, eps: float = 0.01) -> dict[str, float]:
    """All four ranks of one feature matrix from a single SVD."""
    sigma = singular_values(phi)
    return {
        "effective_rank": _effective_rank(sigma),
        "srank": _srank(sigma, delta),
        "stable_rank": _stable_rank(sigma),
        "feature_rank": _feature_rank(sigma, phi.shape[0], eps),
    }


# --------------------------------------------------------------------------------------------------------------
# Weight statistics
# --------------------------------------------------------------------------------------------------------------


def weight_statistics(
    weight: Tensor,
    bias: Optional[Tensor] = None,
    reference_weight: Optional[Tensor] = None,
    reference_bias: Optional[Tensor] = None,
) -> dict[str, float]:
    """Magnitude statistics of one layer's parameters (the quantities of the paper's Figure 7).

    Keys: ``weight_abs_mean``, ``weight_l2`` (Frobenius norm), ``weight_abs_max``; with a bias ``bias_abs_mean``,
    ``bias_l2``, ``bias_abs_max``; with a reference (e.g. the initial parameters) ``weight_distance`` =
    ``||W - W_ref||_F`` and, if both biases are given, ``bias_distance``.
    """
    names, values = weight_statistics_deferred(weight, bias, reference_weight, reference_bias)
    stats = dict(zip(names, values.tolist()))  # one host read for all statistics
    if not all(math.isfinite(v) for v in stats.values()):
        raise ValueError("weight, bias or a reference contains NaN or inf")
    return stats
