"""Plasticity interventions behind one interface, each patching the optimiser state in place.

Every intervention acts on ``nn.Sequential`` MLPs (the PPO actor and critic) and on the Adam optimiser that trains
them: ``torch.optim.Adam`` / ``AdamW``, or the training loop's ``ocp.flat_adam.FlatAdam``, whose ``param_groups`` and
``state[p]`` moment views read and write the same way. Parameters are always edited *in place*, so the optimiser keeps
pointing at the live tensors (a peer framework rebuilt modules and left Adam updating the old ones), and the Adam
moments of every edited entry are handled explicitly.

The hooks an intervention may implement, called by a training loop:

* :meth:`Intervention.regulariser` — a loss term added to the training loss (L2-init); :meth:`Intervention.penalty`
  is the same term without recording it (what the probe adds to its objective);
* :meth:`Intervention.after_step` — after every optimiser step (weight clipping);
* :meth:`Intervention.on_schedule` — every ``every`` updates, with a fresh probe result of each network (ReDo,
  gradient-ReDo, shrink & perturb);
* :meth:`Intervention.update_log` — once per update, what the per-step hooks did (L2 term, clipped weights);
* :meth:`Intervention.state_dict` / :meth:`Intervention.load_state_dict` — what :meth:`Intervention.bind` stored,
  for checkpoints (θ₀ of L2-init, the clipping bounds).

``ocp.ppo.train`` calls all of them. Each intervention is defined once, by its class: the dataclass fields are its
parameters (with their defaults and documentation, which ``PPOConfig.intervention`` and the command line take over),
``name`` is its registry key, and whether it acts on a schedule follows from whether it implements
:meth:`Intervention.on_schedule`. Adding one is a subclass and a line in :data:`INTERVENTIONS` (docs/scenarios.md).

Sources: ReDo — Sokar et al. 2023 (recycle dormant neurons: re-initialise incoming weights, zero outgoing weights,
reset their Adam moments); shrink & perturb — Ash & Adams 2020 (θ ← λθ + p·θ_fresh with a freshly initialised θ_fresh);
L2-init — Kumar et al. 2023 (λ‖θ − θ₀‖²); weight clipping — Elsayed et al. 2024 (clip to ±κ·s_l).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Literal, Mapping, Optional

import torch
from torch import Tensor, nn

from ocp.flat_adam import FlatAdam
from ocp.probe import ProbeResult

__all__ = [
    "Intervention",
    "ReDo",
    "GradientReDo",
    "ShrinkPerturb",
    "L2Init",
    "WeightClipping",
    "make_intervention",
    "intervention_from_dict",
    "INTERVENTIONS",
]

Initialiser = Callable[[nn.Linear, Tensor], None]

#: What ReDo does with Adam's step count (see :class:`ReDo`).
ADAM_STEP_CHOICES = ("keep", "reset_tensors", "reset_entries")
AdamStep = Literal[ADAM_STEP_CHOICES]  # type: ignore[valid-type]
#: What gradient-ReDo does to a selected unit (see :class:`GradientReDo`).
GRADIENT_REDO_MODES = ("reset", "perturb")
GradientReDoMode = Literal[GRADIENT_REDO_MODES]  # type: ignore[valid-type]


def layer_initialiser(layer: nn.Linear, weight: Tensor) -> None:
    """Fill ``weight`` (shaped like ``layer.weight``) from ``layer``'s own initialisation: orthogonal with the gain the
    layer carries as ``init_gain`` (every layer ``ocp.agent.mlp`` builds: √2 hidden, 0.01 actor output, 1 critic
    output), or PyTorch's default for ``nn.Linear`` (Kaiming-uniform with a = √5, bound 1/√fan_in) for a layer without
    one. "Fresh" weights must come from the layer's own distribution: one gain of √2 for every layer made a
    shrink-and-perturb act at p = 0.1 add noise 14× the initial scale of the PPO actor's output layer."""
    gain = getattr(layer, "init_gain", None)
    if gain is None:
        nn.init.kaiming_uniform_(weight, a=math.sqrt(5.0))
    else:
        nn.init.orthogonal_(weight, gain)


