"""Shared fixtures of the benchmark suite, and the printed ratio table.

Each benchmark declares a ``group`` (one model on one batch) and a ``variant`` (``plain``, ``probe``, ``naive``, ...).
After a ``--benchmark-only`` run, the terminal summary prints every variant's median time divided by the group's
``plain`` (or ``env``) baseline. In the ordinary ``pytest`` run benchmarks execute once (``--benchmark-disable``) as a
smoke check and no ratio is printed.
"""

import sys
from collections import defaultdict
from pathlib import Path

import pytest
import torch

from ocp.dispatch_count import count_dispatch

sys.path.insert(0, str(Path(__file__).parent))
from heap import keep_heap  # noqa: E402

_MEANS: dict[str, dict[str, float]] = defaultdict(dict)
_COUNTS: dict[str, dict[str, tuple[int, int]]] = defaultdict(dict)
_BASELINES = ("plain", "env")

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")),
]


def pytest_addoption(parser):
    parser.addoption(
        "--keep-heap",
        action="store_true",
        help="glibc keeps freed memory (benchmarks/heap.py): CPU timings without page faults",
    )


def pytest_configure(config):
    if config.getoption("--keep-heap"):
        keep_heap()


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)


@pytest.fixture
def timed(benchmark):
    """``timed(group, variant, fn)``: benchmark ``fn`` and remember its mean for the ratio table."""
    calls = []

    def run(group: str, variant: str, fn, rounds: int | None = None):
        benchmark.group = group
        benchmark.extra_info["variant"] = variant
        calls.append((group, variant))
        if rounds is None:
            return benchmark(fn)
        return benchmark.pedantic(fn, rounds=rounds, warmup_rounds=1)

    yield run
    stats = getattr(benchmark, "stats", None)
    if stats is not None and calls:
        group, variant = calls[-1]
        _MEANS[group][variant] = stats.stats.median


@pytest.fixture
def count_ops():
    """``count_ops(group, variant, fn)``: count the operators and host synchronisations of one call of ``fn`` (see
    :mod:`ocp.dispatch_count`) for the printed table."""

    def record(group: str, variant: str, fn) -> None:
        count = count_dispatch(fn)
        _COUNTS[group][variant] = (count.operators, count.host_syncs)

    return record


def pytest_terminal_summary(terminalreporter):
    if not _MEANS:
        return
    tr = terminalreporter
    heap = ", heap kept" if tr.config.getoption("--keep-heap") else ""
    tr.section(f"ratios to the baseline of each group (median time / baseline median time{heap})")
    for group in sorted(_MEANS):
        means = _MEANS[group]
        base_name = next((b for b in _BASELINES if b in means), None)
        if base_name is None:
            continue
        base = means[base_name]
        cells = ", ".join(f"{v} {means[v] / base:.2f}x" for v in sorted(means) if v != base_name)
        tr.write_line(f"{group}: {base_name} {base * 1e3:.2f} ms; {cells}")
    if _COUNTS:
        tr.section("operators dispatched / host synchronisations per call")
        for group in sorted(_COUNTS):
            cells = ", ".join(f"{v} {ops} / {syncs}" for v, (ops, syncs) in sorted(_COUNTS[group].items()))
            tr.write_line(f"{group}: {cells}")
