"""Crash-safe checkpoints and config comparison for resumable runs.

A checkpoint file is ``MAGIC | payload length (8 bytes, little endian) | SHA-256 of payload | payload`` where the
payload is a ``torch.save`` archive. It is written to a temporary file in the same directory, flushed, fsynced and
moved into place with ``os.replace`` (atomic on POSIX), then the directory is fsynced. A kill at any moment leaves
either the previous file or the complete new one; a file that is truncated or altered fails the length/digest check
and is never loaded.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from ocp.atomic_files import atomic_write_bytes

MAGIC = b"OCPCKPT1"
_HEADER = len(MAGIC) + 8 + 32
CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_SUFFIX = ".ckpt"


class CorruptCheckpointError(ValueError):
    """A checkpoint file failed its integrity check (truncated, altered, or not a checkpoint)."""


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Serialise ``payload`` with ``torch.save`` and write it atomically with a length and SHA-256 header."""
    buf = io.BytesIO()
    torch.save(payload, buf)
    data = buf.getvalue()
    header = MAGIC + len(data).to_bytes(8, "little") + hashlib.sha256(data).digest()
    atomic_write_bytes(path, header + data)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`; ``CorruptCheckpointError`` if it fails verification."""
    raw = Path(path).read_bytes()
    if len(raw) < _HEADER or raw[: len(MAGIC)] != MAGIC:
        raise CorruptCheckpointError(f"{path}: not a checkpoint or truncated header")
    length = int.from_bytes(raw[len(MAGIC) : len(MAGIC) + 8], "little")
    digest = raw[len(MAGIC) + 8 : _HEADER]
    data = raw[_HEADER:]
    if len(data) != length:
        raise CorruptCheckpointError(f"{path}: payload is {len(data)} bytes, header says {length} (truncated write?)")
    if hashlib.sha256(data).digest() != digest:
        raise CorruptCheckpointError(f"{path}: SHA-256 mismatch")
    # weights_only=False: the payload holds numpy RNG states; the digest above ensures it is a file we wrote whole.
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)


def checkpoint_path(run_dir: str | os.PathLike, update: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"update_{update:07d}{CHECKPOINT_SUFFIX}"


def list_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """Checkpoint files of a run, oldest first (names sort by update number)."""
    directory = Path(run_dir) / CHECKPOINT_DIR
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.name.startswith("update_") and p.suffix == CHECKPOINT_SUFFIX)


def save_rotating(run_dir: str | os.PathLike, update: int, payload: dict[str, Any], keep: int) -> Path:
    """Save the checkpoint of ``update`` and delete all but the newest ``keep`` (the new one is durable first)."""
    path = checkpoint_path(run_dir, update)
    save_checkpoint(path, payload)
    for old in list_checkpoints(run_dir)[:-keep]:
        old.unlink()
    return path


def load_latest_checkpoint(run_dir: str | os.PathLike) -> tuple[Path, dict[str, Any]] | None:
    """Newest checkpoint that passes verification, skipping (with a warning) any that do not; ``None`` if the run has
    no checkpoint. Raises ``CorruptCheckpointError`` if checkpoints exist but none verifies."""
    candidates = list_checkpoints(run_dir)
    for path in reversed(candidates):
        try:
            return path, load_checkpoint(path)
        except CorruptCheckpointError as err:
            warnings.warn(f"skipping untrustworthy checkpoint: {err}", stacklevel=2)
    if candidates:
        raise CorruptCheckpointError(f"{run_dir}: no checkpoint passes verification ({len(candidates)} found)")
    return None


def normalise_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config as it reads back from JSON (tuples become lists), so saved and live configs compare equal."""
    return json.loads(json.dumps(config))


def config_diff(saved: dict[str, Any], current: dict[str, Any], ignore: frozenset[str] = frozenset()) -> list[str]:
    """Fields whose values differ between two configs, one line each: ``name: saved=<v> current=<v>``."""
    saved, current = normalise_config(saved), normalise_config(current)
    lines = []
    for key in sorted(set(saved) | set(current)):
        if key in ignore:
            continue
        missing = "<absent>"
        a, b = saved.get(key, missing), current.get(key, missing)
        if a != b:
            lines.append(f"{key}: saved={a!r} current={b!r}")
    return lines
