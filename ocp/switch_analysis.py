"""Measurements around the task switches of a scenario (:mod:`ocp.scenarios`), written by the training loop
(``ocp.ppo.train``) into the run directory:

* ``switches.csv`` (:data:`SWITCH_COLUMNS`, :class:`SwitchMonitor`) — dormant and zero-gradient ratios at the last
  update before and the first update after each switch, and how many units entered and left each set across it;
* ``recovery.csv`` (:data:`RECOVERY_COLUMNS`, :func:`recovery_rows`) — the return recovery time after each switch.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np
import torch

from ocp.probe import ProbeResult
from ocp.scenarios import Scenario

__all__ = ["SWITCH_COLUMNS", "SwitchMonitor", "RECOVERY_COLUMNS", "recovery_rows"]

SWITCH_COLUMNS = [
    "switch",
    "switch_step",
    "from_task",
    "to_task",
    "update_before",
    "update_after",
    "network",
    "layer",
    "unit_set",
    "tau",
    "width",
    "before_ratio",
    "after_ratio",
    "entering",
    "leaving",
]
KINDS = ("dormant", "zero_gradient")


class SwitchMonitor:
    """Probes at the last update before and the first update after each switch, and compares the two.

    With updates of ``batch_size`` steps, update ``u`` collects steps ``(u−1)·B+1 … u·B``; a switch at step ``s``
    (a multiple of B) lies between update ``s/B`` (last before) and ``s/B + 1`` (first after). For every network,
    hidden layer, kind (dormant, zero-gradient) and threshold τ it writes one row: the ratio of the set before and
    after, and ``entering`` = |after \\ before| and ``leaving`` = |before \\ after| units. The ``network`` layer row
    sums over the hidden layers. The masks of the last probe before a switch are state (see :meth:`state_dict`).
    """

    def __init__(self, scenario: Scenario, batch_size: int, total_steps: int, thresholds: Sequence[float]):
        self.scenario, self.batch_size, self.thresholds = scenario, batch_size, tuple(thresholds)
        self.switch_updates = {s // batch_size: s for s in scenario.switch_steps(total_steps)}
        self.pending: Optional[dict[str, Any]] = None

    def before(self, update: int) -> bool:
        return update in self.switch_updates

    def after(self, update: int) -> bool:
        return update - 1 in self.switch_updates

    def due(self, update: int) -> bool:
        return self.before(update) or self.after(update)

    def _masks(self, results: Mapping[str, ProbeResult]) -> dict[tuple[str, str, str, float], torch.Tensor]:
        return {
            (net, r.name, kind, tau): (r.dormant_mask(tau) if kind == "dormant" else r.zero_gradient_mask(tau))
            .detach()
            .cpu()
            for net, res in results.items()
            for r in res.hidden
            for kind in KINDS
            for tau in self.thresholds
        }

    def observe(self, update: int, results: Mapping[str, ProbeResult]) -> list[dict[str, Any]]:
        """Feed the probe of an update for which :meth:`due` is true; returns the rows of a switch that just
        completed (empty after a last-before probe)."""
        rows: list[dict[str, Any]] = []
        if self.after(update):
            if self.pending is None or self.pending["update"] != update - 1:
                raise ValueError(f"switch monitor: no probe of update {update - 1}, the last update before the switch")
            rows = self._compare(self.pending, update, self._masks(results))
            self.pending = None
        if self.before(update):
            self.pending = {"update": update, "masks": self._masks(results)}
        return rows

    def _compare(self, pending: dict[str, Any], update: int, after: dict) -> list[dict[str, Any]]:
        before = pending["masks"]
        step = self.switch_updates[pending["update"]]
        head = dict(
            switch=step // self.scenario.period,
            switch_step=step,
            from_task=self.scenario.task_at(step - 1),
            to_task=self.scenario.task_at(step),
            update_before=pending["update"],
            update_after=update,
        )
        rows, totals = [], {}
        for key, b in before.items():
            net, layer, kind, tau = key
            a = after[key]
            counts = (b.numel(), int(b.sum()), int(a.sum()), int((a & ~b).sum()), int((b & ~a).sum()))
            rows.append(self._row(head, net, layer, kind, tau, *counts))
            agg = totals.setdefault((net, kind, tau), [0, 0, 0, 0, 0])
            for i, c in enumerate(counts):
                agg[i] += c
        rows += [self._row(head, net, "network", kind, tau, *c) for (net, kind, tau), c in totals.items()]
        return rows

    @staticmethod
    def _row(
        head: dict,
        net: str,
        layer: str,
        kind: str,
        tau: float,
        width: int,
        n_before: int,
        n_after: int,
        entering: int,
        leaving: int,
    ) -> dict[str, Any]:
        return dict(
            head,
            network=net,
            layer=layer,
            unit_set=kind,
            tau=tau,
            width=width,
            before_ratio=n_before / width,
            after_ratio=n_after / width,
            entering=entering,
            leaving=leaving,
        )

    def state_dict(self) -> Optional[dict[str, Any]]:
        return self.pending

    def load_state_dict(self, state: Optional[dict[str, Any]]) -> None:
        self.pending = state


RECOVERY_COLUMNS = [
    "switch",
    "switch_step",
    "from_task",
    "to_task",
    "pre_level",
    "return_level",
    "recovery_fraction",
    "recovered",
    "recovery_updates",
    "recovery_steps",
    "post_episodes",
    "post_level",
]


def recovery_rows(
    episodes: Iterable[Mapping[str, Any]],
    scenario: Scenario,
    total_steps: int,
    batch_size: int,
    num_envs: int,
    window: int,
    fraction: float,
) -> list[dict[str, Any]]:
    """Return recovery after each switch, from the finished episodes of a run (``global_step`` at the episode's end,
    ``episodic_return``, ``episodic_length``, in the order they finished).

    * pre-switch level L: the mean return of the last ``window`` episodes run entirely in the task before the switch
      (started at or after the previous switch, finished at or before this one): an episode spanning the previous
      switch belongs to neither task;
    * recovery threshold: ``L − (1 − fraction)·|L|`` ("``fraction`` of L", also for a negative L);
    * post-switch episodes: those run entirely after the switch (start step ``global_step − length·num_envs`` ≥ the
      switch step) and finished by the next switch (or the end of the run);
    * recovery time: the first update j = 1, 2, … after the switch at whose end the mean of the last ``window``
      post-switch episodes (fewer while fewer have finished) reaches the threshold; ``recovered`` is 0 and the time
      NaN when it never does before the next switch;
    * ``post_level``: the mean of the last ``window`` post-switch episodes before the next switch.
    """
    eps = [(int(e["global_step"]), int(e["episodic_length"]), float(e["episodic_return"])) for e in episodes]
    steps = scenario.switch_steps(total_steps)
    rows = []
    for k, s in enumerate(steps, start=1):
        end = steps[k] if k < len(steps) else total_steps
        start = steps[k - 2] if k >= 2 else 0
        pre = [r for g, n, r in eps if g - n * num_envs >= start and g <= s][-window:]
        level = float(np.mean(pre)) if pre else math.nan
        threshold = level - (1.0 - fraction) * abs(level)
        post = [(g, r) for g, n, r in eps if g - n * num_envs >= s and g <= end]
        found = math.nan
        for j in range(1, (end - s) // batch_size + 1):
            recent = [r for g, r in post if g <= s + j * batch_size][-window:]
            if recent and not math.isnan(level) and float(np.mean(recent)) >= threshold:
                found = j
                break
        tail = [r for _, r in post][-window:]
        rows.append(
            dict(
                switch=k,
                switch_step=s,
                from_task=scenario.task_at(s - 1),
                to_task=scenario.task_at(s),
                pre_level=level,
                return_level=threshold,
                recovery_fraction=fraction,
                recovered=int(not math.isnan(found)),
                recovery_updates=found,
                recovery_steps=found * batch_size if not math.isnan(found) else math.nan,
                post_episodes=len(post),
                post_level=float(np.mean(tail)) if tail else math.nan,
            )
        )
    return rows
