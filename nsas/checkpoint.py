"""Checkpoints: written atomically, loaded without executing pickled code.

A checkpoint is a dict of tensors, numbers, strings, lists, tuples and dicts,
tagged with a format marker. :func:`save_checkpoint` writes it through
:func:`nsas.atomic.atomic_write`, so a crash (even ``kill -9`` inside
``torch.save``) leaves either the old or the new file, never a torn one. :func:`load_checkpoint` uses ``torch.load(weights_only=True)``: a
pickle that tries to build arbitrary objects or run code is refused, and so
are truncated, corrupted and foreign files, each with a one-line
:class:`~nsas.errors.CheckpointError` naming the file. Every checkpoint
carries a SHA-256 of its content (:func:`content_sha256`: each tensor's
bytes, dtype and shape, and every plain value), written in the same atomic
file and verified on load, so one flipped bit is an error, not a silently
different run; checkpoints written before the checksum load as before.
"""

from __future__ import annotations

import hashlib
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from nsas.atomic import atomic_write
from nsas.errors import CheckpointError

FORMAT = "nsas-checkpoint"
VERSION = 1


def content_sha256(value: Any) -> str:
    """SHA-256 of a nested structure of tensors and plain values (tensor bytes, dtype, shape; keys in order)."""
    h = hashlib.sha256()
    _feed(h, value)
    return h.hexdigest()


def _feed(h: Any, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}:".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, Mapping):
        h.update(f"M{len(value)}:".encode())
        for k, v in value.items():
            _feed(h, k)
            _feed(h, v)
    elif isinstance(value, (list, tuple)):
        h.update(f"L{len(value)}:".encode())
        for v in value:
            _feed(h, v)
    else:
        h.update(f"V{type(value).__name__}:{value!r};".encode())


def safe_load(path: str | Path, *, what: str = "checkpoint", map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(weights_only=True)`` of a user's file; every failure is one :class:`CheckpointError` line.

    Raises:
        CheckpointError: a missing, empty, truncated, corrupt or unsafe file (a pickle that would build
            objects or run code), naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "unsafe content"
        raise CheckpointError(f"{what} {path} was refused: it holds objects that are not plain data "
                              f"({first[:160]})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError, AttributeError, IndexError,
            TypeError, UnicodeDecodeError, pickle.PickleError) as err:
        raise CheckpointError(f"{what} {path} is empty, truncated or corrupt "
                              f"({type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''})") from None


def save_checkpoint(path: str | Path, state: dict[str, Any], *, kind: str) -> None:
    """Atomically write ``state`` (tensor-only content) to ``path``.

    Args:
        path: destination file.
        state: tensors and plain Python values only.
        kind: what the checkpoint holds (``"search"``, ``"train"``); checked on load.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "version": VERSION, "kind": kind, "state": state, "sha256": content_sha256(state)}
    with atomic_write(path) as f:
        torch.save(payload, f)


def load_checkpoint(path: str | Path, *, kind: str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`; never runs pickled code.

    Raises:
        CheckpointError: missing, truncated, corrupt, unsafe or foreign file,
            or one of another kind.
    """
    path = Path(path)
    payload = safe_load(path, map_location=map_location)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an nsas checkpoint")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"checkpoint {path} has format version {payload.get('version')}, "
                              f"this nsas reads version {VERSION}")
    if payload.get("kind") != kind:
        raise CheckpointError(f"checkpoint {path} is a {payload.get('kind')!r} checkpoint, expected {kind!r}")
    if "sha256" in payload and payload["sha256"] != content_sha256(payload.get("state")):  # none: an older nsas
        raise CheckpointError(f"checkpoint {path} is corrupt: its content does not match its SHA-256 checksum")
    return payload["state"]


def check_same_config(path: str | Path, saved: dict[str, Any], current: dict[str, Any],
                      free: tuple[str, ...] = ("device",)) -> None:
    """Refuse to resume from a checkpoint whose run config differs (keys in ``free`` may change)."""
    saved = {k: v for k, v in saved.items() if k not in free}
    current = {k: v for k, v in current.items() if k not in free}
    if saved != current:
        diff = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
        raise CheckpointError(f"checkpoint {path} belongs to a run with another config (differs in: {', '.join(diff)})")


def rng_state() -> dict[str, Any]:
    """Global RNG states (torch CPU and CUDA) as tensors."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def as_tuple(value: Any) -> Any:
    """Nested lists back to tuples (``random.Random.setstate`` needs tuples)."""
    if isinstance(value, (list, tuple)):
        return tuple(as_tuple(v) for v in value)
    return value
