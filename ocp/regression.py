"""Training one regressor: Adam on the MSE over shuffled minibatches, with the train and test MSE and the test-set
correlation of output and target per epoch, and the plasticity probe (:mod:`ocp.probe`, MSE objective on the training
set) at intervals: dormant and zero-gradient ratios per layer, and the share of the units flagged at the start that are
still flagged. The transfer experiment (:mod:`ocp.transfer`) trains every regressor with :func:`train_regressor`."""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ocp import metrics
from ocp.probe import DEFAULT_THRESHOLDS, PlasticityProbe
from ocp.regression_tasks import RegressionData


def _fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """MSE and the Pearson correlation of output and target (NaN when either is constant)."""
    with torch.no_grad():
        out = model(x).squeeze(-1)
        mse = float(F.mse_loss(out, y))
        o, t = out.double() - out.double().mean(), y.double() - y.double().mean()
        norm = float(torch.sqrt((o * o).sum() * (t * t).sum()))
        return mse, float((o * t).sum()) / norm if norm > 0 else math.nan


def train_regressor(
    model: nn.Module,
    data: RegressionData,
    lr: float,
    epochs: int,
    batch_size: int,
    seed: int,
    probe_every: int = 0,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Adam on the MSE, ``epochs`` passes of shuffled minibatches (``batch_size >= n_train``: full batch).

    Returns curve rows ``{epoch, train_mse, test_mse, output_target_corr}`` (the last on the test set) for epochs 0
    (before training) … ``epochs``, and probe rows
    for epochs 0, ``probe_every``, 2·``probe_every``, …, and the last (none if ``probe_every`` is 0). Probe rows hold
    per layer and threshold the dormant and zero-gradient ratios, and the share of the units flagged at epoch 0 that
    are still flagged (``still_*``: 1 means none woke up; NaN when none was flagged at epoch 0).
    """
    if lr <= 0 or epochs < 0 or batch_size < 1:
        raise ValueError(f"need lr > 0, epochs >= 0 and batch_size >= 1, got {lr}, {epochs}, {batch_size}")
    x, y, n = data.x_train, data.y_train, data.x_train.shape[0]
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    order = torch.Generator().manual_seed(seed)
    probe = PlasticityProbe(model, thresholds=thresholds) if probe_every > 0 else None
    start_masks: dict[tuple[str, float], tuple[torch.Tensor, torch.Tensor]] = {}

    def objective(out: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(out.squeeze(-1), y)

    curves, probes = [], []
    for epoch in range(epochs + 1):
        if epoch > 0:
            model.train()
            for idx in torch.randperm(n, generator=order).split(batch_size):
                loss = F.mse_loss(model(x[idx]).squeeze(-1), y[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            model.eval()
        test_mse, test_corr = _fit(model, data.x_test, data.y_test)
        curves.append(
            {"epoch": epoch, "train_mse": _fit(model, x, y)[0], "test_mse": test_mse, "output_target_corr": test_corr}
        )
        if probe is not None and (epoch % probe_every == 0 or epoch == epochs):
            probes += _probe_rows(probe.measure(x, objective), epoch, start_masks)
    return curves, probes


def _probe_rows(result: Any, epoch: int, start_masks: dict) -> list[dict[str, Any]]:
    rows = []
    for r in result.layers:
        for tau in result.thresholds:
            dormant, zero_grad = r.dormant_mask(tau), r.zero_gradient_mask(tau)
            first = start_masks.setdefault((r.name, tau), (dormant, zero_grad))
            rows.append(
                {
                    "epoch": epoch,
                    "layer": r.name,
                    "layer_kind": r.kind,
                    "width": r.width,
                    "tau": tau,
                    "dormant_ratio": r.dormant_ratio(tau),
                    "zero_gradient_ratio": r.zero_gradient_ratio(tau),
                    "still_dormant": metrics.persistence(first[0], dormant),
                    "still_zero_gradient": metrics.persistence(first[1], zero_grad),
                }
            )
    for tau in result.thresholds:
        rows.append(
            {
                "epoch": epoch,
                "layer": "network",
                "layer_kind": "hidden_total",
                "width": sum(r.width for r in result.hidden),
                "tau": tau,
                "dormant_ratio": result.dormant_ratio(tau),
                "zero_gradient_ratio": result.zero_gradient_ratio(tau),
                "still_dormant": math.nan,
                "still_zero_gradient": math.nan,
            }
        )
    return rows
