"""Data sets by name, search splits and batch iterators.

    ds = load_dataset("cifar10-mini")                  # ImageDataset, uint8 tensors
    w, v = search_split(len(ds.train_x), 0.5, seed=0)  # weights / validation indices
    batches = ImageBatches(ds.train_x[w], ds.train_y[w], batch_size=64,
                           mean=ds.mean, std=ds.std, augment=True, seed=0)
    for x, y in batches.epoch(epoch, start=step):      # resumable mid-epoch
        ...

Built-in names: ``cifar10``, ``cifar100`` (official binary releases,
downloaded when missing), ``cifar10-mini`` (shipped inside the package),
``ptb``, ``wikitext2``, and ``imagefolder:PATH`` for any ImageFolder tree or
.tar.gz of one; :func:`register_dataset` adds your own. The data folder is ``data_dir``, else ``$NSAS_DATA``, else
``~/.cache/nsas/data``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from nsas.data.batches import ImageBatches, TextBatches, search_split
from nsas.data.cifar import load_cifar
from nsas.data.common import ImageDataset, TextDataset, default_data_dir
from nsas.data.imagefolder import load_imagefolder, load_mini
from nsas.data.text import load_corpus
from nsas.errors import DataError
from nsas.registry import Registry

Loader = Callable[[Path, bool], ImageDataset | TextDataset]  # loader(data_dir, download)
IMAGE_SETS = ("cifar10", "cifar100", "cifar10-mini")
TEXT_SETS = ("ptb", "wikitext2")
# name -> loader(data_dir, download); the built-ins are registered below
_REGISTRY: Registry[Loader] = Registry("data set", {n: __name__ for n in IMAGE_SETS + TEXT_SETS}, error=DataError)


def register_dataset(name: str) -> Callable[[Loader], Loader]:
    """Decorator: register ``loader(data_dir, download) -> ImageDataset | TextDataset`` as ``name``.

    ``data_dir`` is the resolved data folder (a :class:`~pathlib.Path`) and
    ``download`` says whether fetching missing files is allowed. Image sets
    return an :class:`ImageDataset` (uint8 images), text sets a
    :class:`TextDataset` (token ids).
    """
    return _REGISTRY.register(name)


register_dataset("cifar10")(lambda d, dl: load_cifar("cifar10", d, dl))
register_dataset("cifar100")(lambda d, dl: load_cifar("cifar100", d, dl))
register_dataset("cifar10-mini")(lambda d, dl: load_mini(d))
register_dataset("ptb")(lambda d, dl: load_corpus("ptb", d))
register_dataset("wikitext2")(lambda d, dl: load_corpus("wikitext2", d))


def dataset_names() -> list[str]:
    """Registered data set names (``imagefolder:PATH`` is accepted besides these)."""
    return _REGISTRY.names()


def load_dataset(name: str, data_dir: str | Path | None = None, download: bool = True) -> ImageDataset | TextDataset:
    """Load a data set by name.

    Args:
        name: one of :func:`dataset_names`, or ``imagefolder:PATH``.
        data_dir: folder holding (or receiving) the data; ``$NSAS_DATA`` or
            ``~/.cache/nsas/data`` when None. Decoded images are cached in
            ``data_dir/cache`` (``~/.cache/nsas/cache`` if that is read-only).
        download: fetch CIFAR archives that are missing.

    Raises:
        DataError: unknown name, or missing, corrupt or unreadable data.
    """
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    if name.startswith("imagefolder:"):
        return load_imagefolder(name, root)
    try:
        loader = _REGISTRY.get(name)
    except DataError:
        raise DataError(f"unknown data set {name!r}; choose one of {', '.join(dataset_names())} "
                        "or imagefolder:PATH") from None
    return loader(root, download)


__all__ = [
    "IMAGE_SETS",
    "TEXT_SETS",
    "ImageBatches",
    "ImageDataset",
    "TextBatches",
    "TextDataset",
    "dataset_names",
    "register_dataset",
    "load_dataset",
    "search_split",
]
