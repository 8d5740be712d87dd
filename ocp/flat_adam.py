"""Adam and AdamW over parameters gathered into one contiguous float32 buffer.

``torch.optim.Adam(fused=True)`` takes about 140 µs per step on one CPU core for the PPO agent's 14 small tensors,
and ``clip_grad_norm_`` another 170 µs: per-tensor dispatch, not arithmetic. Here the parameters are moved into one
flat buffer (each ``nn.Parameter`` keeps its identity and becomes a view of it), the gradient lives in a second flat
buffer, and a step is a dozen numpy operations over 11k numbers (about 30 µs).

The maths is ``torch.optim.Adam`` (``decoupled=False``: the L2 term ``weight_decay·θ`` is added to the gradient) or
``torch.optim.AdamW`` (``decoupled=True``: θ ← θ·(1 − lr·weight_decay) first), with torch's bias correction:
m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g², θ ← θ − lr/(1−β₁ᵗ) · m / (√v/√(1−β₂ᵗ) + ε). ``tests/test_flat_adam.py``
compares it with torch's optimisers step by step.

It looks like a torch optimiser where the rest of the project reads one: ``param_groups[0]["lr"]`` sets the learning
rate, and ``state[p]`` holds ``exp_avg`` / ``exp_avg_sq`` *views* of the moments of parameter ``p`` and the shared
``step``, so an intervention that zeroes the moments of some entries (``ocp.interventions``) edits the real ones.

One step count serves every entry, as long as nothing restarts one. :meth:`FlatAdam.reset_step` restarts the count of
chosen entries (a ReDo variant treats recycled weights as new to Adam): from its first call the optimiser keeps a count
per entry, and each entry is bias-corrected with its own t (β^t as exp(t·ln β), in float64 like the shared count's
factors). Until then a step does exactly what it did before, at no extra cost.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Optional

import numpy as np
import torch
from torch import nn


class FlatAdam:
    """Adam / AdamW on ``params``, whose storage it takes over (see the module docstring)."""

    def __init__(
        self,
        params: Iterable[nn.Parameter],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decoupled: bool = False,
    ):
        params = list(params)
        if not params:
            raise ValueError("FlatAdam got no parameters")
        if len({id(p) for p in params}) != len(params):
            raise ValueError("FlatAdam got the same parameter twice")
        for p in params:
            if p.dtype != torch.float32 or p.device.type != "cpu":
                raise ValueError(f"FlatAdam needs float32 CPU parameters, got {p.dtype} on {p.device}")
        if not (lr > 0 and eps > 0 and weight_decay >= 0 and all(0 <= b < 1 for b in betas)):
            raise ValueError(
                f"FlatAdam: need lr > 0, eps > 0, weight_decay >= 0, 0 <= betas < 1; got "
                f"lr={lr}, eps={eps}, weight_decay={weight_decay}, betas={betas}"
            )
        total = sum(p.numel() for p in params)
        self._flat = torch.empty(total, dtype=torch.float32)
        self._exp_avg = torch.zeros(total, dtype=torch.float32)
        self._exp_avg_sq = torch.zeros(total, dtype=torch.float32)
        self._step = torch.zeros((), dtype=torch.float64)  # exact count well past 2^24 steps
        self._entry_steps: Optional[torch.Tensor] = None  # per-entry counts, from the first reset_step on
        self.grad = np.zeros(total, dtype=np.float32)
        """The flat gradient the next :meth:`step` applies; :meth:`grad_view` gives each parameter's part."""
        self._scratch = np.empty(total, dtype=np.float32)
        self._slices: dict[int, tuple[int, int]] = {}
        self.state: dict[nn.Parameter, dict[str, torch.Tensor]] = {}
        offset = 0
        with torch.no_grad():
            for p in params:
                n = p.numel()
                view = self._flat[offset : offset + n].view_as(p)
                view.copy_(p)
                p.data = view  # the Parameter object stays the same; its storage is now part of the flat buffer
                self._slices[id(p)] = (offset, n)
                self.state[p] = {
                    "step": self._step,
                    "exp_avg": self._exp_avg[offset : offset + n].view_as(p),
                    "exp_avg_sq": self._exp_avg_sq[offset : offset + n].view_as(p),
                }
                offset += n
        self.params = params
        self.param_groups = [
            dict(params=params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, decoupled=decoupled)
        ]
        self._addresses = [p.data_ptr() for p in params]

    def grad_view(self, param: nn.Parameter) -> np.ndarray:
        """The part of :attr:`grad` that belongs to ``param``, shaped like it."""
        offset, n = self._slices[id(param)]
        return self.grad[offset : offset + n].reshape(param.shape)

    def check_aliasing(self) -> None:
        """Raise if a parameter was replaced by another tensor since construction (it would no longer be trained)."""
        if [p.data_ptr() for p in self.params] != self._addresses:
            raise RuntimeError(
                "a parameter held by FlatAdam was replaced by a new tensor (assigning param.data); "
                "edit parameters in place so the optimiser keeps training them"
            )

    def clip_grad_norm_(self, max_norm: float) -> float:
        """Scale :attr:`grad` so its global L2 norm is at most ``max_norm`` (``torch.nn.utils.clip_grad_norm_``:
        factor max_norm / (norm + 1e-6) when below 1); returns the norm before clipping."""
        norm = math.sqrt(float(np.dot(self.grad, self.grad)))
        factor = max_norm / (norm + 1e-6)
        if factor < 1.0:
            self.grad *= np.float32(factor)
        return norm

    def reset_step(self, param: nn.Parameter, index: Any = ...) -> None:
        """Restart Adam's step count at 0 for the entries ``param[index]`` (all of ``param`` by default): their next
        step is bias-corrected as a first one, while the other entries keep their count. Moments are not touched."""
        if id(param) not in self._slices:
            raise ValueError("reset_step: the parameter is not held by this FlatAdam")
        if self._entry_steps is None:
            self._start_entry_steps(float(self._step))
        offset, n = self._slices[id(param)]
        self._entry_steps[offset : offset + n].view(param.shape)[index] = 0.0

    def _start_entry_steps(self, count: float) -> None:
        total = self._flat.numel()
        self._entry_steps = torch.full((total,), count, dtype=torch.float64)
        self._entry_scratch = np.empty(total, dtype=np.float64)
        self._entry_c1 = np.empty(total, dtype=np.float32)
        self._entry_c2 = np.empty(total, dtype=np.float32)

    def _entry_corrections(self, lr: float, beta1: float, beta2: float) -> tuple[np.ndarray, np.ndarray]:
        """Advance the per-entry counts t and return lr/(1 − β₁ᵗ) and 1/√(1 − β₂ᵗ) per entry, as float32."""
        t, w = self._entry_steps.numpy(), self._entry_scratch
        t += 1.0
        for beta, out, root in ((beta1, self._entry_c1, False), (beta2, self._entry_c2, True)):
            np.multiply(t, math.log(beta) if beta > 0 else -math.inf, out=w)
            np.exp(w, out=w)
            np.subtract(1.0, w, out=w)
            if root:
                np.sqrt(w, out=w)
            np.divide(1.0 if root else lr, w, out=out, casting="same_kind")  # float64 quotient, rounded to float32
        return self._entry_c1, self._entry_c2

    @torch.no_grad()
    def step(self) -> None:
        """One Adam / AdamW step with :attr:`grad` (which it may modify)."""
        group = self.param_groups[0]
        lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        theta, m, v = self._flat.numpy(), self._exp_avg.numpy(), self._exp_avg_sq.numpy()
        g, tmp = self.grad, self._scratch
        if wd:
            if group["decoupled"]:
                theta *= np.float32(1.0 - lr * wd)
            else:
                np.multiply(theta, np.float32(wd), out=tmp)
                g += tmp
        self._step += 1
        t = float(self._step)
        if self._entry_steps is None:
            c1, c2 = np.float32(lr / (1.0 - beta1**t)), np.float32(1.0 / math.sqrt(1.0 - beta2**t))
        else:
            c1, c2 = self._entry_corrections(lr, beta1, beta2)
        m *= np.float32(beta1)
        np.multiply(g, np.float32(1.0 - beta1), out=tmp)
        m += tmp
        v *= np.float32(beta2)
        np.multiply(g, g, out=tmp)
        tmp *= np.float32(1.0 - beta2)
        v += tmp
        np.sqrt(v, out=tmp)
        tmp *= c2
        tmp += np.float32(eps)
        np.divide(m, tmp, out=tmp)
        tmp *= c1
        theta -= tmp

    def state_dict(self) -> dict[str, Any]:
        return {
            "kind": "flat_adam",
            "step": int(self._step),
            "exp_avg": self._exp_avg.clone(),
            "exp_avg_sq": self._exp_avg_sq.clone(),
            "entry_steps": None if self._entry_steps is None else self._entry_steps.clone(),
            "param_groups": [{k: v for k, v in g.items() if k != "params"} for g in self.param_groups],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore moments, step counts and hyper-parameters in place (the state views stay valid)."""
        if state.get("kind") != "flat_adam":
            raise ValueError(f"not a FlatAdam state (kind={state.get('kind')!r}); was it saved by torch.optim?")
        if state["exp_avg"].shape != self._exp_avg.shape:
            raise ValueError(
                f"FlatAdam state for {state['exp_avg'].numel()} numbers, this optimiser holds {self._exp_avg.numel()}"
            )
        self._exp_avg.copy_(state["exp_avg"])
        self._exp_avg_sq.copy_(state["exp_avg_sq"])
        self._step.fill_(state["step"])
        entry_steps = state.get("entry_steps")  # absent from states saved before per-entry counts existed
        if entry_steps is None:
            self._entry_steps = None
        else:
            if entry_steps.shape != self._exp_avg.shape:
                raise ValueError(
                    f"FlatAdam state has {entry_steps.numel()} per-entry step counts, this optimiser "
                    f"holds {self._exp_avg.numel()} numbers"
                )
            self._start_entry_steps(0.0)
            self._entry_steps.copy_(entry_steps)
        self.param_groups[0].update(state["param_groups"][0])