def _linears(net: nn.Sequential) -> list[tuple[str, nn.Linear]]:
    return [(name, m) for name, m in net.named_children() if isinstance(m, nn.Linear)]


def _fresh_weight(layer: nn.Linear, initialiser: Initialiser, generator: torch.Generator) -> Tensor:
    """A freshly initialised weight of the layer's shape, seeded from ``generator`` so that runs are reproducible
    and the global RNG is not consumed."""
    fresh = torch.empty_like(layer.weight)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(2**31 - 1, (1,), generator=generator)))
        initialiser(layer, fresh)
    return fresh


def _reset_adam_entries(optimizer: torch.optim.Optimizer, param: Tensor, index: tuple) -> None:
    """Zero the first and second Adam moments of ``param[index]``; the step count is :class:`ReDo`'s ``adam_step``
    choice (left alone by default, as in dopamine's ReDo code). Keeping it is not neutral: with the count far past
    1/(1 − β₂) the bias corrections are ≈ 1, so a reset entry under a steady gradient moves by (1 − β₁ᵏ)/√(1 − β₂ᵏ) × lr
    at its k-th step — 3.2× at k = 1, 6.5× at k = 10, 3.2× at k = 100 — where fresh Adam moves by 1× lr."""
    state = optimizer.state.get(param)
    if not state:
        return
    for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
        if key in state:
            state[key][index] = 0.0


def _restart_adam_step(optimizer: torch.optim.Optimizer, param: Tensor, index: tuple) -> None:
    """Restart Adam's step count of ``param[index]`` at 0: per entry in ``FlatAdam``; a torch optimiser's count belongs
    to the whole tensor, which it restarts (callers pass ``...`` there)."""
    if isinstance(optimizer, FlatAdam):
        optimizer.reset_step(param, index)
        return
    state = optimizer.state.get(param)
    if state:
        state["step"].zero_()


def _check_optimizer_holds(optimizer: torch.optim.Optimizer, params: list[Tensor]) -> None:
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    if any(id(p) not in held for p in params):
        raise ValueError(
            "the optimiser does not hold the network's current parameters (was it built before the modules were "
            "replaced?); refusing to intervene"
        )


