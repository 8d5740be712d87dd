"""The plasticity probe: every metric of :mod:`ocp.metrics` for every layer of a model, from ONE forward and ONE
backward pass, leaving the model exactly as it was found.

Which tensor is a layer's output
--------------------------------
The probe measures each hidden ``nn.Linear`` / ``nn.Conv1d/2d/3d`` through the *post-activation* tensor that follows
it. It finds that tensor by watching the forward pass (tensor identity, not module order):

* the layer's output is the input of an activation module (``nn.ReLU``, ``nn.Tanh``, ``nn.Identity``, …): that
  module's output is measured;
* the layer's output goes straight into another Linear/Conv layer, or is a model output: there is no activation (the
  paper's "No-Act" network) and the linear output itself is measured;
* anything else (a functional ``F.relu`` inside ``forward``, a normalisation or dropout module in between): the probe
  cannot tell what the post-activation is and raises, naming the layer. Pass ``layers={"fc1": "act1", ...}`` to
  say which module's output is the post-activation of each layer (``None`` for "no activation").

A layer whose measured tensor is a model output and feeds no other probed layer is an *output* layer: reported on its
own and left out of whole-network ratios.

Objectives
----------
``objective`` is a callable ``f(model_output) -> scalar tensor`` (a training loss: what experiments measure), or

* ``"output_sum"``: the sum of every model output (the paper author's published code);
* ``"layer_output_sum"``: the literal Eq. 17 of the paper, ``S_l = sum of layer l's own pre-activation outputs``,
  differentiated with respect to layer l's weights only. Its MAGI is ``mean_j |sum_k X_kj|``, the same for every unit
  of a layer, and it does not depend on any post-activation output (activation-gradient scores are then NaN).

Cost
----
One forward, one backward, and ONE host read: the metrics' batched forms (``ocp.metrics.layer_scores_deferred``,
``weight_statistics_of_layers_deferred``) compute every score of every layer on the model's device, running each sum
(and each MAGI division) per layer as the single-layer metrics do and every other step once for all layers (the same
results bit for bit, a NaN for a NaN, in about a third of the operators), and every check (finite inputs, layer
outputs, gradients and objective), the objective's value and the weight statistics are read together (on a GPU, one
synchronisation per measurement; ``tests/test_probe.py`` counts it; the first measurement of a model shape also copies
a few constants to the GPU, asynchronously). The scores stay on the device until read. On a CPU the |x| of the sums
is written into memory the probe keeps (per dtype, the size of the largest layer output or gradient it has measured,
until the probe is dropped), so repeated measurements allocate no large temporaries. Where a check fails, the
checked metrics run on the captured tensors and raise naming the layer and the problem, or sum a float32 overflow
again in float64, with the same results as always. In ``train_mode`` the inputs are checked before the forward, so
no NaN reaches batch-norm statistics: one more read per floating-point input. Where the forward, the objective or
the backward fails on NaN or inf in an input or a layer output, the error names that input or layer, as the checks
would have.

Reading a result: :meth:`ProbeResult.summaries`, :meth:`~ProbeResult.rows`, :meth:`~ProbeResult.format` and the
network ratios read the device once for all layers and thresholds; a LayerReport's ratio or mask reads it once per
call.

Memory: through the backward the probe holds what a plain backward holds, plus each layer's measured output and its
gradient (the scores need both) and, only where the measurement uses them, each layer's input (``layer_output_sum``)
and pre-activation output (``activation_gradient="pre"``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from ocp import metrics

__all__ = [
    "PlasticityProbe",
    "ProbeResult",
    "LayerReport",
    "LayerSummary",
    "network_ratio",
    "PROBED_LAYER_TYPES",
    "ACTIVATION_TYPES",
]

PROBED_LAYER_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)

#: Element-wise activation modules the probe recognises by type.
ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (
    nn.Identity,
    nn.ReLU,
    nn.LeakyReLU,
    nn.ReLU6,
    nn.PReLU,
    nn.RReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Tanh,
    nn.Sigmoid,
    nn.Softplus,
    nn.Softsign,
    nn.Hardtanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Tanhshrink,
    nn.Softshrink,
    nn.Hardshrink,
    nn.Threshold,
    nn.LogSigmoid,
)

DEFAULT_THRESHOLDS: tuple[float, ...] = (0.0, 0.025, 0.1)

Objective = Union[Callable[[Any], Tensor], str]


@dataclass(frozen=True)
class LayerReport:
    """Everything measured for one layer. Tensors are detached, on the model's device, in the model's dtype; the
    dormancy, zero-gradient and activation-gradient scores are views of one tensor shared by the measurement's layers
    (``.clone()`` one to keep or save it alone)."""

    name: str
    kind: str  # "hidden" or "output"
    width: int
    activation: str  # class name of the activation module, or "none"
    dormancy_scores: Tensor
    magi: Tensor
    gradient_scores: Tensor
    activation_gradient_scores: Tensor
    features: Tensor  # (N, width): post-activation outputs, spatially averaged for conv layers
    weight_stats: dict[str, float] = field(default_factory=dict)

    @property
    def degenerate(self) -> bool:
        """Every output of the layer is exactly 0 on the batch (Assumption 3 fails; dormancy scores are NaN)."""
        return bool(torch.isnan(self.dormancy_scores).all())

    @property
    def gradient_degenerate(self) -> bool:
        """Every MAGI value of the layer is exactly 0 (zero-gradient indices are NaN)."""
        return bool(torch.isnan(self.gradient_scores).all())

    def dormant_mask(self, tau: float = 0.0) -> Tensor:
        return metrics.dormant_mask(self.dormancy_scores, tau)

    def zero_gradient_mask(self, tau: float = 0.0) -> Tensor:
        return metrics.zero_gradient_mask(self.gradient_scores, tau)

    def absolute_zero_gradient_mask(self, theta: float) -> Tensor:
        return metrics.absolute_zero_gradient_mask(self.magi, theta)

    def dormant_ratio(self, tau: float = 0.0) -> float:
        return _counts_at_or_below([self.dormancy_scores], tau, "scores")[0] / self.width

    def zero_gradient_ratio(self, tau: float = 0.0) -> float:
        return _counts_at_or_below([self.gradient_scores], tau, "z")[0] / self.width

    def ranks(self, delta: float = 0.01, eps: float = 0.01) -> dict[str, float]:
        return metrics.ranks(self.features, delta=delta, eps=eps)


@dataclass(frozen=True)
class LayerSummary:
    """The numbers of one layer's report on the host: its flags, MAGI range, weight statistics and, at each threshold
    of the measurement, how many units are dormant / zero-gradient (``dormant_units[i]`` at ``thresholds[i]``)."""

    name: str
    kind: str
    width: int
    activation: str
    degenerate: bool
    gradient_degenerate: bool
    magi_mean: float
    magi_min: float
    magi_max: float
    dormant_units: tuple[int, ...]
    zero_gradient_units: tuple[int, ...]
    weight_stats: dict[str, float]


@dataclass(frozen=True)
class ProbeResult:
    """Reports of one measurement: hidden layers in forward order, then output layers.

    Every summary below (:meth:`summaries`, :meth:`rows`, :meth:`format`, the network ratios) reads the device once,
    for all layers and thresholds together; a LayerReport's own methods read it per call.
    """

    hidden: tuple[LayerReport, ...]
    output: tuple[LayerReport, ...]
    thresholds: tuple[float, ...]
    objective: str

    @property
    def layers(self) -> tuple[LayerReport, ...]:
        return self.hidden + self.output

    def layer(self, name: str) -> LayerReport:
        for report in self.layers:
            if report.name == name:
                return report
        raise KeyError(f"no probed layer named {name!r}; probed: {[r.name for r in self.layers]}")

    def summaries(self, thresholds: Optional[Sequence[float]] = None) -> tuple[LayerSummary, ...]:
        """Every layer's numbers (hidden layers first, as in :attr:`layers`) at every threshold of the measurement, or
        at ``thresholds``, with one host read."""
        if thresholds is None:
            thresholds = self.thresholds
        elif not isinstance(thresholds, Iterable) or isinstance(thresholds, str):
            raise ValueError(f"thresholds must be a sequence of numbers, got {thresholds!r}")
        return tuple(_summaries(self.layers, tuple(thresholds)))

    def _network_ratio(self, vectors: list[Tensor], tau: float, name: str) -> float:
        if not self.hidden:
            return math.nan
        return sum(_counts_at_or_below(vectors, tau, name)) / sum(r.width for r in self.hidden)

    def dormant_ratio(self, tau: float = 0.0) -> float:
        """Σ dormant units / Σ units over the hidden layers (ReDo's aggregation; output layers excluded).

        NaN for a model whose only probed layer is its output layer.
        """
        return self._network_ratio([r.dormancy_scores for r in self.hidden], tau, "scores")

    def zero_gradient_ratio(self, tau: float = 0.0) -> float:
        """Σ zero-gradient units / Σ units over the hidden layers."""
        return self._network_ratio([r.gradient_scores for r in self.hidden], tau, "z")

    def rows(self) -> list[dict[str, Any]]:
        """Tidy rows: one per (layer, threshold), with per-layer summaries repeated on each row."""
        out = []
        for s in self.summaries():
            base = {
                "layer": s.name,
                "layer_kind": s.kind,
                "width": s.width,
                "activation": s.activation,
                "degenerate": s.degenerate,
                "gradient_degenerate": s.gradient_degenerate,
                "magi_mean": s.magi_mean,
                "magi_min": s.magi_min,
                "magi_max": s.magi_max,
                **s.weight_stats,
            }
            for tau, dormant, zero_gradient in zip(self.thresholds, s.dormant_units, s.zero_gradient_units):
                out.append(
                    {
                        **base,
                        "tau": tau,
                        "dormant_ratio": dormant / s.width,
                        "zero_gradient_ratio": zero_gradient / s.width,
                    }
                )
        return out

    def format(self) -> str:
        """A human-readable table of the per-layer ratios at each threshold."""
        taus = self.thresholds
        summaries = self.summaries()
        head = f"{'layer':<24}{'kind':<8}{'width':>6}  " + "  ".join(f"dorm@{t:<6g} zgrad@{t:<6g}" for t in taus)
        lines = [f"objective: {self.objective}", head]
        for s in summaries:
            ratios = zip(s.dormant_units, s.zero_gradient_units)
            cells = "  ".join(f"{d / s.width:>11.3f} {z / s.width:>12.3f}" for d, z in ratios)
            flag = "  [degenerate: every output is exactly 0]" if s.degenerate else ""
            lines.append(f"{s.name:<24}{s.kind:<8}{s.width:>6}  {cells}{flag}")
        hidden = summaries[: len(self.hidden)]
        net = "  ".join(
            f"{network_ratio(hidden, 'dormant', i):>11.3f} {network_ratio(hidden, 'zero_gradient', i):>12.3f}"
            for i in range(len(taus))
        )
        lines.append(f"{'network (hidden layers)':<38}  {net}")
        return "\n".join(lines)


def network_ratio(hidden: Sequence[LayerSummary], kind: str, index: int) -> float:
    """Σ flagged units / Σ units over the summaries of a result's hidden layers (``result.summaries()[:
    len(result.hidden)]``) at their ``index``-th threshold; ``kind`` is "dormant" or "zero_gradient". NaN for none."""
    if kind not in ("dormant", "zero_gradient"):
        raise ValueError(f"kind must be 'dormant' or 'zero_gradient', got {kind!r}")
    if not hidden:
        return math.nan
    flagged = sum((s.dormant_units if kind == "dormant" else s.zero_gradient_units)[index] for s in hidden)
    return flagged / sum(s.width for s in hidden)


def _counts_at_or_below(vectors: Sequence[Tensor], tau: float, name: str) -> list[int]:
    """How many units the mask of each score vector flags at ``tau``, with one host read for all of them."""
    witnesses, counts = [], []
    for scores in vectors:
        (mask,), witness = metrics.masks_deferred(scores, [tau], name)
        witnesses.append(witness)
        counts.append(mask.sum())
    device = witnesses[0].device
    read = torch.cat([_stack_on(witnesses, device), _stack_on(counts, device).to(torch.float64)]).tolist()
    for scores, fine in zip(vectors, read):
        if not math.isfinite(fine):
            _MASKS[name](scores, tau)  # raises, naming the problem
    return [int(count) for count in read[len(vectors) :]]


_MASKS: dict[str, Callable[[Tensor, float], Tensor]] = {"scores": metrics.dormant_mask, "z": metrics.zero_gradient_mask}


def _stack_on(tensors: list[Tensor], device: torch.device) -> Tensor:
    """``torch.stack`` (which promotes mixed dtypes exactly) on ``device``, for a model spread over devices."""
    if any(t.device != device for t in tensors):
        tensors = [t.to(device) for t in tensors]
    return torch.stack(tensors)


def _summaries(layers: Sequence[LayerReport], taus: Sequence[float]) -> list[LayerSummary]:
    """The summary of each layer at the thresholds ``taus``, with one host read for all of them."""
    if not layers:
        return []
    witnesses: list[Tensor] = []
    counts: list[Tensor] = []  # per layer and kind: all NaN, then the units flagged at each threshold
    magi_ranges: list[Tensor] = []
    for r in layers:
        for scores, name in ((r.dormancy_scores, "scores"), (r.gradient_scores, "z")):
            masks, witness = metrics.masks_deferred(scores, taus, name)
            witnesses.append(witness)
            counts += [torch.isnan(scores).all(), *(mask.sum() for mask in masks)]
        magi_ranges += [r.magi.mean(), r.magi.min(), r.magi.max()]
    device = witnesses[0].device
    parts = [_stack_on(witnesses, device), _stack_on(counts, device), _stack_on(magi_ranges, device)]
    read = torch.cat([part.to(torch.float64) for part in parts]).tolist()
    for i, fine in enumerate(read[: len(witnesses)]):
        if not math.isfinite(fine):
            r, name = layers[i // 2], ("scores", "z")[i % 2]
            _MASKS[name](r.dormancy_scores if name == "scores" else r.gradient_scores, 0.0)  # raises
    at, per_kind, out = len(witnesses), 1 + len(taus), []
    magi_at = at + len(counts)
    for i, r in enumerate(layers):
        dormancy = read[at : at + per_kind]
        zero_gradient = read[at + per_kind : at + 2 * per_kind]
        at += 2 * per_kind
        magi_mean, magi_min, magi_max = read[magi_at + 3 * i : magi_at + 3 * i + 3]
        out.append(
            LayerSummary(
                name=r.name,
                kind=r.kind,
                width=r.width,
                activation=r.activation,
                degenerate=bool(dormancy[0]),
                gradient_degenerate=bool(zero_gradient[0]),
                magi_mean=magi_mean,
                magi_min=magi_min,
                magi_max=magi_max,
                dormant_units=tuple(int(c) for c in dormancy[1:]),
                zero_gradient_units=tuple(int(c) for c in zero_gradient[1:]),
                weight_stats=dict(r.weight_stats),
            )
        )
    return out


@dataclass
class _Trace:
    """What the forward hooks saw: every probed layer's input and output, every activation's input and output."""

    layer_calls: dict[str, list[tuple[Tensor, Tensor]]] = field(default_factory=dict)
    activation_calls: list[tuple[str, nn.Module, Tensor, Tensor]] = field(default_factory=list)


@dataclass
class _Backward:
    """What one forward and backward pass leave for the scores (gradients of unreached layers filled with zeros)."""

    plan: list[dict[str, Any]]
    args: tuple[Tensor, ...]
    value: Tensor
    weight_grads: list[Tensor]
    act_grads: list[Tensor]


def _flatten_tensors(obj: Any) -> list[Tensor]:
    if isinstance(obj, Tensor):
        return [obj]
    if isinstance(obj, Mapping):
        return [t for v in obj.values() for t in _flatten_tensors(v)]
    if isinstance(obj, (list, tuple)):
        return [t for v in obj for t in _flatten_tensors(v)]
    return []


def _contains(tensors: Iterable[Tensor], t: Tensor) -> bool:
    return any(x is t for x in tensors)


class PlasticityProbe:
    """Measures dormancy, MAGI, zero-gradient and activation-gradient scores, ranks and weight statistics.

    Args:
        model: any ``nn.Module`` with at least one ``nn.Linear`` / ``nn.Conv1d/2d/3d``.
        layers: ``None`` to probe every Linear/Conv layer found by tracing; a list of layer names to probe only those;
            or a mapping ``{layer_name: activation_module_name_or_None}`` that says explicitly which module's output
            is each layer's post-activation output (``None``: the layer's own output).
        thresholds: the τ values the tidy rows and the printed report use.
        reference: parameters to measure weight distances from, ``{layer_name: (weight, bias)}``; see
            :meth:`snapshot_reference`.
        activation_gradient: which per-sample gradient the activation-gradient score uses: ``"post"`` (default),
            dL/dh for the post-activation output h that the dormancy score also uses; or ``"pre"``, dL/dz for the
            layer's own (pre-activation) output z = Wx + b. They differ by the factor sigma'(z): a dead ReLU unit whose
            outgoing weights are non-zero has a non-zero "post" score but a zero "pre" score.
    """

    def __init__(
        self,
        model: nn.Module,
        layers: Union[None, Sequence[str], Mapping[str, Optional[str]]] = None,
        thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
        reference: Optional[Mapping[str, tuple[Tensor, Optional[Tensor]]]] = None,
        activation_gradient: str = "post",
    ) -> None:
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be an nn.Module, got {type(model).__name__}")
        self.model = model
        modules = dict(model.named_modules())
        self._probed = {name: m for name, m in modules.items() if isinstance(m, PROBED_LAYER_TYPES)}
        if not self._probed:
            raise ValueError(
                f"model {type(model).__name__} has no nn.Linear or nn.Conv1d/2d/3d layer for the probe to measure"
            )
        self._explicit: Optional[dict[str, Optional[str]]] = None
        if layers is not None:
            names = list(layers.keys()) if isinstance(layers, Mapping) else list(layers)
            if not names:
                raise ValueError("layers is empty: name at least one layer, or pass None to probe all")
            for name in names:
                if name not in self._probed:
                    raise ValueError(
                        f"layers names {name!r}, which is not an nn.Linear/nn.Conv1d/2d/3d of the model; "
                        f"those are: {sorted(self._probed)}"
                    )
            self._probed = {name: self._probed[name] for name in names}
            if isinstance(layers, Mapping):
                for name, act in layers.items():
                    if act is not None and act not in modules:
                        raise ValueError(f"layers[{name!r}] names activation module {act!r}, which the model lacks")
                self._explicit = dict(layers)
        self._modules = modules
        self.thresholds = tuple(metrics.check_threshold(t, "thresholds") for t in thresholds)
        if not self.thresholds:
            raise ValueError("thresholds is empty")
        self.reference = dict(reference) if reference is not None else {}
        if activation_gradient not in ("post", "pre"):
            raise ValueError(f"activation_gradient must be 'post' or 'pre', got {activation_gradient!r}")
        self.activation_gradient = activation_gradient
        self._abs_buffer = metrics.AbsBuffer()

    def snapshot_reference(self) -> None:
        """Store a copy of the probed layers' current parameters; weight distances are then measured from them."""
        self.reference = {
            name: (m.weight.detach().clone(), None if m.bias is None else m.bias.detach().clone())
            for name, m in self._probed.items()
        }

    # ----------------------------------------------------------------------------------------------------------
    def measure(
        self, inputs: Union[Tensor, Sequence[Tensor]], objective: Objective, train_mode: bool = False
    ) -> ProbeResult:
        """One forward and one backward pass over ``inputs``; see the module docstring for ``objective``.

        ``train_mode=False`` (default) runs the model in eval mode, so dropout and batch-norm statistics neither
        consume random numbers nor change buffers; every module's own mode is restored afterwards either way, and
        so are the RNG states. Gradients come from ``torch.autograd.grad``: no ``.grad`` is touched.
        """
        args = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
        self._check_input_shapes(args)
        if not isinstance(train_mode, bool):
            raise ValueError(f"train_mode must be True or False, got {train_mode!r}")
        if train_mode:  # a forward in train mode may update buffers (batch-norm statistics): no NaN may reach them
            self._check_input_values(args)
        objective_name = objective if isinstance(objective, str) else getattr(objective, "__name__", "callable")
        if isinstance(objective, str) and objective not in ("output_sum", "layer_output_sum"):
            raise ValueError(f"objective must be a callable, 'output_sum' or 'layer_output_sum', got {objective!r}")
        if not isinstance(objective, str) and not callable(objective):
            raise ValueError(f"objective must be a callable or a string, got {type(objective).__name__}")

        modes = [(m, m.training) for m in self.model.modules()]
        direct = _plain_modules(modes)  # flags set and restored as themselves (nn.Module's setter is slow)
        devices = sorted({a.device.index or 0 for a in args if a.device.type == "cuda"})
        try:
            with torch.random.fork_rng(devices=devices):
                if any(was_training != train_mode for _, was_training in modes):
                    if direct:
                        for m, _ in modes:
                            object.__setattr__(m, "training", train_mode)
                    else:
                        self.model.train(train_mode)
                with torch.enable_grad():
                    plan = None
                    try:
                        plan, output = self._planned_forward(args, keep_inputs=objective == "layer_output_sum")
                        run = self._backward(plan, args, output, objective)
                    except Exception as err:
                        self._name_bad_input(args, plan, err)
                        raise
                    reports = self._reports(run)
                    hidden = tuple(r for r in reports if r.kind == "hidden")
                    output_layers = tuple(r for r in reports if r.kind == "output")
                    return ProbeResult(hidden, output_layers, self.thresholds, objective_name)
        finally:
            for m, was_training in modes:
                if m.training != was_training:
                    if direct:
                        object.__setattr__(m, "training", was_training)
                    else:
                        m.training = was_training

    # ----------------------------------------------------------------------------------------------------------
    @staticmethod
    def _check_input_shapes(args: tuple[Tensor, ...]) -> None:
        if not args:
            raise ValueError("inputs is empty: pass a batch tensor (or a tuple of them)")
        for i, a in enumerate(args):
            if not isinstance(a, Tensor):
                raise ValueError(f"inputs[{i}] must be a tensor, got {type(a).__name__}")
            if a.dim() == 0 or a.shape[0] == 0:
                raise ValueError(f"inputs[{i}] has shape {tuple(a.shape)}: need a non-empty batch dimension first")

    @staticmethod
    def _check_input_values(args: tuple[Tensor, ...]) -> None:
        for i, a in enumerate(args):
            if torch.is_floating_point(a) and not metrics.all_finite(a):
                raise ValueError(f"inputs[{i}] contains NaN or inf")

    def _planned_forward(self, args: tuple[Tensor, ...], keep_inputs: bool) -> tuple[list[dict[str, Any]], Any]:
        """The forward pass and the plan of what to measure; the trace of every module's inputs and outputs is
        dropped here, so the backward can free what it no longer needs as a plain backward would."""
        trace, output = self._traced_forward(args)
        return self._resolve(trace, output, keep_inputs), output

    def _traced_forward(self, args: tuple[Tensor, ...]) -> tuple[_Trace, Any]:
        trace = _Trace()
        handles = []
        probed_ids = {id(m): name for name, m in self._probed.items()}

        def layer_hook(module: nn.Module, inp: tuple[Tensor, ...], out: Tensor) -> None:
            trace.layer_calls.setdefault(probed_ids[id(module)], []).append((inp[0], out))

        def activation_hook(name: str) -> Callable:
            def hook(module: nn.Module, inp: tuple[Tensor, ...], out: Tensor) -> None:
                trace.activation_calls.append((name, module, inp[0], out))

            return hook

        try:
            for name, m in self._modules.items():
                if id(m) in probed_ids:
                    handles.append(m.register_forward_hook(layer_hook))
                # Every activation-typed module, and every module the caller named, can carry a post-activation.
                named = self._explicit is not None and name in set(self._explicit.values())
                if isinstance(m, ACTIVATION_TYPES) or named:
                    handles.append(m.register_forward_hook(activation_hook(name)))
            output = self.model(*args)
        finally:
            for h in handles:
                h.remove()
        return trace, output

    def _resolve(self, trace: _Trace, output: Any, keep_inputs: bool) -> list[dict[str, Any]]:
        """Decide, for each probed layer, which traced tensor is its measured (post-activation) output. A layer's
        input ``x`` is kept only with ``keep_inputs`` (the objective "layer_output_sum" runs the layer on it again),
        its pre-activation output ``y`` only for ``activation_gradient="pre"``: held to the end of the measurement,
        either would add a layer output's memory per layer to the peak of the backward."""
        outputs = _flatten_tensors(output)
        layer_inputs = [inp for calls in trace.layer_calls.values() for inp, _ in calls]
        plan = []
        for name, module in self._probed.items():
            calls = trace.layer_calls.get(name, [])
            if len(calls) != 1:
                raise ValueError(
                    f"layer {name!r} was called {len(calls)} times in one forward pass; the probe needs exactly one "
                    "call per layer (shared or unused layers cannot be attributed)"
                )
            x, y = calls[0]
            act_name, act_module, h = self._post_activation(name, y, trace, layer_inputs, outputs)
            in_place = h is y and act_module is not None and not isinstance(act_module, nn.Identity)
            if self.activation_gradient == "pre" and in_place:
                raise ValueError(
                    f"layer {name!r}: activation {act_name!r} works in place, so the pre-activation output needed by "
                    "activation_gradient='pre' is overwritten; use a non-in-place activation"
                )
            consumed = _contains(layer_inputs, h) or (h is not y and _contains(layer_inputs, y))
            kind = "output" if _contains(outputs, h) and not consumed else "hidden"
            measured = [("measured output", h)] + (
                [("pre-activation output", y)] if self.activation_gradient == "pre" else []
            )
            for what, t in measured:  # units second: (N, H) or (N, H, *spatial)
                if not torch.is_floating_point(t) or t.dim() < 2 or t.shape[1] != _width(module):
                    raise ValueError(
                        f"layer {name!r}: the {what} has shape {tuple(t.shape)}, expected (N, {_width(module)}, ...)"
                    )
            plan.append(
                dict(
                    name=name,
                    module=module,
                    x=x if keep_inputs else None,
                    y=y if self.activation_gradient == "pre" else None,
                    h=h,
                    h_detached=h.detach(),
                    kind=kind,
                    activation="none" if act_module is None else type(act_module).__name__,
                )
            )
        return plan

    def _post_activation(
        self, name: str, y: Tensor, trace: _Trace, layer_inputs: list[Tensor], outputs: list[Tensor]
    ) -> tuple[Optional[str], Optional[nn.Module], Tensor]:
        if self._explicit is not None:
            act_name = self._explicit[name]
            if act_name is None:
                return None, None, y
            calls = [(m, out) for n, m, _, out in trace.activation_calls if n == act_name]
            if len(calls) != 1:
                raise ValueError(f"activation module {act_name!r} (for layer {name!r}) ran {len(calls)} times")
            return act_name, calls[0][0], calls[0][1]
        for act_name, m, inp, out in trace.activation_calls:
            if inp is y:
                return act_name, m, out
        if _contains(layer_inputs, y) or _contains(outputs, y):
            return None, None, y
        raise ValueError(
            f"cannot tell which activation follows layer {name!r}: its output is used by an operation the probe does "
            "not see (a functional call such as F.relu inside forward, or a normalisation/dropout module). Use "
            "activation modules (nn.ReLU, ...), or pass layers={'<layer>': '<activation module name>' or None}."
        )

    # ----------------------------------------------------------------------------------------------------------
    def _name_bad_input(self, args: tuple[Tensor, ...], plan: Optional[list[dict[str, Any]]], err: Exception) -> None:
        """The forward, the objective or the backward failed: if NaN or inf in an input or a layer output is why (a
        distribution refusing a NaN mean, anomaly detection), raise the error that names it, as the checks after a
        successful pass would."""
        try:
            self._check_input_values(args)
            for p in plan or ():
                _named(p["name"], metrics.dormancy_scores, p["h_detached"])
        except ValueError as named:
            raise named from err

    def _backward(
        self, plan: list[dict[str, Any]], args: tuple[Tensor, ...], output: Any, objective: Objective
    ) -> _Backward:
        # Dormancy's sums before the objective runs, which may change the outputs in place.
        for p in plan:
            p["acts_sums"] = _named(p["name"], self._acts_abs_sums, p["h_detached"])
        weights = [p["module"].weight for p in plan]
        acts = [p["h"] if self.activation_gradient == "post" else p["y"] for p in plan]
        if objective == "layer_output_sum":
            # Eq. 17 per layer: each S_l sees only W_l, because the layer's input is detached.
            value = sum(p["module"](p["x"].detach()).sum() for p in plan)
        elif objective == "output_sum":
            outs = [t for t in _flatten_tensors(output) if torch.is_floating_point(t)]
            if not outs:
                raise ValueError("objective 'output_sum': the model returned no floating-point tensor")
            value = sum(t.sum() for t in outs)
        else:
            value = objective(output)
        self._check_objective(value)

        differentiable = [a.requires_grad for a in acts]
        grads = torch.autograd.grad(
            value,
            weights + [a for a, d in zip(acts, differentiable) if d],
            allow_unused=True,
        )
        weight_grads, act_grads_iter = grads[: len(weights)], iter(grads[len(weights) :])
        act_grads = [next(act_grads_iter) if d else None for d in differentiable]
        if all(g is None for g in weight_grads):
            raise ValueError("the objective does not depend on the weights of any probed layer")
        weight_grads = [torch.zeros_like(p["module"].weight) if g is None else g for p, g in zip(plan, weight_grads)]
        act_grads = [  # a layer the objective does not reach has an exactly zero gradient
            torch.zeros_like(a) if g is None else g for a, g in zip(acts, act_grads)
        ]
        return _Backward(plan, args, value, weight_grads, act_grads)

    def _acts_abs_sums(self, h: Tensor) -> Tensor:
        return metrics.unit_abs_sums(h, "acts", self._abs_buffer)

    @staticmethod
    def _check_objective(value: Any) -> None:
        if not isinstance(value, Tensor):
            raise ValueError(f"the objective must return a tensor, got {type(value).__name__}")
        if value.numel() != 1:
            raise ValueError(f"the objective must return a scalar, got shape {tuple(value.shape)}")
        if not value.requires_grad:
            raise ValueError("the objective does not depend on the model's parameters (its value has no gradient)")

    def _reports(self, run: _Backward) -> list[LayerReport]:
        """Every score with the metrics' batched forms and ONE host read (all checks, the objective's value and the
        weight statistics at once); where a check fails, the checked metrics name the problem."""
        # NaN or inf in an input makes its sum so; a float64 sum cannot overflow for a float16 or float32 input.
        input_witnesses = [a.sum(dtype=torch.float64) for a in run.args if torch.is_floating_point(a)]
        scores, witness = metrics.layer_scores_deferred(
            [p["acts_sums"] for p in run.plan],
            run.act_grads,
            run.weight_grads,
            self._abs_buffer,
            acts_dtypes=[p["h_detached"].dtype for p in run.plan],
        )
        names, stat_values = metrics.weight_statistics_of_layers_deferred(
            [self._weight_statistics_args(p) for p in run.plan]
        )
        # The one host synchronisation of a measurement: every witness, the objective and the weight statistics.
        device = witness.device  # where the model's outputs are, whatever the objective returned
        parts = [witness, run.value.detach().reshape(1).to(device), stat_values.to(device)]
        if input_witnesses:
            parts.insert(0, torch.stack([w.to(device) for w in input_witnesses]))
        read = torch.cat(parts).tolist()
        if not all(math.isfinite(v) for v in read):
            dormancy_totals = read[len(input_witnesses) : len(input_witnesses) + len(run.plan)]
            dormancy = [s.dormancy if math.isfinite(t) else None for s, t in zip(scores, dormancy_totals)]
            return self._reports_checked(run, dormancy)
        reports, at = [], len(read) - stat_values.numel()
        for p, layer_scores, layer_names in zip(run.plan, scores, names):
            stats = dict(zip(layer_names, read[at : at + len(layer_names)]))
            at += len(layer_names)
            reports.append(self._report(p, layer_scores, stats))
        return reports

    def _reports_checked(self, run: _Backward, dormancy: list[Optional[Tensor]]) -> list[LayerReport]:
        """Every score with the checked metrics, which raise naming the layer and the problem; ``dormancy`` holds the
        scores of each layer whose outputs were finite (None for the others), taken before the objective ran."""
        self._check_input_values(run.args)
        # Dormancy first: a non-finite layer output is then reported by name, not as a non-finite objective.
        dormancy = [
            d if d is not None else _named(p["name"], metrics.dormancy_scores, p["h_detached"])
            for p, d in zip(run.plan, dormancy)
        ]
        if not math.isfinite(run.value.item()):
            raise ValueError(f"the objective is not finite: {run.value.item()}")
        reports = []
        for p, d, wg, ag in zip(run.plan, dormancy, run.weight_grads, run.act_grads):
            G = _named(p["name"], metrics.magi, wg)
            z = metrics.gradient_scores(G)
            grama = _named(p["name"], metrics.activation_gradient_scores, ag)
            stats = metrics.weight_statistics(*self._weight_statistics_args(p))
            reports.append(self._report(p, metrics.LayerScores(d, G, z, grama), stats))
        return reports

    def _weight_statistics_args(self, p: dict[str, Any]) -> tuple[Tensor, Optional[Tensor], Any, Any]:
        """Weight, bias and the reference they are measured from (None, None without one)."""
        return (p["module"].weight, p["module"].bias, *self.reference.get(p["name"], (None, None)))

    @staticmethod
    def _report(p: dict[str, Any], scores: metrics.LayerScores, stats: dict[str, float]) -> LayerReport:
        h = p["h_detached"]
        return LayerReport(
            name=p["name"],
            kind=p["kind"],
            width=_width(p["module"]),
            activation=p["activation"],
            dormancy_scores=scores.dormancy,
            magi=scores.magi,
            gradient_scores=scores.zero_gradient,
            activation_gradient_scores=scores.activation_gradient,
            features=h if h.dim() == 2 else h.flatten(2).mean(dim=2),
            weight_stats=stats,
        )


def _plain_modules(modules: list[tuple[nn.Module, bool]]) -> bool:
    """No module changes what ``train()`` or setting ``training`` does, so setting each flag is ``model.train()``'s
    very effect: its class keeps nn.Module's ``train`` and attribute setter (a TorchScript module has its own
    setter, which tells its C++ half) and no instance replaces ``train``."""
    return all(
        type(m).train is nn.Module.train and type(m).__setattr__ is nn.Module.__setattr__ and "train" not in m.__dict__
        for m, _ in modules
    )


def _named(layer: str, fn: Callable[[Tensor], Any], x: Tensor) -> Any:
    """Apply a metric, prefixing any bad-input error with the layer's name."""
    try:
        return fn(x)
    except ValueError as err:
        raise ValueError(f"layer {layer!r}: {err}") from err


def _width(module: nn.Module) -> int:
    return module.out_features if isinstance(module, nn.Linear) else module.out_channels
