"""Probe / plain, measured in interleaved blocks: ``python benchmarks/paired_probe.py [options]``.

On a noisy machine two benchmark runs of the same code can differ by more than the probe's cost. This script times
the plain forward + backward and the probe in alternating blocks in one process (12 blocks of 25 calls by default),
takes each block's median and prints the median of the block medians as probe / plain, so both see the same machine
state. It also prints the minor page faults per call of each (where the platform counts them): on a CPU a fresh
allocation that the C library has returned to the system faults again page by page, and the count tells which regime
a run was in. ``--keep-heap`` asks glibc to keep freed memory (``mallopt``: no trimming, no separate mapping for
large blocks), which takes page faults out of both timings: what remains is the arithmetic, the operators' dispatch
and the Python around them; two rounds differ by 0.01-0.13 (median 0.03) on the 2-core machine.

``--probe-from DIR`` times the probe of another source tree instead (e.g. ``git worktree add /tmp/old <commit>`` then
``--probe-from /tmp/old``): run it and the current tree as separate processes to compare two versions, each
against its own plain baseline. Pin with ``taskset -c 0`` and ``--threads 1`` for the steadiest numbers.
"""

import argparse
import importlib.machinery
import importlib.util
import math
import statistics
import sys
from pathlib import Path
from types import ModuleType

import torch

sys.path.insert(0, str(Path(__file__).parent))
from heap import keep_heap  # noqa: E402
from profile_probe import median_time  # noqa: E402
from test_probe_throughput import ACTIVATIONS, MODELS, setup  # noqa: E402


def probe_module(source: str | None) -> ModuleType:
    """``ocp.probe`` of this tree, or of the tree at ``source`` loaded under another package name."""
    if source is None:
        from ocp import probe

        return probe
    root = Path(source) / "ocp"
    if not (root / "probe.py").is_file():
        raise SystemExit(f"--probe-from {source}: no ocp/probe.py there")
    package = importlib.util.module_from_spec(importlib.machinery.ModuleSpec("ocp_other", None, is_package=True))
    package.__path__ = [str(root)]
    sys.modules["ocp_other"] = package
    modules = {}
    for name in ("metrics", "probe"):
        spec = importlib.util.spec_from_file_location(f"ocp_other.{name}", root / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        code = (root / f"{name}.py").read_text().replace("from ocp import metrics", "from ocp_other import metrics")
        exec(compile(code, str(spec.origin), "exec"), module.__dict__)
        setattr(package, name, module)
        modules[name] = module
    return modules["probe"]


def minor_faults() -> float:
    """Minor page faults of this process so far (NaN where the platform has no ``resource`` module)."""
    if importlib.util.find_spec("resource") is None:
        return math.nan
    import resource

    return float(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)


def block_medians(
    functions: dict, device: torch.device, blocks: int, calls: int
) -> tuple[dict[str, float], dict[str, float]]:
    """The median of the block medians of each function's time, and its minor page faults per call."""
    for fn in functions.values():
        for _ in range(5):
            fn()
    medians: dict[str, list[float]] = {name: [] for name in functions}
    faults = dict.fromkeys(functions, 0.0)
    for _ in range(blocks):
        for name, fn in functions.items():
            before = minor_faults()
            medians[name].append(median_time(fn, device, calls))
            faults[name] += minor_faults() - before
    times = {name: statistics.median(values) for name, values in medians.items()}
    return times, {name: total / (blocks * calls) for name, total in faults.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=[m for m in MODELS if not m.startswith("wide")])
    parser.add_argument("--activations", nargs="*", default=list(ACTIVATIONS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--blocks", type=int, default=12)
    parser.add_argument("--calls", type=int, default=25)
    parser.add_argument("--probe-from", default=None, help="time the probe of this source tree")
    parser.add_argument("--keep-heap", action="store_true", help="glibc keeps freed memory: no page faults")
    args = parser.parse_args()
    if args.keep_heap:
        keep_heap()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    probe = probe_module(args.probe_from)
    label = (args.probe_from or "this tree") + (", heap kept" if args.keep_heap else "")
    for model in args.models:
        for activation in args.activations:
            times, faults = time_pair(probe, model, activation, device, args.blocks, args.calls)
            print(
                f"{model} {activation} on {device} ({label}): plain {times['plain'] * 1e3:.3f} ms, "
                f"probe / plain {times['probe'] / times['plain']:.2f}; page faults per call: plain "
                f"{faults['plain']:.0f}, probe {faults['probe']:.0f}"
            )


def time_pair(
    probe: ModuleType, model: str, activation: str, device: torch.device, blocks: int, calls: int
) -> tuple[dict[str, float], dict[str, float]]:
    net, x, loss = setup(model, activation, device)
    params = list(net.parameters())
    measure = probe.PlasticityProbe(net).measure

    def plain() -> None:
        torch.autograd.grad(loss(net(x)), params)

    def probed() -> None:
        measure(x, loss)

    return block_medians({"plain": plain, "probe": probed}, device, blocks, calls)


if __name__ == "__main__":
    main()
