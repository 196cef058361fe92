"""Data set records, data and cache directories, channel statistics.

Image sets are held as uint8 tensors (N, 3, H, W) and converted to floats one
batch at a time (see :mod:`nsas.data.batches`); text sets as 1-D int64 token
tensors.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock

from nsas.atomic import atomic_write
from nsas.errors import DataError


@dataclass(frozen=True)
class ImageDataset:
    """An image classification set held as uint8 tensors.

    Attributes:
        name: registered name (or ``imagefolder:PATH``).
        train_x: uint8 images (N, 3, H, W).
        train_y: int64 labels (N,).
        test_x: uint8 images (M, 3, H, W).
        test_y: int64 labels (M,).
        classes: class names; label ``i`` is ``classes[i]``.
        mean: per-channel mean of the train images scaled to [0, 1].
        std: per-channel standard deviation of the train images in [0, 1].
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: tuple[str, ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @property
    def num_classes(self) -> int:
        return len(self.classes)


@dataclass(frozen=True)
class TextDataset:
    """A word-level language-modelling corpus.

    Attributes:
        name: registered name.
        train: int64 token ids (T,), one ``<eos>`` after every line.
        valid: int64 token ids.
        test: int64 token ids.
        vocab: words; token id ``i`` is ``vocab[i]``.
    """

    name: str
    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor
    vocab: tuple[str, ...]

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)


def default_data_dir() -> Path:
    """``$NSAS_DATA`` if set, else ``~/.cache/nsas/data``."""
    env = os.environ.get("NSAS_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "nsas" / "data"


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            pass
        return True
    except OSError:
        return False


def cache_dir(data_dir: Path) -> Path:
    """``data_dir/cache``, or ``~/.cache/nsas/cache`` when data_dir is read-only."""
    for folder in (data_dir / "cache", Path.home() / ".cache" / "nsas" / "cache"):
        if _writable(folder):
            return folder
    raise DataError(f"no writable cache folder: {data_dir / 'cache'} and ~/.cache/nsas/cache are read-only")


@contextlib.contextmanager
def preparing(folder: Path) -> Iterator[None]:
    """Hold ``folder/.nsas.lock`` while data is downloaded, extracted or decoded into ``folder``.

    Two processes preparing the same folder (two runs, or the nodes of a
    torchrun job on a shared file system) take turns: the second finds the
    first one's result instead of writing over it.
    """
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder / ".nsas.lock")):
        yield


def cache_key(*parts: object) -> str:
    """A short stable hex key for a cache file name."""
    return hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:16]


def save_arrays(path: Path, **arrays: np.ndarray) -> None:
    """Write an .npz atomically (fsynced, temporary file removed on failure): never half a cache."""
    with atomic_write(path) as f:
        np.savez(f, **arrays)


MIN_STD = 1.0  # in grey levels: the smallest per-channel std channel_stats reports


def channel_stats(x: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of uint8 images (N, C, H, W), in [0, 1].

    Computed from each channel's 256-bin histogram: exact, and no float copy of the set. A channel that
    never varies (a set of grey or single-colour images) gets the std of one grey level, not 0, which
    normalising would divide by (every input NaN, the loss NaN at the first step).
    """
    values = np.arange(256, dtype=np.float64)
    mean, std = [], []
    for c in range(x.shape[1]):
        plane = torch.from_numpy(np.ascontiguousarray(x[:, c])).view(-1)  # (N*H*W,) uint8
        counts = torch.bincount(plane, minlength=256).double().numpy()
        n = counts.sum()
        m = (counts * values).sum() / n
        mean.append(m / 255)
        std.append(max(float(np.sqrt(max((counts * values**2).sum() / n - m * m, 0.0))), MIN_STD) / 255)
    return tuple(float(v) for v in mean), tuple(std)


def image_dataset(name: str, arrays: dict[str, np.ndarray]) -> ImageDataset:
    """An :class:`ImageDataset` from the arrays of a decoded cache file."""
    return ImageDataset(
        name=name,
        train_x=torch.from_numpy(np.ascontiguousarray(arrays["train_x"])),
        train_y=torch.from_numpy(arrays["train_y"].astype(np.int64)),
        test_x=torch.from_numpy(np.ascontiguousarray(arrays["test_x"])),
        test_y=torch.from_numpy(arrays["test_y"].astype(np.int64)),
        classes=tuple(str(c) for c in arrays["classes"]),
        mean=tuple(float(v) for v in arrays["mean"]),
        std=tuple(float(v) for v in arrays["std"]),
    )