@dataclass
class Intervention:
    """Base class, and the ``none`` intervention: does nothing. Its dataclass fields (here ``every``; a subclass adds
    its own) are the intervention's parameters; state it gathers while training lives in fields with ``init=False``,
    which are neither parameters nor compared."""

    name: ClassVar[str] = "none"
    every: int = 0
    """Updates between two acts of :meth:`on_schedule` (>= 1 for an intervention that implements it; 0 for the
    others, which act in every optimiser step or not at all). An act reads a probe of the current rollout, taken
    before the update's first optimiser step."""

    def __post_init__(self) -> None:
        if self.every < 0:
            raise ValueError(f"{type(self).__name__}.every must be >= 0, got {self.every}")

    @classmethod
    def scheduled(cls) -> bool:
        """Whether the intervention acts every ``every`` updates (it implements :meth:`on_schedule`)."""
        return cls.on_schedule is not Intervention.on_schedule

    def params(self) -> dict[str, Any]:
        """The parameters, ``{field: value}``."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}

    def to_dict(self) -> dict[str, Any]:
        """``{"name": ..., **parameters}``: how a run config stores the intervention
        (:func:`intervention_from_dict`)."""
        return {"name": self.name, **self.params()}

    def errors(self) -> list[str]:
        """What makes this intervention unusable in a training loop (the parameter checks run at construction)."""
        if self.scheduled() and self.every < 1:
            return [f"intervention {self.name!r} acts on a schedule: it needs every >= 1, got {self.every}"]
        if not self.scheduled() and self.every != 0:
            return [f"intervention {self.name!r} has no schedule: every has no effect, leave it 0 (got {self.every})"]
        return []

    def optimiser_weight_decay(self, weight_decay: float) -> float:
        """The weight decay the optimiser gets while this intervention runs (the run config's, unless the intervention
        replaces it)."""
        return weight_decay

    def due(self, update: int) -> bool:
        return self.every > 0 and update > 0 and update % self.every == 0

    def bind(self, networks: Mapping[str, nn.Sequential]) -> None:
        """Called once before training with the networks it will act on (stores what it needs, e.g. θ₀)."""

    def penalty(self, networks: Mapping[str, nn.Sequential]) -> Optional[Tensor]:
        """The loss term the intervention adds to the training loss, over ``networks`` (a subset of the bound ones
        is fine), with no side effect; ``None`` when it adds none. The probe adds it to the objective it measures."""
        return None

    def regulariser(self, networks: Mapping[str, nn.Sequential]) -> Optional[Tensor]:
        """The term added to every minibatch loss: :meth:`penalty`, which an intervention may record for
        :meth:`update_log`."""
        return self.penalty(networks)

    def after_step(self, networks: Mapping[str, nn.Sequential]) -> None:
        """Called after every optimiser step."""

    def on_schedule(
        self,
        networks: Mapping[str, nn.Sequential],
        optimizer: torch.optim.Optimizer,
        probes: Mapping[str, ProbeResult],
        generator: torch.Generator,
    ) -> dict[str, float]:
        """Act on the networks; returns counts to log (e.g. ``{"actor/units_reset": 3}``)."""
        return {}

    @property
    def needs_probe(self) -> bool:
        """Whether :meth:`on_schedule` reads the probe results (a loop may skip probing otherwise)."""
        return False

    def update_log(self) -> dict[str, float]:
        """What the per-step hooks did since the last call (a loop calls it once per update and logs it), keyed
        ``network/quantity``; empty for interventions without per-step hooks."""
        return {}

    def state_dict(self) -> dict[str, object]:
        """What :meth:`bind` stored (checkpointed by a training loop, so a resumed run keeps θ₀ and the bounds)."""
        return {}

    def load_state_dict(self, state: Mapping[str, object]) -> None:
        if state:
            raise ValueError(f"{type(self).__name__} has no state, got keys {sorted(state)}")


@dataclass
class ReDo(Intervention):
    """Recycle τ-dormant units of every hidden layer (Sokar et al. 2023).

    For each selected unit i of hidden layer l: row i of W_l is drawn afresh from the layer's own initialiser
    (:func:`layer_initialiser`) and b_l[i] is set to 0, column i of W_{l+1} is zeroed (so the network's function is
    unchanged at the moment of the reset), and the Adam moments of exactly those entries are zeroed.

    ``adam_step`` says what happens to Adam's step count:

    * ``"keep"`` (default): untouched, as in dopamine's ReDo code (the authors'); the reset entries' first updates are
      then several times lr (see :func:`_reset_adam_entries`);
    * ``"reset_tensors"``: as timoklein/redo, every act restarts the count of whole tensors — each hidden layer's
      weight and bias and the next layer's weight, whether or not a unit of that layer was recycled. The entries of
      those tensors that were not reset keep their moments, so their next updates shrink to √(1 − β₂ᵏ)/(1 − β₁ᵏ) of
      their size (0.32× at k = 1 for the default betas);
    * ``"reset_entries"``: restarts the count of exactly the entries whose moments were zeroed, so they are
      bias-corrected like a fresh Adam's (needs ``ocp.flat_adam.FlatAdam``, which keeps a count per entry).
    """

    name: ClassVar[str] = "redo"
    tau: float = 0.025
    """Threshold τ: a unit is recycled when its dormancy score (``gradient_redo``: normalised MAGI) is ≤ τ."""
    adam_step: AdamStep = "keep"
    """Adam's step count at an act: ``keep``, ``reset_tensors`` or ``reset_entries`` (see the class docstring)."""
    initialiser: ClassVar[Initialiser] = staticmethod(layer_initialiser)

    #: The name under which :meth:`on_schedule` logs how many units it acted on.
    log_quantity = "units_reset"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.adam_step not in ADAM_STEP_CHOICES:
            raise ValueError(
                f"{type(self).__name__}.adam_step must be one of {ADAM_STEP_CHOICES}, got {self.adam_step!r}"
            )

    def select(self, result: ProbeResult, layer: str) -> Tensor:
        return result.layer(layer).dormant_mask(self.tau)

    @property
    def needs_probe(self) -> bool:
        return True

    def on_schedule(self, networks, optimizer, probes, generator):
        if self.adam_step == "reset_entries" and not isinstance(optimizer, FlatAdam):
            raise ValueError(
                f"{type(optimizer).__name__} keeps one step count per tensor: restarting it for some "
                "entries (adam_step='reset_entries') needs ocp.flat_adam.FlatAdam"
            )
        log = {}
        for net_name, net in networks.items():
            _check_optimizer_holds(optimizer, list(net.parameters()))
            linears = _linears(net)
            pairs = [
                (layer, nxt, self.select(probes[net_name], name))
                for (name, layer), (_, nxt) in zip(linears, linears[1:])
            ]
            for layer, _, mask in pairs:
                self._renew_incoming(layer, mask, optimizer, generator)
            # Outgoing weights last, so every recycled unit ends with all-zero outgoing weights even when the next
            # layer's recycled rows were redrawn above.
            for _, nxt, mask in pairs:
                self._handle_outgoing(nxt, mask, optimizer)
            self._restart_steps(pairs, optimizer)
            log[f"{net_name}/{self.log_quantity}"] = float(sum(int(mask.sum()) for _, _, mask in pairs))
        return log

    def _restart_steps(self, pairs: list[tuple[nn.Linear, nn.Linear, Tensor]], optimizer) -> None:
        if self.adam_step == "keep":
            return
        for layer, nxt, mask in pairs:
            if self.adam_step == "reset_tensors":
                targets = [(layer.weight, ...), (layer.bias, ...), (nxt.weight, ...)]
            else:
                rows = mask.nonzero().squeeze(1)
                if rows.numel() == 0:
                    continue
                targets = [(layer.weight, (rows,)), (layer.bias, (rows,)), (nxt.weight, (slice(None), rows))]
            for param, index in targets:
                if param is not None:
                    _restart_adam_step(optimizer, param, index)

    def _fresh_rows(self, layer: nn.Linear, rows: Tensor, generator: torch.Generator) -> Tensor:
        return _fresh_weight(layer, self.initialiser, generator)[rows]

    def _renew_incoming(self, layer: nn.Linear, mask: Tensor, optimizer, generator) -> None:
        rows = mask.nonzero().squeeze(1)
        if rows.numel() == 0:
            return
        with torch.no_grad():
            layer.weight[rows] = self._fresh_rows(layer, rows, generator)
            if layer.bias is not None:
                layer.bias[rows] = 0.0
        _reset_adam_entries(optimizer, layer.weight, (rows,))
        if layer.bias is not None:
            _reset_adam_entries(optimizer, layer.bias, (rows,))

    def _handle_outgoing(self, nxt: nn.Linear, mask: Tensor, optimizer) -> None:
        rows = mask.nonzero().squeeze(1)
        if rows.numel() == 0:
            return
        with torch.no_grad():
            nxt.weight[:, rows] = 0.0
        _reset_adam_entries(optimizer, nxt.weight, (slice(None), rows))


