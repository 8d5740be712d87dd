"""Files of a run directory that grow during training: CSV tables and per-measurement neuron masks.

Every file can be cut back to the state of a checkpoint, so that a resumed run's files equal an uninterrupted run's:
CSV tables by byte offset (recorded in the checkpoint), mask files by update number.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from ocp import metrics
from ocp.atomic_files import atomic_write_bytes

MASK_DIR = "masks"


class CsvLog:
    """Append-only CSV with a fixed header; ``offset`` is where a resume would cut it back to."""

    def __init__(self, path: str | os.PathLike, fieldnames: list[str], truncate_to: int | None = None):
        self.path = Path(path)
        self.fieldnames = list(fieldnames)
        if truncate_to is not None and self.path.exists():
            os.truncate(self.path, truncate_to)
        self._file = open(self.path, "a", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=self.fieldnames, extrasaction="raise", lineterminator="\n")
        if self._file.tell() == 0:
            self._writer.writeheader()

    def write(self, rows: Iterable[dict[str, Any]]) -> None:
        self._writer.writerows({k: _fmt(v) for k, v in row.items()} for row in rows)

    def sync(self) -> int:
        """Flush to disk (before a checkpoint refers to it) and return the current size in bytes."""
        self._file.flush()
        os.fsync(self._file.fileno())
        return self._file.tell()

    def close(self) -> None:
        self._file.close()


def _fmt(value: Any) -> Any:
    # repr of a float round-trips exactly, so a resumed table can be compared for equality; float() first, because a
    # float subclass (np.float64) has a repr of its own ("np.float64(0.5)").
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(float(value))
    return value


def mask_key(network: str, layer: str, kind: str, tau: float) -> str:
    """Name of one mask in a masks file: ``network|layer|kind|tau`` with kind ``dormant`` or ``zero_gradient``."""
    return f"{network}|{layer}|{kind}|{tau!r}"


def mask_path(run_dir: str | os.PathLike, update: int) -> Path:
    return Path(run_dir) / MASK_DIR / f"update_{update:07d}.npz"


def save_masks(run_dir: str | os.PathLike, update: int, masks: dict[str, torch.Tensor]) -> Path:
    """Store boolean per-neuron masks bit-packed (``np.packbits``) with their widths, one file per measurement."""
    arrays: dict[str, np.ndarray] = {}
    keys = sorted(masks)
    for i, key in enumerate(keys):
        arrays[f"m{i}"] = np.packbits(masks[key].cpu().numpy().astype(bool))
    arrays["keys"] = np.array(keys)
    arrays["widths"] = np.array([masks[k].numel() for k in keys], dtype=np.int64)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    path = mask_path(run_dir, update)
    atomic_write_bytes(path, buf.getvalue())
    return path


def load_masks_file(path: str | os.PathLike) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        keys, widths = data["keys"], data["widths"]
        return {
            str(k): np.unpackbits(data[f"m{i}"], count=int(w)).astype(bool)
            for i, (k, w) in enumerate(zip(keys, widths))
        }


def load_masks(run_dir: str | os.PathLike) -> dict[int, dict[str, np.ndarray]]:
    """Every stored measurement of a run: ``{update: {mask_key: bool array}}``."""
    directory = Path(run_dir) / MASK_DIR
    if not directory.is_dir():
        return {}
    return {int(p.stem.split("_")[1]): load_masks_file(p) for p in sorted(directory.glob("update_*.npz"))}


def delete_masks_after(run_dir: str | os.PathLike, update: int) -> None:
    """Remove mask files of measurements later than ``update`` (they belong to updates a resume will redo)."""
    directory = Path(run_dir) / MASK_DIR
    if directory.is_dir():
        for p in directory.glob("update_*.npz"):
            if int(p.stem.split("_")[1]) > update:
                p.unlink()


def interval_overlap(run_dir: str | os.PathLike, key: str, update_a: int, update_b: int) -> float:
    """Overlap coefficient |A∩B|/min(|A|,|B|) of one stored mask between two measurements (NaN if a set is empty)."""
    masks = load_masks(run_dir)
    for u in (update_a, update_b):
        if u not in masks:
            raise ValueError(f"no measurement at update {u}; measured updates: {sorted(masks)}")
    a, b = (torch.from_numpy(masks[u][key]) for u in (update_a, update_b))
    return metrics.overlap_coefficient(a, b)
