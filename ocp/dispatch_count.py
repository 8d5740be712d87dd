"""What one call costs the host: the PyTorch operators it dispatches and the host synchronisations among them.

On a GPU every operator is a host-side dispatch (and usually a kernel launch), and every read of a device value by the
host (``.item()``, ``bool(t)``, ``.tolist()``, a boolean mask index, a copy to the CPU) waits for the device to finish
all queued work. Both are counted the same way on any device, so a CPU-only machine sees what a GPU would pay.

The synchronisation count is a rule of thumb, not a trace of the device: it counts the operators known to read device
data on the host (:data:`HOST_SYNC_OPERATORS`, boolean-mask indexing, device-to-host copies) and ``Tensor.tolist`` /
``Tensor.numpy`` (operators on the calling thread and the autograd threads it starts; ``tolist`` / ``numpy`` from
any thread while the call runs). It misses waits hidden inside other kernels and explicit
``torch.cuda.synchronize()`` calls, and counts a ``non_blocking`` device-to-host copy as a wait; on a GPU,
``torch.cuda.set_sync_debug_mode`` is the ground truth.

    count = count_dispatch(lambda: probe.measure(x, loss))
    count.operators, count.host_syncs, count.syncs_by_kind
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["DispatchCount", "count_dispatch", "HOST_SYNC_OPERATORS"]

#: Operators that read a device value on the host, or whose output size depends on device data (so the host waits).
HOST_SYNC_OPERATORS: frozenset[str] = frozenset(
    {
        "aten::_local_scalar_dense",  # .item(), float(t), int(t), bool(t)
        "aten::is_nonzero",
        "aten::equal",
        "aten::nonzero",
        "aten::nonzero_static",
        "aten::masked_select",
        "aten::_unique2",
        "aten::unique_dim",
        "aten::unique_consecutive",
        "aten::repeat_interleave",
    }
)


@dataclass
class DispatchCount:
    operators: int = 0
    """Operators dispatched (each one a host-side call; on a GPU usually a kernel launch)."""
    host_syncs: int = 0
    """Host synchronisations: sync operators, device-to-host copies and ``Tensor.tolist`` / ``Tensor.numpy`` calls."""
    syncs_by_kind: Counter = field(default_factory=Counter)
    operators_by_name: Counter = field(default_factory=Counter)


class _Counter(TorchDispatchMode):
    def __init__(self, count: DispatchCount) -> None:
        super().__init__()
        self.count = count
        self.reading = 0  # inside a wrapped Tensor.tolist / numpy, already counted once

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func._schema.name
        self.count.operators += 1
        self.count.operators_by_name[name] += 1
        if not self.reading and (
            name in HOST_SYNC_OPERATORS or _copies_to_host(name, args, kwargs or {}) or _boolean_index(name, args)
        ):
            self.count.host_syncs += 1
            self.count.syncs_by_kind[name] += 1
        return func(*args, **(kwargs or {}))


def _copies_to_host(name: str, args: tuple, kwargs: dict) -> bool:
    """A copy from a non-CPU tensor into host memory (``.cpu()``, ``.to("cpu")``, ``copy_`` into a CPU tensor)."""
    if name == "aten::_to_copy":
        src, device = args[0], kwargs.get("device")
        return src.device.type != "cpu" and device is not None and torch.device(device).type == "cpu"
    if name == "aten::copy_":
        dst, src = args[0], args[1]
        return dst.device.type == "cpu" and isinstance(src, torch.Tensor) and src.device.type != "cpu"
    return False


def _boolean_index(name: str, args: tuple) -> bool:
    """``x[mask]`` and ``x[mask] = v``: the kernel finds the mask's true entries (a ``nonzero``) before it can size
    its output, which the dispatcher does not show as a separate operator."""
    if name not in ("aten::index", "aten::index_put", "aten::index_put_", "aten::_index_put_impl_"):
        return False
    return any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in args[1] or ())


def count_dispatch(fn: Callable[[], Any]) -> DispatchCount:
    """Run ``fn()`` once and count what it dispatched.

    ``Tensor.tolist`` and ``Tensor.numpy`` read tensor memory without dispatching an operator on the CPU (on a GPU
    ``tolist`` copies to the host first); they are counted as host synchronisations by wrapping them for the call.
    """
    count = DispatchCount()
    mode = _Counter(count)
    originals = {name: getattr(torch.Tensor, name) for name in ("tolist", "numpy")}
    own = {name: name in vars(torch.Tensor) for name in originals}  # inherited from the C base class otherwise

    def reader(name: str) -> Callable:
        original = originals[name]

        def read(self, *args, **kwargs):
            count.host_syncs += 1
            count.syncs_by_kind[f"Tensor.{name}"] += 1
            mode.reading += 1
            try:
                return original(self, *args, **kwargs)
            finally:
                mode.reading -= 1

        return read

    try:
        for name in originals:
            setattr(torch.Tensor, name, reader(name))
        with mode:
            fn()
    finally:
        for name, original in originals.items():
            if own[name]:
                setattr(torch.Tensor, name, original)
            else:
                delattr(torch.Tensor, name)
    return count