@dataclass
class GradientReDo(ReDo):
    """ReDo on zero-gradient units (zero-gradient index ≤ τ) instead of dormant ones, or — with
    ``mode="perturb"`` — a perturbation of their incoming weights by ``noise_scale`` times fresh initial weights
    (the paper's claim that perturbing trapped neurons does not hurt). Perturbation keeps the outgoing weights."""

    name: ClassVar[str] = "gradient_redo"
    mode: GradientReDoMode = "reset"
    """``reset`` as ReDo, or ``perturb``: add noise to the incoming weights and keep the rest."""
    noise_scale: float = 0.1
    """``perturb``: the noise is this times a fresh initialisation."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mode not in GRADIENT_REDO_MODES:
            raise ValueError(f"GradientReDo.mode must be 'reset' or 'perturb', got {self.mode!r}")
        if not (self.noise_scale > 0 and math.isfinite(self.noise_scale)):
            raise ValueError(f"GradientReDo.noise_scale must be > 0, got {self.noise_scale}")
        if self.mode == "perturb" and self.adam_step != "keep":
            raise ValueError(
                f"GradientReDo.adam_step={self.adam_step!r} needs mode='reset': perturbation leaves Adam's state alone"
            )

    def select(self, result: ProbeResult, layer: str) -> Tensor:
        return result.layer(layer).zero_gradient_mask(self.tau)

    @property
    def log_quantity(self) -> str:  # type: ignore[override]
        return "units_reset" if self.mode == "reset" else "units_perturbed"

    def _renew_incoming(self, layer, mask, optimizer, generator) -> None:
        if self.mode == "reset":
            return super()._renew_incoming(layer, mask, optimizer, generator)
        rows = mask.nonzero().squeeze(1)
        if rows.numel() == 0:
            return
        with torch.no_grad():
            layer.weight[rows] += self.noise_scale * self._fresh_rows(layer, rows, generator)

    def _handle_outgoing(self, nxt, mask, optimizer) -> None:
        if self.mode == "reset":
            super()._handle_outgoing(nxt, mask, optimizer)


@dataclass
class ShrinkPerturb(Intervention):
    """θ ← λ·θ + p·θ_fresh for every weight and bias, θ_fresh a fresh draw of each layer's own initialisation each time
    (Ash & Adams 2020; :func:`layer_initialiser`); biases of θ_fresh are zero, as in the agent's initialisation. Adam
    moments are kept."""

    name: ClassVar[str] = "shrink_perturb"
    shrink: float = 0.8
    """λ in θ ← λθ + p·θ_fresh."""
    perturb: float = 0.1
    """p in θ ← λθ + p·θ_fresh."""
    initialiser: ClassVar[Initialiser] = staticmethod(layer_initialiser)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.shrink <= 1 or self.perturb < 0:
            raise ValueError(f"ShrinkPerturb needs 0 < shrink <= 1 and perturb >= 0, got {self.shrink}, {self.perturb}")

    def on_schedule(self, networks, optimizer, probes, generator):
        for net in networks.values():
            _check_optimizer_holds(optimizer, list(net.parameters()))
            for _, layer in _linears(net):
                fresh = _fresh_weight(layer, self.initialiser, generator)
                with torch.no_grad():
                    layer.weight.mul_(self.shrink).add_(self.perturb * fresh)
                    if layer.bias is not None:
                        layer.bias.mul_(self.shrink)
        return {f"{n}/shrink_perturb": 1.0 for n in networks}


@dataclass
class L2Init(Intervention):
    """Regenerative regularisation: ``coef · Σ ‖θ − θ₀‖²`` over every weight and bias (Kumar et al. 2023)."""

    name: ClassVar[str] = "l2_init"
    coef: float = 1e-3
    """Coefficient of Σ‖θ − θ₀‖²."""
    keep_weight_decay: bool = True
    """Keep the optimiser's weight decay on beside the penalty, so both pull at once, toward 0 and toward θ₀ (the
    ``paper`` preset's 1e-4 Adam L2 with L2-init; how the task-switch grids have run). False turns the optimiser's
    weight decay off, so the penalty toward θ₀ is the only regulariser."""
    _initial: dict[str, list[Tensor]] = field(default_factory=dict, init=False, repr=False, compare=False)
    _terms: list[float] = field(default_factory=list, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (self.coef > 0 and math.isfinite(self.coef)):
            raise ValueError(f"L2Init.coef must be > 0, got {self.coef}")

    def optimiser_weight_decay(self, weight_decay: float) -> float:
        return weight_decay if self.keep_weight_decay else 0.0

    def bind(self, networks):
        self._initial = {n: [p.detach().clone() for p in net.parameters()] for n, net in networks.items()}

    def penalty(self, networks):
        if not self._initial:
            raise ValueError("L2Init.bind(networks) must be called before training to store θ₀")
        terms = [
            (p - p0).square().sum() for n, net in networks.items() for p, p0 in zip(net.parameters(), self._initial[n])
        ]
        return self.coef * torch.stack(terms).sum()

    def regulariser(self, networks):
        value = self.penalty(networks)
        self._terms.append(float(value.detach()))
        return value

    def update_log(self):
        """The mean regulariser value over the calls since the last log (``all/regulariser_mean``)."""
        if not self._terms:
            return {}
        out = {"all/regulariser_mean": sum(self._terms) / len(self._terms)}
        self._terms = []
        return out

    def state_dict(self):
        return {"initial": {n: [p.clone() for p in ps] for n, ps in self._initial.items()}}

    def load_state_dict(self, state):
        self._initial = {n: [p.clone() for p in ps] for n, ps in state["initial"].items()}


@dataclass
class WeightClipping(Intervention):
    """After every optimiser step clip each weight and bias of layer l to ``[-κ·s_l, κ·s_l]`` (Elsayed et al. 2024).

    s_l = 1/√fan_in_l, the bound of PyTorch's default uniform initialisation of the layer, which the authors' PPO code
    uses for every layer, weights and biases alike, whatever the layer's actual initialisation. An earlier version took
    s_l from each layer's initial weights (√3·std): with the PPO actor's output layer initialised at gain 0.01 that
    bound was 0.0043 at κ = 2, which capped the mean action at 64 × 0.0043 ≈ 0.28.
    """

    name: ClassVar[str] = "weight_clipping"
    kappa: float = 2.0
    """κ of the bound κ/√fan_in of each layer's weights and biases."""
    _bounds: dict[str, list[float]] = field(default_factory=dict, init=False, repr=False, compare=False)
    _clipped: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (self.kappa > 0 and math.isfinite(self.kappa)):
            raise ValueError(f"WeightClipping.kappa must be > 0, got {self.kappa}")

    def bind(self, networks):
        self._bounds = {
            n: [self.kappa / math.sqrt(layer.in_features) for _, layer in _linears(net)] for n, net in networks.items()
        }

    def after_step(self, networks):
        if not self._bounds:
            raise ValueError("WeightClipping.bind(networks) must be called before training")
        with torch.no_grad():
            for n, net in networks.items():
                for (_, layer), bound in zip(_linears(net), self._bounds[n]):
                    for p in (layer.weight, layer.bias) if layer.bias is not None else (layer.weight,):
                        self._clipped[n] = self._clipped.get(n, 0) + int((p.abs() > bound).sum())
                        p.clamp_(-bound, bound)

    def update_log(self):
        """Weight and bias entries clipped per network since the last log (``<network>/weights_clipped``)."""
        out = {f"{n}/weights_clipped": float(c) for n, c in self._clipped.items()}
        self._clipped = {}
        return out

    def state_dict(self):
        return {"bounds": {n: list(b) for n, b in self._bounds.items()}}

    def load_state_dict(self, state):
        self._bounds = {n: list(b) for n, b in state["bounds"].items()}


#: Every intervention by name: adding one is its class and a line here.
INTERVENTIONS: dict[str, type[Intervention]] = {
    cls.name: cls for cls in (Intervention, ReDo, GradientReDo, ShrinkPerturb, L2Init, WeightClipping)
}


def make_intervention(name: str, **params: Any) -> Intervention:
    """Build an intervention by name with its parameters, e.g. ``make_intervention("redo", every=10, tau=0.0)``."""
    if name not in INTERVENTIONS:
        raise ValueError(f"unknown intervention {name!r}; choose from {sorted(INTERVENTIONS)}")
    cls = INTERVENTIONS[name]
    allowed = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ValueError(f"bad parameters for intervention {name!r}: {unknown}; it takes {sorted(allowed)}")
    return cls(**params)


def intervention_from_dict(stored: Mapping[str, Any]) -> Intervention:
    """The intervention a run config stored with :meth:`Intervention.to_dict`."""
    params = dict(stored)
    name = params.pop("name", None)
    if name is None:
        raise ValueError(f"a stored intervention needs a 'name' entry, got keys {sorted(stored)}")
    return make_intervention(name, **params)
