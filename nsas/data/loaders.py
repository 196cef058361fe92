"""The caller's own data in a search (a DataLoader, a torch Dataset), and data built lazily.

The search loop reads batches through two methods, ``len(batches)`` and
``batches.epoch(epoch, start=k)`` (see :mod:`nsas.data.batches`).
:class:`LoaderBatches` gives any re-iterable of ``(x, y)`` batches those
methods, moving each batch to the run's device. Resuming mid-epoch skips
the first ``k`` batches of a fresh pass, so it replays the interrupted run
only when the loader's order is deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from nsas.data.batches import generator, search_split
from nsas.errors import DataError


class LoaderBatches:
    """``len()`` and ``epoch(e, start=k)`` over a re-iterable of ``(x, y)`` batches.

    Args:
        loader: a DataLoader (or list, or any object iterated afresh per epoch)
            yielding ``(inputs, targets)`` tensor pairs.
        device: where each batch is moved.
    """

    def __init__(self, loader: Iterable[Any], device: str | torch.device = "cpu") -> None:
        self.loader, self.device = loader, torch.device(device)
        try:
            self.length = len(loader)  # type: ignore[arg-type]
        except TypeError:
            raise DataError("a data loader passed to nsas must have a length (len(loader))") from None

    def __len__(self) -> int:
        return self.length

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches ``start, start + 1, ...`` of one pass over the loader."""
        for index, batch in enumerate(self.loader):
            if index < start:
                continue
            try:
                x, y = batch
            except (TypeError, ValueError):
                raise DataError("a data loader must yield (inputs, targets) pairs, "
                                f"got {type(batch).__name__}") from None
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


def split_loaders(dataset: Dataset, *, batch_size: int, fraction: float, seed: int,
                  num_workers: int = 0) -> tuple[DataLoader, DataLoader]:
    """A map-style ``Dataset`` of ``(x, y)`` split into weights / validation DataLoaders.

    The split is :func:`nsas.data.search_split` (seeded); both loaders
    shuffle with seeded generators and drop the last partial batch.
    """
    try:
        n = len(dataset)  # type: ignore[arg-type]
    except TypeError:
        raise DataError("a dataset passed to nsas must have a length (len(dataset))") from None
    w_idx, v_idx = search_split(n, fraction=fraction, seed=seed)
    loaders = []
    for k, idx in enumerate((w_idx, v_idx)):
        if len(idx) < batch_size:
            raise DataError(f"the dataset's {'weights' if k == 0 else 'validation'} half has {len(idx)} examples, "
                            f"fewer than one batch of {batch_size}")
        loaders.append(DataLoader(Subset(dataset, idx.tolist()), batch_size=batch_size, shuffle=True,
                                  drop_last=True, generator=generator(seed, k), num_workers=num_workers))
    return loaders[0], loaders[1]


class LazyData:
    """Attributes of an object built on first use: ``LazyData(build)`` calls ``build()`` when one is read.

    ``load_search_run`` returns its search data this way, so loading a trained
    supernet does not load the data set until its batches are used.
    """

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build, self._built = build, None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if self._built is None:
            self._built = self._build()
        return getattr(self._built, name)


def caller_batches(*, batch_size: int, fraction: float, seed: int, device: torch.device, dataset: Any = None,
                   train_data: Any = None, val_data: Any = None, num_classes: int | None = None
                   ) -> tuple[LoaderBatches, LoaderBatches, int | None]:
    """Weights and validation batches from the caller's data, and the number of classes if known.

    ``dataset`` is a map-style torch ``Dataset`` of ``(x, y)``, split by
    ``fraction`` into two DataLoaders (:func:`split_loaders`); otherwise
    ``train_data`` and ``val_data`` are DataLoaders (or lists of batches)
    used as they are. ``num_classes`` defaults to ``len(dataset.classes)``
    where the data set has that attribute.
    """
    if dataset is not None:
        train_data, val_data = split_loaders(dataset, batch_size=batch_size, fraction=fraction, seed=seed)
        num_classes = num_classes or (len(dataset.classes) if hasattr(dataset, "classes") else None)
    if train_data is None or val_data is None:
        raise DataError("pass both train_data and val_data (or a dataset to split)")
    return LoaderBatches(train_data, device), LoaderBatches(val_data, device), num_classes
