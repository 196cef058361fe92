"""Scoring architectures with inherited supernet weights.

Search networks normalise with the current batch's statistics
(``track_running_stats=False``), so evaluation needs no running statistics.

Text (language-model) scores carry context: :func:`path_outputs` runs one
architecture through the windows of a split in order and starts each window
from the state that same architecture ended the previous one with, as
stand-alone evaluation of a language model does. Every architecture starts
from zeros at the first window, so no state computed by another architecture
enters its score. :func:`evaluate_model` evaluates a stand-alone network the
same way.

:func:`recalibrated_bn` optionally gives one architecture its own BatchNorm
statistics, estimated on a few training batches, for the duration of a
``with`` block.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

Batch = tuple[torch.Tensor, torch.Tensor]


def path_outputs(model: nn.Module, path: Any, batches: Iterable[Batch], *,
                 carry_state: bool = True) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(logits, targets)`` of one path on each batch, in order.

    Image batches are independent. Text batches, x of shape (T, B), are taken
    as consecutive windows of one batchified split (as
    :class:`nsas.data.TextBatches` yields them): the first window starts from
    a zero state and each next one from the state this path returned for the
    previous window, detached. Only ``path``'s own state is carried; no
    state from any other architecture enters. ``carry_state=False`` starts
    every window from zeros (a score without context).
    """
    hidden = None
    for x, y in batches:
        if x.dim() == 2 and carry_state:  # text (T, B)
            logits, hidden = model(x, path, hidden=hidden, return_hidden=True)
            hidden = hidden.detach()
        else:
            logits = model(x, path)
        yield logits, y


@torch.no_grad()
def evaluate_path(model: nn.Module, path: Any, batches: Iterable[Batch], *,
                  carry_state: bool = True) -> dict[str, float]:
    """Accuracy (top-1, per image or per token) and mean cross-entropy of one path.

    Text carries the path's own state from window to window (:func:`path_outputs`).
    """
    was_training = model.training
    model.eval()
    correct = total = 0
    loss_sum = 0.0
    for logits, y in path_outputs(model, path, batches, carry_state=carry_state):
        logits = logits.reshape(-1, logits.size(-1))
        y = y.reshape(-1)
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(-1) == y).sum().item()
        total += y.numel()
    model.train(was_training)
    if total == 0:
        return {"acc": float("nan"), "loss": float("nan")}
    return {"acc": 100.0 * correct / total, "loss": loss_sum / total}


@torch.no_grad()
def evaluate_model(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], *,
                   text: bool) -> dict[str, float]:
    """Loss, accuracy (per image or token) and perplexity of a stand-alone network (left in eval mode).

    Text: the windows are consecutive; each starts from the state the previous
    one ended with (the first from zeros), as DARTS evaluates.
    """
    model.eval()
    loss_sum, correct, total, hidden = 0.0, 0, 0, None
    for x, y in batches:
        if text:
            logits, hidden = model(x, hidden)
        else:
            logits = model(x)
        logits, y = logits.reshape(-1, logits.size(-1)), y.reshape(-1)
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        correct += int((logits.argmax(-1) == y).sum())
        total += y.numel()
    loss = loss_sum / max(total, 1)
    return {"loss": loss, "acc": 100.0 * correct / max(total, 1), "ppl": math.exp(min(loss, 700.0))}


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
