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
``with`` block. :func:`score_archs` scores many architectures on the same
batches at once (``nsas rank``, the search's probes and selection), each
supernet function once.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from nsas.errors import NsasError
from nsas.spaces import get_space
from nsas.spaces.base import Architecture

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
    every window from zeros (a score without context). A model carries state
    only if it has ``init_hidden`` (the darts-rnn networks); any other model,
    such as a caller's supernet of a choice space, gets ``model(x, path)``
    for 2-D inputs too.
    """
    hidden = None
    recurrent = carry_state and callable(getattr(model, "init_hidden", None))
    for x, y in batches:
        if recurrent and x.dim() == 2:  # text (T, B)
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
    return {"loss": loss, "acc": 100.0 * correct / max(total, 1), "ppl": perplexity(loss)}


def perplexity(loss: float) -> float:
    """``exp(loss)``, capped at ``exp(700)`` so that a diverged model's value stays a finite number in JSON and
    CSV (the one perplexity of nsas: training, evaluation and ``nsas rank``)."""
    return math.exp(min(loss, 700.0))


def _batchnorms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@contextlib.contextmanager
def recalibrated_bn(model: nn.Module, path: Any, batches: Sequence[Batch]) -> Iterator[None]:
    """Inside the block, BatchNorm uses statistics of ``path`` on ``batches``.

    The running mean/variance are the exact averages over the given batches
    (``momentum=None``); on exit every BatchNorm layer is restored.
    """
    saved = []
    target = model.subnet_for(path) if callable(getattr(model, "subnet_for", None)) else model  # few-shot: its copy
    for bn in _batchnorms(target):
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


# ---------------------------------------------------------------- many architectures
def preload(batches: Sequence[Batch], device: str | torch.device) -> list[Batch]:
    """``batches`` on ``device``, made once for every architecture; targets flattened.

    On the CPU, images (4-D inputs) are stored channels-last: the same values,
    but oneDNN's convolutions, pooling and BatchNorm run about twice as fast on
    that layout (measured on the nb201 supernet), and every layer keeps it.
    """
    device = torch.device(device)
    out = []
    for x, y in batches:
        x = x.to(device)
        if device.type == "cpu" and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        out.append((x, y.to(device).reshape(-1)))
    return out


def _path_sums(model: nn.Module, path: Any, batches: Sequence[Batch]) -> torch.Tensor:
    """(2,) float64 on the device: correct predictions and summed cross-entropy of one path."""
    correct = loss = None
    for logits, y in path_outputs(model, path, batches):  # text: the path's own state carried across windows
        logits = logits.reshape(-1, logits.size(-1))  # (B, classes) or (T * B, vocab)
        batch_loss = F.cross_entropy(logits, y, reduction="sum").double()
        batch_correct = (logits.argmax(-1) == y).sum()
        loss = batch_loss if loss is None else loss + batch_loss
        correct = batch_correct if correct is None else correct + batch_correct
    return torch.stack([correct.double(), loss])


def distinct_functions(archs: Sequence[Architecture]) -> tuple[list[Architecture], list[int]]:
    """The architectures to score for ``archs``: one per supernet function (``SearchSpace.same_function``).

    Returns:
        The distinct representatives, in first-seen order, and for each of
        ``archs`` the index of its representative.
    """
    position: dict[Architecture, int] = {}
    index = []
    for arch in archs:
        rep = get_space(arch.space).same_function(arch)
        index.append(position.setdefault(rep, len(position)))
    return list(position), index


def share_scores(archs: Sequence[Architecture], rows: Sequence[dict[str, Any]], index: Sequence[int]
                 ) -> list[dict[str, Any]]:
    """Each of ``archs`` with the scores of its representative (``rows[index[i]]``)."""
    return [{**rows[i], "arch": str(arch)} for arch, i in zip(archs, index)]


def score_archs(model: nn.Module, archs: Sequence[Architecture], batches: Sequence[Batch], *,
                recalibrate: Sequence[Batch] = (), seed: int = 0, progress: bool = False
                ) -> list[dict[str, Any]]:
    """Accuracy and mean cross-entropy of every architecture on the same ``batches``.

    The same numbers as :func:`nsas.evaluate.evaluate_path` on the preloaded
    batches, computed for many paths without a host synchronisation per path.
    Text batches are consecutive windows: each architecture carries its own
    hidden state from window to window (:func:`path_outputs`), starting from
    zeros.
    Architectures that compute the same supernet function (nb201: a ``none``
    edge, a dead node, see :func:`nsas.spaces.nb201.function_key`) are scored
    once, as their space's representative, and share its score.

    Args:
        model: the supernet (put in eval mode while scoring, restored after).
        archs: the paths to score.
        batches: (inputs, targets) pairs; moved to the model's device once
            (:func:`preload`).
        recalibrate: if given, each architecture gets BatchNorm statistics of
            its own from these training batches
            (:func:`nsas.evaluate.recalibrated_bn`); otherwise the supernet's
            batch statistics are used.
        seed: seeds the random number generator before each recalibration
            (dropout in train mode), so a score does not depend on the order.
        progress: show a progress bar.

    Returns:
        One dict per architecture, in order: ``arch`` (canonical string),
        ``acc`` (percent) and ``loss``.
    """
    if not batches:
        raise NsasError("no batches to score architectures on")
    originals = archs
    archs, index = distinct_functions(originals)
    device = next(model.parameters()).device
    batches, recalibrate = preload(batches, device), preload(recalibrate, device)
    total = sum(y.numel() for _, y in batches)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            sums = torch.empty(len(archs), 2, dtype=torch.float64, device=device)  # correct, loss sum
            for i, arch in enumerate(tqdm(archs, unit="arch", disable=not progress, dynamic_ncols=True,
                                          leave=False, mininterval=0.5)):
                if recalibrate:
                    torch.manual_seed(seed)
                    with recalibrated_bn(model, arch, recalibrate):
                        sums[i] = _path_sums(model, arch, batches)
                else:
                    sums[i] = _path_sums(model, arch, batches)
            values = sums.tolist()  # the one synchronisation
    finally:
        model.train(was_training)
    rows = [{"arch": str(arch), "acc": 100.0 * correct / total, "loss": loss / total}
            for arch, (correct, loss) in zip(archs, values)]
    return share_scores(originals, rows, index)


RANK_BY = ("acc", "loss")


def rank_key(row: dict[str, Any], rank_by: str = "acc", kind: str = "image") -> tuple[float, ...]:
    """Sort key of a score row, best first: the one definition of "better" for selection, probes and `nsas rank`.

    Image spaces rank by accuracy with the lower loss breaking ties (``rank_by="acc"``) or by the validation
    loss alone (``rank_by="loss"``); text spaces always rank by loss.
    """
    if kind == "text" or rank_by == "loss":
        return (row["loss"],)
    return (-row["acc"], row["loss"])


def rank_value(row: dict[str, Any], rank_by: str = "acc", kind: str = "image") -> float:
    """The score that correlations use (higher is better): the accuracy, or minus the loss (:func:`rank_key`)."""
    return -row["loss"] if kind == "text" or rank_by == "loss" else row["acc"]


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device
