"""Throughput of the metric kernels on (N, d) matrices up to 8192 x 1024."""

import pytest
import torch

from ocp import metrics

SHAPES = [(2048, 64), (8192, 256), (8192, 1024)]


@pytest.mark.parametrize("shape", SHAPES, ids=[f"{n}x{d}" for n, d in SHAPES])
@pytest.mark.parametrize(
    "kernel",
    ["dormancy_scores", "magi", "activation_gradient_scores", "overlap_coefficient", "ranks"],
)
def test_metric_kernel(timed, device, shape, kernel):
    g = torch.Generator().manual_seed(0)
    x = torch.relu(torch.randn(shape, generator=g)).to(device)
    masks = (torch.rand(shape[1], generator=g) < 0.3).to(device), (torch.rand(shape[1], generator=g) < 0.3).to(device)
    fns = {
        "dormancy_scores": lambda: metrics.dormancy_scores(x),
        "magi": lambda: metrics.magi(x.T),
        "activation_gradient_scores": lambda: metrics.activation_gradient_scores(x),
        "overlap_coefficient": lambda: metrics.overlap_coefficient(*masks),
        "ranks": lambda: metrics.ranks(x),
    }
    fn = fns[kernel]

    def run():
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return out

    rounds = 3 if kernel == "ranks" and shape[1] >= 1024 else None
    timed(f"kernel/{kernel}/{shape[0]}x{shape[1]}/{device.type}", "kernel", run, rounds=rounds)
