"""Plasticity metrics: one exact definition each, as pure tensor functions.

Every function works on CPU and CUDA tensors, in float32 and float64, and never loops over neurons in Python.
Conventions shared by all per-unit scores:

* A layer has ``H`` units. Per-unit inputs are shaped ``(N, H)`` or ``(N, H, *spatial)``: batch first, unit second,
  as PyTorch's ``nn.Linear`` and ``nn.Conv*`` produce them.
* Scores are normalised by the *layer mean* (ReDo's code, and Definition 1 of He, "Rethinking Plasticity in Deep RL",
  2026), with no epsilon. When the layer mean is exactly zero the score is 0/0: every score is NaN and the layer is
  *degenerate* (Assumption 3 of the paper fails). The masks count such units as dormant / zero-gradient.
* Each unit's sum of |x| is taken in the input's dtype (a float32 or half-precision sum that
  overflows is taken again in float64), the
  layer total and the score ``H * sum_i / sum_all`` (the batch size cancels) in float64, so a unit with any non-zero
  value never gets a score of exactly 0 through underflow: a positive score too small for the output dtype is rounded
  up to the smallest positive subnormal. Hence ``s_i == 0`` exactly iff every value of unit
  ``i`` in the batch is exactly zero — the sample version of Lemma 1's premise.

Bad input (wrong rank, empty batch, NaN/inf, non-boolean masks) raises ``ValueError`` naming the argument.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import Tensor

__all__ = [
    "dormancy_scores",
    "dormant_mask",
    "masks_deferred",
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
    "LayerScores",
    "AbsBuffer",
    "unit_abs_sums",
    "layer_scores_deferred",
    "weight_statistics_of_layers_deferred",
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
    return _scale_unit_sums(unit_sums, total.reciprocal() * unit_sums.numel(), dtype)


def _scale_unit_sums(unit_sums: Tensor, factor: Tensor, dtype: torch.dtype) -> Tensor:
    """``unit_sums * factor`` in ``dtype``, where ``factor`` is ``H / total`` (one value, or one per unit); a positive
    sum never gives a score of exactly 0."""
    scores = (unit_sums * factor).to(dtype)
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
    unit_sums = unit_abs_sums(x, name).to(torch.float64)
    total = unit_sums.sum()
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
    (mask,), witness = masks_deferred(scores, [tau], name)
    if not math.isfinite(witness.item()):  # the one host read
        _raise_for_scores(scores, name)
    return mask


def _check_float_tensor_allow_nan(x: Tensor, name: str) -> None:
    if not isinstance(x, Tensor) or not torch.is_floating_point(x):
        got = x.dtype if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a floating-point tensor, got {got}")
    if x.dim() != 1 or x.numel() == 0:
        raise ValueError(f"{name} must be a non-empty 1-D tensor of per-unit values, got shape {tuple(x.shape)}")


def _raise_for_scores(scores: Tensor, name: str) -> None:
    """The error for scores whose mask witness is not finite."""
    if bool(torch.isinf(scores).any()):
        raise ValueError(f"{name} contains inf")
    raise ValueError(f"{name} has NaN for some units but not all; layer-normalised scores are NaN all together")


def masks_deferred(scores: Tensor, taus: Sequence[float], name: str = "scores") -> tuple[list[Tensor], Tensor]:
    """The masks of :func:`dormant_mask` (or :func:`zero_gradient_mask`, the same rule) of ``scores`` at every τ in
    ``taus``, with no host read, and a float64 witness that is finite exactly when the checked function returns them
    without an error (no inf; NaN for every unit or none)."""
    _check_float_tensor_allow_nan(scores, name)
    taus = [check_threshold(tau, "tau") for tau in taus]
    nan = torch.isnan(scores)
    flags = (scores * 0.0).sum(dtype=torch.float64)  # 0 unless a score is NaN or inf (inf * 0 is NaN)
    witness = torch.where(nan.all(), 0.0, flags)  # NaN unless no score is inf, and all or none are NaN
    return [(scores <= tau) | nan for tau in taus], witness


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
# same result. A caller that measures many layers reads every witness at once, with one host synchronisation, and
# tests finiteness on the host (cheaper than ``torch.isfinite`` on the device); the batched forms below do the same for
# all layers of a model in a fraction of the operators.


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
    return _magi_of_sums(sums, flat.shape[1], weight_grad.dtype), total


def _magi_of_sums(sums: Tensor, fan_in: int, dtype: torch.dtype) -> Tensor:
    """MAGI from each unit's sum of |gradient|: the mean in float64, divided by the host number ``fan_in`` (on CUDA
    a multiplication by its reciprocal, so batching the division would change bits), in ``dtype``."""
    return (sums.to(torch.float64) / fan_in).to(dtype)


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
    names, values = weight_statistics_of_layers_deferred([(weight, bias, reference_weight, reference_bias)])
    return names[0], values


# --------------------------------------------------------------------------------------------------------------
# Many layers at once (the probe's path)
# --------------------------------------------------------------------------------------------------------------
#
# Only a sum's result depends on the order of its terms, so every sum runs per layer exactly as in the functions
# above (each unit's sum of |x|, each layer's float64 total, each weight's mean and norm) and so does the MAGI division
# (on CUDA a division by a host number is a multiplication by its reciprocal); every other step is elementwise or
# order-free (max) and runs once over all layers of one dtype and device. The results are those of the per-layer
# functions bit for bit (a NaN for a NaN: the payload bits of a bfloat16 NaN depend on the length of the vector it is
# converted in), in a fraction of their operators.


@dataclass(frozen=True)
class LayerScores:
    """The per-unit scores of one layer, each ``(H,)`` in the dtype the single-layer metric gives it. The tensors of
    one measurement may be views of one shared tensor (``.clone()`` one to save it on its own)."""

    dormancy: Tensor
    magi: Tensor
    zero_gradient: Tensor  # the zero-gradient index z of :func:`gradient_scores`
    activation_gradient: Tensor


class AbsBuffer:
    """Reusable CPU memory for the |x| a sum of absolute values needs: one buffer per dtype, grown to the largest
    tensor seen and kept until the buffer is dropped. Repeated measurements then allocate no large temporaries: on a
    CPU each fresh allocation of that size can cost more in page faults than the arithmetic on it. On other devices
    ``x.abs()`` is used as is (CUDA's caching allocator already reuses memory)."""

    def __init__(self) -> None:
        self._buffers: dict[torch.dtype, Tensor] = {}
        self._views: dict[tuple[torch.dtype, torch.Size], Tensor] = {}

    def abs(self, x: Tensor) -> Tensor:
        """``x.abs()``, written into the buffer when ``x`` is a contiguous CPU tensor (so it has the very layout
        ``x.abs()`` would have, and every sum over it runs in the same order); valid until the next call."""
        if x.device.type != "cpu" or not x.is_contiguous() or (x.requires_grad and torch.is_grad_enabled()):
            return x.abs()
        view = self._views.get((x.dtype, x.shape))
        if view is None:
            view = self._view(x)
        return torch.abs(x, out=view)

    def _view(self, x: Tensor) -> Tensor:
        buffer = self._buffers.get(x.dtype)
        if buffer is None or buffer.numel() < x.numel():
            with torch.inference_mode(False):  # made in inference mode it could not be written outside
                buffer = self._buffers[x.dtype] = torch.empty(x.numel(), dtype=x.dtype)
            self._views = {k: v for k, v in self._views.items() if k[0] != x.dtype}  # views of the old buffer
        if len(self._views) >= 64:  # inputs of ever new shapes: keep the cache small
            self._views.clear()
        with torch.inference_mode(False):
            view = self._views[(x.dtype, x.shape)] = buffer[: x.numel()].view(x.shape)
        return view


def unit_abs_sums(x: Tensor, name: str = "x", buffer: Optional[AbsBuffer] = None) -> Tensor:
    """Σ|x| of each unit over the batch and every spatial dimension, with no host read: the summation of
    :func:`dormancy_scores` and :func:`activation_gradient_scores` whose result depends on its order (in ``x``'s
    dtype, or the one autocast gives a sum). ``buffer`` holds |x| (see :class:`AbsBuffer`); the result is the same
    either way."""
    _check_float_tensor(x, name, min_dim=2, check_finite=False)
    absolute = x.abs() if buffer is None else buffer.abs(x)
    return absolute.sum(dim=_unit_dims(x))


def layer_scores_deferred(
    acts_sums: Sequence[Tensor],
    acts_grads: Sequence[Tensor],
    weight_grads: Sequence[Tensor],
    buffer: Optional[AbsBuffer] = None,
    acts_dtypes: Optional[Sequence[torch.dtype]] = None,
) -> tuple[list[LayerScores], Tensor]:
    """Dormancy, MAGI, zero-gradient and activation-gradient scores of many layers, with no host read.

    Args:
        acts_sums: :func:`unit_abs_sums` of each layer's outputs (taken when they were produced).
        acts_grads: each layer's per-sample output gradients, as :func:`activation_gradient_scores` takes them.
        weight_grads: each layer's weight gradient, as :func:`magi` takes it.
        buffer: memory for the |gradient| of each layer (see :class:`AbsBuffer`).
        acts_dtypes: the dtype of each layer's outputs, which its dormancy scores take; by default that of its sums
            (the two differ under autocast, whose sums of half-precision values are float32).

    Returns:
        The scores of each layer, equal to those of :func:`dormancy_scores`, :func:`magi`, :func:`gradient_scores`
        and :func:`activation_gradient_scores`, and a float64 witness of ``3 L`` totals (the L layers' dormancy totals,
        then their activation-gradient totals, then their MAGI totals). Where every entry is finite, the checked
        functions return these scores without an error; where layer l's dormancy total ``witness[l]`` is finite, its
        dormancy scores are those of :func:`dormancy_scores`.
    """
    n = len(acts_sums)
    if n == 0 or len(acts_grads) != n or len(weight_grads) != n:
        raise ValueError(
            f"need one acts sum, acts gradient and weight gradient per layer, got {n}, {len(acts_grads)} and "
            f"{len(weight_grads)}"
        )
    acts_dtypes = [a.dtype for a in acts_sums] if acts_dtypes is None else list(acts_dtypes)
    if len(acts_dtypes) != n:
        raise ValueError(f"acts_dtypes has {len(acts_dtypes)} entries for {n} layers")
    grad_sums = [unit_abs_sums(g, "acts_grad", buffer) for g in acts_grads]
    for i, (a, g, w) in enumerate(zip(acts_sums, grad_sums, weight_grads)):
        _check_float_tensor(a, "acts_sums", min_dim=1, max_dim=1, check_finite=False)
        _check_float_tensor(w, "weight_grad", min_dim=2, check_finite=False)
        if not a.numel() == g.numel() == w.shape[0]:
            raise ValueError(
                f"layer {i}: acts have {a.numel()} units, their gradient {g.numel()}, the weight gradient "
                f"{w.shape[0]} rows"
            )
    incoming = [w if w.dim() == 2 else w.flatten(1) for w in weight_grads]
    absolute = torch._foreach_abs(incoming)  # weight-sized: small next to the layer outputs
    magi_values = [
        _magi_of_sums(a.sum(dim=1), f.shape[1], w.dtype) for a, f, w in zip(absolute, incoming, weight_grads)
    ]
    dtypes = [*acts_dtypes, *(g.dtype for g in acts_grads), *(w.dtype for w in weight_grads)]
    scores, totals = _normalise_each([*acts_sums, *grad_sums, *magi_values], dtypes)
    layers = [LayerScores(scores[i], magi_values[i], scores[2 * n + i], scores[n + i]) for i in range(n)]
    return layers, totals


def _normalise_each(vectors: list[Tensor], dtypes: list[torch.dtype]) -> tuple[list[Tensor], Tensor]:
    """Each vector normalised by its own mean into its dtype, as :func:`_normalise_by_layer_mean` does, with every
    elementwise step run once for all vectors of one dtype and device; the scores and the float64 totals, in the order
    given (the totals on the first vector's device; a model split between a CPU and a GPU pays a synchronising copy
    per total there, as it does per value in the weight statistics)."""
    scores: list[Optional[Tensor]] = [None] * len(vectors)
    totals: list[Optional[Tensor]] = [None] * len(vectors)
    groups: dict[tuple[torch.dtype, torch.device], list[int]] = {}
    for i, (vector, dtype) in enumerate(zip(vectors, dtypes)):
        groups.setdefault((dtype, vector.device), []).append(i)
    for (dtype, device), group in groups.items():
        widths = tuple(vectors[i].numel() for i in group)
        const = _constants(widths, device)
        if device.type == "cpu":  # a float64 slice sums as the same values alone would (tested)
            values = torch.cat([vectors[i] for i in group]).to(torch.float64)
            parts = values.split(widths)
        else:  # CUDA's vectorised sum reads a misaligned head apart: each total over a tensor of its own
            parts = [vectors[i].to(torch.float64) for i in group]
            values = torch.cat(parts)
        group_totals = torch.stack([part.sum() for part in parts])
        factor = (group_totals.reciprocal() * const.width).index_select(0, const.segment)
        for i, part in zip(group, _scale_unit_sums(values, factor, dtype).split(widths)):
            scores[i] = part
        if len(groups) == 1:
            return scores, group_totals
        for i, total in zip(group, group_totals.unbind()):
            totals[i] = total
    first = vectors[0].device
    return scores, torch.stack([total.to(first) for total in totals])


@dataclass(frozen=True)
class _SegmentConstants:
    width: Tensor  # float64 (segments,): each segment's length
    segment: Tensor  # int64 (total length,): the segment of each element


@functools.lru_cache(maxsize=64)
def _constants(widths: tuple[int, ...], device: torch.device) -> _SegmentConstants:
    """Constant tensors of a layout, made once per model shape, so a measurement copies nothing to the device (and
    the first one copies to a GPU from pinned memory, without waiting)."""

    def on_device(values: list, dtype: torch.dtype) -> Tensor:
        host = torch.tensor(values, dtype=dtype)
        if device.type == "cuda":
            return host.pin_memory().to(device, non_blocking=True)
        return host.to(device)

    with torch.inference_mode(False):  # cached: made in inference mode they could not be saved for a backward later
        return _SegmentConstants(
            width=on_device(list(widths), torch.float64),
            segment=on_device([i for i, width in enumerate(widths) for _ in range(width)], torch.int64),
        )


def weight_statistics_of_layers_deferred(
    layers: Sequence[tuple[Tensor, Optional[Tensor], Optional[Tensor], Optional[Tensor]]],
) -> tuple[list[list[str]], Tensor]:
    """:func:`weight_statistics_deferred` of many layers, each given as ``(weight, bias, reference_weight,
    reference_bias)``: each layer's names, and all values in one float64 tensor, layer after layer."""
    if not layers:
        raise ValueError("layers is empty: give at least one (weight, bias, reference_weight, reference_bias)")
    tensors: list[Tensor] = []  # every weight and bias, whose |.| mean, l2 norm and |.| max are taken
    minuends: list[Tensor] = []  # parameter - reference pairs, whose l2 norm is a distance
    subtrahends: list[Tensor] = []
    layout: list[list[tuple[str, int]]] = []  # per layer: ("param", index into tensors) or ("distance", index)
    names: list[list[str]] = []
    with torch.no_grad():
        for weight, bias, reference_weight, reference_bias in layers:
            _check_float_tensor(weight, "weight", min_dim=1, check_finite=False)
            if bias is not None:
                _check_float_tensor(bias, "bias", min_dim=1, max_dim=1, check_finite=False)
            parts = [("weight", weight, reference_weight), ("bias", bias, reference_bias)]
            layer_names, entries = [], []
            for kind, param, _ in parts:
                if param is not None:
                    layer_names += [f"{kind}_abs_mean", f"{kind}_l2", f"{kind}_abs_max"]
                    entries.append(("param", len(tensors)))
                    tensors.append(param)
            for kind, param, reference in parts:  # a bias reference without a bias is ignored
                if param is not None and reference is not None:
                    if reference.shape != param.shape:
                        raise ValueError(
                            f"reference_{kind} has shape {tuple(reference.shape)}, {kind} has {tuple(param.shape)}"
                        )
                    layer_names.append(f"{kind}_distance")
                    entries.append(("distance", len(minuends)))
                    minuends.append(param)
                    subtrahends.append(reference.to(param))
            names.append(layer_names)
            layout.append(entries)
        absolute = torch._foreach_abs(tensors)
        means = [a.mean() for a in absolute]
        maxima = torch._foreach_max(absolute)
        norms = _l2_norms(tensors)
        distances = _l2_norms(torch._foreach_sub(minuends, subtrahends)) if minuends else []
        values = []
        for entries in layout:
            for kind, i in entries:
                values += [means[i], norms[i], maxima[i]] if kind == "param" else [distances[i]]
        if len({v.device for v in values}) > 1:  # a model spread over devices: gather on the first
            values = [v.to(values[0].device) for v in values]
        # stack promotes mixed dtypes exactly
        return names, torch.stack(values).to(torch.float64)


def _l2_norms(tensors: list[Tensor]) -> list[Tensor]:
    """``torch.linalg.vector_norm`` of each tensor. On the CPU ``torch._foreach_norm`` is that very loop in one call;
    on a GPU its fused kernel sums in another order, so each norm is taken on its own there."""
    if all(t.device.type == "cpu" for t in tensors):
        return list(torch._foreach_norm(tensors))
    return [torch.linalg.vector_norm(t) for t in tensors]


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
