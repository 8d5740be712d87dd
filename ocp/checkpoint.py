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
import random
import warnings
from pathlib import Path
from typing import Any, Protocol

import numpy as np
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


class Stateful(Protocol):
    """A part of a run whose state a checkpoint must hold for an exact resume."""

    def state_dict(self) -> Any: ...

    def load_state_dict(self, state: Any) -> None: ...


class RunState:
    """Every stateful part of a run, by name: a checkpoint holds each registered part's ``state_dict`` and a resume
    loads each one back, so a part registered here resumes exactly without any change to the checkpoint code.

    A checkpoint entry that no registered part claims must be ``None`` (a part that this run does not have, such as
    the task-switch monitor of a run without switches); anything else is refused, as is a registered part that the
    checkpoint lacks.
    """

    #: Checkpoint entries that describe the checkpoint itself rather than a part.
    RESERVED = frozenset({"format", "config", "update", "global_step", "finished"})

    def __init__(self) -> None:
        self._parts: dict[str, Stateful] = {}

    def register(self, name: str, part: Stateful) -> None:
        if name in self.RESERVED or name in self._parts:
            raise ValueError(f"checkpoint part name {name!r} is reserved or already registered")
        if not callable(getattr(part, "state_dict", None)) or not callable(getattr(part, "load_state_dict", None)):
            raise TypeError(f"checkpoint part {name!r} needs state_dict() and load_state_dict()")
        self._parts[name] = part

    @property
    def names(self) -> list[str]:
        return list(self._parts)

    def state_dict(self) -> dict[str, Any]:
        return {name: part.state_dict() for name, part in self._parts.items()}

    def load_state_dict(self, payload: dict[str, Any]) -> None:
        missing = [name for name in self._parts if name not in payload]
        if missing:
            raise ValueError(f"the checkpoint holds no state for part(s) {missing}")
        unclaimed = [k for k, v in payload.items() if k not in self._parts and k not in self.RESERVED and v is not None]
        if unclaimed:
            raise ValueError(f"the checkpoint holds state for part(s) {unclaimed} that this run does not have")
        for name, part in self._parts.items():
            part.load_state_dict(payload[name])


class GeneratorState:
    """A ``torch.Generator`` as a checkpoint part."""

    def __init__(self, generator: torch.Generator) -> None:
        self.generator = generator

    def state_dict(self) -> torch.Tensor:
        return self.generator.get_state()

    def load_state_dict(self, state: torch.Tensor) -> None:
        self.generator.set_state(state)


class GlobalRandomState:
    """The process-wide generators of Python, numpy and torch (and ``sampler``, kept under the same entry as earlier
    checkpoints did)."""

    def __init__(self, sampler: torch.Generator) -> None:
        self.sampler = sampler

    def state_dict(self) -> dict[str, Any]:
        return {
            "sampler": self.sampler.get_state(),
            "torch": torch.get_rng_state(),
            "numpy": np.random.get_state(),
            "python": random.getstate(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.set_state(state["sampler"])
        torch.set_rng_state(state["torch"])
        np.random.set_state(state["numpy"])
        random.setstate(state["python"])


class TensorsState:
    """A dict of tensors (e.g. the weights at initialisation) as a checkpoint part, restored into the very tensors it
    holds, so whoever kept a reference to one of them (a probe measuring distances from it) sees the restored values."""

    def __init__(self, tensors: dict[str, torch.Tensor]) -> None:
        self.tensors = tensors

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.tensors

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if set(state) != set(self.tensors):
            raise ValueError(f"tensors {sorted(set(state) ^ set(self.tensors))} are in only one of run and checkpoint")
        with torch.no_grad():
            for name, tensor in self.tensors.items():
                tensor.copy_(state[name])
