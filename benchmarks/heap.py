"""Take page faults out of CPU timings: ``keep_heap()`` asks glibc to keep freed memory in the heap.

By default glibc returns freed memory at the top of its heap to the system and gives large blocks mappings of their
own; whether a run then faults on every page of every fresh layer-sized tensor depends on the order of allocations
and frees, so two runs of the same code can differ by more than the cost being measured. With the heap kept, what
remains of a timing is the arithmetic, the operators' dispatch and the Python around them. Used by
``paired_probe.py --keep-heap`` and ``pytest benchmarks --benchmark-only --keep-heap``.
"""

import ctypes
import ctypes.util

# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3


def keep_heap() -> None:
    """Make glibc keep freed memory in the heap: no trimming of its top, no mapping of its own for a large block."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is None or not hasattr(libc, "mallopt"):
        raise SystemExit("keeping the heap needs glibc (mallopt); this C library has none")
    for parameter, value in ((M_TRIM_THRESHOLD, 1 << 30), (M_TOP_PAD, 64 << 20), (M_MMAP_THRESHOLD, 1 << 30)):
        if libc.mallopt(parameter, value) != 1:
            raise SystemExit(f"keeping the heap: mallopt({parameter}, {value}) was refused")
