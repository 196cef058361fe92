"""What a search trains on, its supernet, and a finished run loaded back.

:func:`build_search_data` splits the training set into the weights half and
the validation half (images) or takes the train/valid texts (darts-rnn);
:func:`caller_data` wraps the caller's own data; :func:`load_search_run`
reads a run directory (config, supernet weights, lazily loaded data) for
``nsas rank`` and the library.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from nsas import data as nsas_data
from nsas import distributed
from nsas.checkpoint import load_checkpoint
from nsas.config import build_config, read_yaml
from nsas.data.loaders import LazyData, caller_batches
from nsas.errors import CheckpointError, NsasError
from nsas.search_config import SearchConfig
from nsas.spaces import get_space


@dataclass
class SearchData:
    """The two halves of the training set (and their batches) a search uses."""

    train: Any  # ImageBatches | TextBatches | LoaderBatches: trains the weights
    val: Any  # ImageBatches | TextBatches | LoaderBatches: trains GDAS's alpha
    num_classes: int | None  # classes (vocabulary size for text); None when unknown (caller's loaders)
    score: Any = None  # the validation batches that score architectures (None: ``val``)
    fingerprint: str | None = None  # SHA-256 of the data a search reads (None: the caller's loaders)

    def __post_init__(self) -> None:
        if self.score is None:
            self.score = self.val


def caller_data(cfg: SearchConfig, device: torch.device, *, dataset: Any = None, train_data: Any = None,
                val_data: Any = None, num_classes: int | None = None) -> SearchData:
    """Search data from what the caller passed instead of ``cfg.dataset``.

    ``dataset`` is an :class:`~nsas.data.ImageDataset` / ``TextDataset`` (used
    as a loaded data set would be) or a map-style torch ``Dataset`` of
    ``(x, y)``; ``train_data`` and ``val_data`` are DataLoaders (see
    :func:`nsas.data.loaders.caller_batches`).
    """
    if isinstance(dataset, (nsas_data.ImageDataset, nsas_data.TextDataset)):
        return build_search_data(cfg, device, dataset=dataset)
    return SearchData(*caller_batches(batch_size=cfg.batch_size, fraction=cfg.train_fraction, seed=cfg.seed,
                                      device=device, dataset=dataset, train_data=train_data, val_data=val_data,
                                      num_classes=num_classes))


def data_fingerprint(*tensors: torch.Tensor) -> str:
    """SHA-256 over the bytes (and shapes) of ``tensors``: what a resume checks its data against.

    About half a second for CIFAR-10's 150 MB of training images on one core.
    """
    digest = hashlib.sha256()
    for tensor in tensors:
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


def build_search_data(cfg: SearchConfig, device: torch.device, dataset: Any = None, *,
                      fingerprint: bool = True) -> SearchData:
    """Load the data set (unless given) and split it (images: weights half / validation half).

    ``fingerprint``: compute the data's SHA-256 (what a resume checks; about 0.5 s for CIFAR-10); loading a
    run back to score it (``load_search_run``) skips it.
    """
    if dataset is None:
        with distributed.local_rank_zero_first():  # one download/decode per node, not one per rank
            dataset = nsas_data.load_dataset(cfg.dataset, cfg.data_dir)
    space = get_space(cfg.space)
    if space.kind == "text":
        if not isinstance(dataset, nsas_data.TextDataset):
            raise NsasError(f"space {cfg.space!r} needs a text data set (ptb, wikitext2), got {cfg.dataset!r}")
        train = nsas_data.TextBatches(dataset.train, batch_size=cfg.batch_size, bptt=cfg.bptt, device=device)
        # DARTS searches RNN cells with the validation text as the architecture split.
        val = nsas_data.TextBatches(dataset.valid, batch_size=cfg.batch_size, bptt=cfg.bptt, device=device)
        # Scores run through the same text in eval_batch_size columns, as DARTS evaluates (10).
        score = nsas_data.TextBatches(dataset.valid, batch_size=cfg.eval_batch_size, bptt=cfg.bptt, device=device)
        return SearchData(train, val, dataset.vocab_size, score,
                          data_fingerprint(dataset.train, dataset.valid) if fingerprint else None)
    if not isinstance(dataset, nsas_data.ImageDataset):
        raise NsasError(f"space {cfg.space!r} needs an image data set, got {cfg.dataset!r}")
    w_idx, v_idx = nsas_data.search_split(len(dataset.train_y), fraction=cfg.train_fraction, seed=cfg.seed)
    common = dict(batch_size=cfg.batch_size, mean=dataset.mean, std=dataset.std, device=device)
    train = nsas_data.ImageBatches(dataset.train_x[w_idx], dataset.train_y[w_idx], augment=cfg.augment,
                                   shuffle=True, seed=cfg.seed, **common)

    def validation(batch_size: int) -> nsas_data.ImageBatches:  # the same images in the same order at any size
        return nsas_data.ImageBatches(dataset.train_x[v_idx], dataset.train_y[v_idx], augment=False, shuffle=True,
                                      seed=cfg.seed + 1, **{**common, "batch_size": batch_size})

    # scores take the validation half's batches, or the same images at score_batch_size
    score = validation(cfg.score_batch_size) if cfg.score_batch_size not in (0, cfg.batch_size) else None
    return SearchData(train, validation(cfg.batch_size), dataset.num_classes, score,
                      data_fingerprint(dataset.train_x, dataset.train_y) if fingerprint else None)


def build_supernet(cfg: SearchConfig, num_classes: int | None) -> nn.Module:
    """The space's supernet at the configured size (few-shot: its :class:`~nsas.few_shot.FewShotSupernet`)."""
    space = get_space(cfg.space)
    if num_classes is None:
        raise NsasError("the number of classes is unknown for these data loaders: pass num_classes, or a supernet")
    if space.kind == "text":
        supernet = space.build_supernet(vocab=num_classes, hidden=cfg.hidden)
    else:
        supernet = space.build_supernet(channels=cfg.channels, cells=cfg.cells, num_classes=num_classes)
    if cfg.few_shot_edge is not None:  # one copy per operation on the split edge (nsas/few_shot.py)
        from nsas.few_shot import FewShotSupernet

        supernet = FewShotSupernet(supernet, space, cfg.few_shot_edge)
    return supernet


