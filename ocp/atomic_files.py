"""Atomic file writes: a reader (or a resumed run after a kill) sees the previous file or the complete new one, never
a partial write. The one way ocp writes a table, a JSON record or a checkpoint's bytes."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

__all__ = ["atomic_write_bytes", "atomic_write_json", "fsync_dir", "csv_bytes", "write_csv", "stable_key"]


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temp file in the same directory + fsync + ``os.replace`` + dir fsync."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    fsync_dir(path.parent)


def fsync_dir(directory: str | os.PathLike) -> None:
    """Make a rename inside ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def csv_bytes(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> bytes:
    """A CSV with exactly ``columns`` (a row with another column is an error, a missing one is left empty).

    NumPy scalars are written as the Python numbers they hold: ``csv`` writes a float subclass by its ``repr``, which
    for ``np.float64`` under NumPy 2 is ``np.float64(0.5)``, not a number."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="raise", lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: v.item() if isinstance(v, np.generic) else v for k, v in row.items()} for row in rows)
    return buf.getvalue().encode()


def write_csv(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """Write a tidy CSV atomically."""
    atomic_write_bytes(path, csv_bytes(rows, columns))


def stable_key(record: Any, length: int = 12) -> str:
    """A short hash of a JSON-able record, the same on any machine and Python version (sorted keys, fixed separators;
    values JSON cannot hold are taken by ``str``): what names a cached run or result folder."""
    blob = json.dumps(record, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:length]
