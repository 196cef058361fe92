"""Single-path passes: a path's loss, and the one description of how a step's batch is divided.

A step's batch reaches this module already cut to this process's rows (:func:`nsas.step.local_part`).
:func:`run_passes` then divides it twice, always the same way:

1. into ``chunks`` contiguous micro-batches (:func:`nsas.distributed.shard`), each its own BatchNorm
   group, whose gradients are averaged (``1 / chunks`` per micro-batch): what m data-parallel processes
   with one micro-batch each compute;
2. within each micro-batch, a term with slice ``(i, n)`` sees only the i-th of n contiguous slices
   (``tensor_split``; NSAS's ``constraint_slices`` and ``shared_batch`` variants), ``WHOLE`` all of it.

Each (term, micro-batch) pair is one forward and one backward pass, so peak memory is one path's
activations; under DistributedDataParallel every pass but the last accumulates locally (``no_sync``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nsas import distributed

Batch = tuple[torch.Tensor, torch.Tensor]


Criterion = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (logits (N, C), targets (N,)) -> scalar


def path_loss(supernet: nn.Module, path: Any, batch: Batch,
              edge_weights: list[torch.Tensor] | None = None, criterion: Criterion | None = None) -> torch.Tensor:
    """Loss of one path of the supernet on ``batch`` (cross-entropy unless ``criterion`` is given).

    Image batches: x (B, 3, H, W), y (B,). Text batches: x (T, B), y (T, B);
    logits (T, B, V) are flattened to (T*B, V) and y to (T*B,) before the
    criterion sees them. ``edge_weights`` is passed to the supernet only when
    given, so any module with ``forward(x, path)`` works as a supernet.
    """
    x, y = batch
    logits = supernet(x, path) if edge_weights is None else supernet(x, path, edge_weights=edge_weights)
    return (criterion or F.cross_entropy)(logits.reshape(-1, logits.size(-1)), y.reshape(-1))


def carried_path_loss(supernet: nn.Module, path: Any, batch: Batch, edge_weights: list[torch.Tensor] | None,
                      hidden: torch.Tensor, criterion: Criterion | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss of one path on a text batch starting from ``hidden`` (B, H), and its final state (detached).

    Cross-entropy unless ``criterion`` is given, as in :func:`path_loss`.
    """
    x, y = batch
    if edge_weights is None:
        logits, final = supernet(x, path, hidden=hidden, return_hidden=True)
    else:
        logits, final = supernet(x, path, edge_weights=edge_weights, hidden=hidden, return_hidden=True)
    return (criterion or F.cross_entropy)(logits.reshape(-1, logits.size(-1)), y.reshape(-1)), final.detach()


Term = tuple[Any, list[torch.Tensor] | None, float, tuple[int, int]]  # path, edge weights, coef, (slice, of)
WHOLE = (0, 1)  # a term computed on the whole (micro-)batch


def run_passes(terms: list[Term], supernet: nn.Module, batch: Batch, chunks: int,
            criterion: Criterion | None = None, hidden: torch.Tensor | None = None, cap: float = 0.0
            ) -> tuple[list[list[float]], torch.Tensor | None]:
    """Back-propagate ``coef * loss(path)`` for every (path, edge_weights, coef, slice) term and micro-batch.

    The loss is ``criterion`` (cross-entropy when None). With ``cap`` > 0, a term after the first whose
    loss exceeds ``cap`` times the first term's loss (on the same micro-batch) is scaled down to exactly
    that by a constant factor: its gradient shrinks by the same factor and still flows.

    A term's slice ``(i, n)`` computes it on the i-th of n contiguous slices
    of each micro-batch (sizes differ by at most one) (``WHOLE`` for all of it). Each micro-batch's
    losses are scaled by ``1 / chunks`` (the gradient is their mean). With
    ``hidden`` (text, (B, H)) every pass starts from that state (from the
    rows of its micro-batch's and slice's columns).

    Returns:
        The unscaled losses, ``[term][chunk]``, and the first term's final
        state (B, H), detached (None without ``hidden``).
    """
    dim = 1 if batch[0].dim() == 2 else 0  # text batches are (T, B)
    values: list[list[float]] = [[] for _ in terms]
    finals: list[torch.Tensor] = []
    last = (chunks - 1, len(terms) - 1)
    for c in range(chunks):
        part = distributed.shard(batch, c, chunks, dim=dim)
        h = None if hidden is None else distributed.shard((hidden,), c, chunks)[0]  # (B / chunks, H)
        for t, (path, edge_weights, coef, (index, count)) in enumerate(terms):
            with distributed.pass_context(supernet, sync=(c, t) == last):
                sliced = part if count == 1 else tuple(t.tensor_split(count, dim)[index] for t in part)
                if h is None:
                    loss = path_loss(supernet, path, sliced, edge_weights, criterion)
                else:
                    h_slice = h if count == 1 else h.tensor_split(count, 0)[index]
                    loss, final = carried_path_loss(supernet, path, sliced, edge_weights, h_slice, criterion)
                    if t == 0:  # the current architecture's state goes on to the next step
                        finals.append(final)
                value = loss.item()
                factor = 1.0
                if cap > 0.0 and t > 0 and value > cap * values[0][c]:
                    factor = cap * values[0][c] / value  # constraint_cap: at most cap x the current loss
                (loss * (coef * factor / chunks)).backward()
            values[t].append(value)
    return values, (torch.cat(finals) if finals else None)