class SearchRun(NamedTuple):
    """What :func:`load_search_run` returns; unpacks as ``cfg, supernet, data, state = load_search_run(...)``."""

    config: SearchConfig
    """The run's config (config.yaml)."""
    supernet: nn.Module
    """The supernet with the checkpoint's trained weights."""
    data: Any
    """The run's data (a :class:`~nsas.data.loaders.LazyData`: loaded on first use)."""
    state: dict[str, Any]
    """The checkpoint's state (step, epoch, archive, ...)."""


def load_search_run(run_dir: str | Path, device: str | torch.device = "cpu", *, supernet: nn.Module | None = None
                    ) -> SearchRun:
    """A finished or interrupted search run: its config, supernet (trained weights), data and checkpoint state,
    as a :class:`SearchRun` (a named tuple: ``run.supernet``, or ``cfg, supernet, data, state = ...``).

    The data (a :class:`~nsas.data.loaders.LazyData`) loads the data set
    only when its ``train``/``val`` is first read. Pass ``supernet`` (an untrained module of the same shape) for
    runs whose supernet the caller built; its weights are replaced by the run's.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise NsasError(f"{run_dir} is not a search run directory (no config.yaml)")
    cfg = build_config(SearchConfig, read_yaml(run_dir / "config.yaml"), source=str(run_dir / "config.yaml"))
    device = torch.device(device)
    state = load_checkpoint(run_dir / "checkpoint.pt", kind="search", map_location=device)
    data = LazyData(lambda: build_search_data(cfg, device, fingerprint=False))
    if supernet is None:  # checkpoints older than the num_classes record need the data to know it
        supernet = build_supernet(cfg, state.get("num_classes") or data.num_classes)
    supernet = supernet.to(device)
    try:
        supernet.load_state_dict(state["supernet"])
    except (KeyError, RuntimeError) as err:
        raise CheckpointError(f"{run_dir / 'checkpoint.pt'} does not fit the run's config: "
                              f"{str(err).splitlines()[0][:200]}") from None
    return SearchRun(cfg, supernet, data, state)


def cycle_batches(batches: Any, start: int) -> Iterator[Any]:
    """Endless stream of ``batches``, starting at global batch number ``start``."""
    per_epoch = len(batches)
    epoch, index = divmod(start, per_epoch)
    while True:
        yield from batches.epoch(epoch, start=index)
        epoch, index = epoch + 1, 0


def fixed_batches(batches: Any, count: int) -> list[Any]:
    """The first ``count`` batches of epoch 0: the same for every architecture scored."""
    out = []
    for batch in batches.epoch(0):
        out.append(batch)
        if len(out) == count:
            break
    return out
