"""Scoring architectures with inherited supernet weights.

Search networks normalise with the current batch's statistics
(``track_running_stats=False``), so evaluation needs no running statistics.
:func:`recalibrated_bn` optionally gives one architecture its own BatchNorm
statistics, estimated on a few training batches, for the duration of a
``with`` block.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

Batch = tuple[torch.Tensor, torch.Tensor]


@torch.no_grad()
def evaluate_path(model: nn.Module, path: Any, batches: Iterable[Batch]) -> dict[str, float]:
    """Accuracy (top-1, per image or per token) and mean cross-entropy of one path."""
    was_training = model.training
    model.eval()
    correct = total = 0
    loss_sum = 0.0
    for x, y in batches:
        logits = model(x, path)
        logits = logits.reshape(-1, logits.size(-1))
        y = y.reshape(-1)
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(-1) == y).sum().item()
        total += y.numel()
    model.train(was_training)
    if total == 0:
        return {"acc": float("nan"), "loss": float("nan")}
    return {"acc": 100.0 * correct / total, "loss": loss_sum / total}


def _batchnorms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@contextlib.contextmanager
def recalibrated_bn(model: nn.Module, path: Any, batches: Sequence[Batch]) -> Iterator[None]:
    """Inside the block, BatchNorm uses statistics of ``path`` on ``batches``.

    The running mean/variance are the exact averages over the given batches
    (``momentum=None``); on exit every BatchNorm layer is restored.
    """
    saved = []
    for bn in _batchnorms(model):
        saved.append((bn, bn.track_running_stats, bn.momentum, bn.running_mean, bn.running_var,
                      bn.num_batches_tracked))
        bn.track_running_stats, bn.momentum = True, None
        bn.running_mean = torch.zeros(bn.num_features, device=_device(model))
        bn.running_var = torch.ones(bn.num_features, device=_device(model))
        bn.num_batches_tracked = torch.zeros((), dtype=torch.long, device=_device(model))
    was_training = model.training
    try:
        model.train()
        with torch.no_grad():
            for x, _ in batches:
                model(x, path)
        model.eval()
        yield
    finally:
        for bn, track, momentum, mean, var, count in saved:
            bn.track_running_stats, bn.momentum = track, momentum
            bn.running_mean, bn.running_var, bn.num_batches_tracked = mean, var, count
        model.train(was_training)


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device
