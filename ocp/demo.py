"""A one-minute demonstration of the probe: train a small ReLU regressor with a learning rate high enough to kill
units, and print the probe's report before and after training.

Run: ``python -m ocp.demo`` (options: ``--steps``, ``--lr``, ``--seed``).
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from ocp.probe import PlasticityProbe


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300, help="Adam steps (default: 300)")
    parser.add_argument(
        "--lr", type=float, default=0.05, help="learning rate; large values kill ReLU units (default: 0.05)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    args = parser.parse_args(argv)
    if args.steps < 0 or args.lr <= 0:
        parser.error("--steps must be >= 0 and --lr > 0")

    torch.manual_seed(args.seed)
    x = torch.randn(512, 17)
    y = (x[:, :1] * 2.5 - 1.2 * x[:, 1:2] ** 2 + torch.sin(x[:, 2:3])).detach()
    net = nn.Sequential(nn.Linear(17, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
    probe = PlasticityProbe(net)
    probe.snapshot_reference()

    def loss(out: torch.Tensor) -> torch.Tensor:
        return ((out - y) ** 2).mean()

    print("== before training ==")
    print(probe.measure(x, loss).format())
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    for _ in range(args.steps):
        opt.zero_grad()
        loss(net(x)).backward()
        opt.step()
    result = probe.measure(x, loss)
    print(f"\n== after {args.steps} Adam steps at lr {args.lr} (MSE {loss(net(x)).item():.4f}) ==")
    print(result.format())
    last = result.hidden[-1]
    print(f"\nlayer {last.name}: ranks {last.ranks()}, distance from init {last.weight_stats['weight_distance']:.3f}")


if __name__ == "__main__":
    main()
