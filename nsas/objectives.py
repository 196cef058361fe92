"""Supernet training losses (``--loss``): ce, nsas, nsas-replay, nsas-random, wpl.

Each objective computes its loss for one step and back-propagates it,
architecture by architecture: the current architecture's cross-entropy first,
then each constraint's (scaled) cross-entropy. Gradients accumulate in the
shared weights, so the total gradient is that of

    L = CE(W(a_t); x, y) + beta * mean_{a in A} CE(W(a); x, y)

(docs/METHOD.md §3) while peak memory stays at one single-path pass.

The loop calls ``objective.observe(arch)`` (archive update, Algorithm 1) and
then ``objective.backward(...)`` on the same mini-batch.

``backward(..., chunks=m)`` splits the batch into m contiguous micro-batches
and averages their gradients (search networks normalise with batch
statistics, so this is what m data-parallel processes compute). When the
supernet is wrapped in DistributedDataParallel, every pass but the very last
accumulates locally under ``no_sync()`` and the last one all-reduces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from nsas import distributed
from nsas.archive import NoveltyArchive
from nsas.errors import NsasError
from nsas.spaces.base import Architecture, SearchSpace

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class StepLosses:
    """What one step's backward pass measured (floats, for logging)."""

    current: float  # CE of the current architecture
    archive: float | None  # mean CE of the constraint architectures, None without any
    total: float  # the loss whose gradient was accumulated
    passes: int  # single-path forward/backward passes this step cost, in whole-batch equivalents


def path_loss(supernet: nn.Module, path: Any, batch: Batch,
              edge_weights: list[torch.Tensor] | None = None) -> torch.Tensor:
    """Cross-entropy of one path of the supernet on ``batch``.

    Image batches: x (B, 3, H, W), y (B,). Text batches: x (T, B), y (T, B);
    logits (T, B, V) are flattened to (T*B, V).
    """
    x, y = batch
    logits = supernet(x, path, edge_weights=edge_weights)
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))


Term = tuple[Any, list[torch.Tensor] | None, float, tuple[int, int]]  # path, edge weights, coef, (slice, of)
WHOLE = (0, 1)  # a term computed on the whole (micro-)batch


def _passes(terms: list[Term], supernet: nn.Module, batch: Batch, chunks: int) -> list[list[float]]:
    """Back-propagate ``coef * CE(path)`` for every (path, edge_weights, coef, slice) term and micro-batch.

    A term's slice ``(i, n)`` computes it on the i-th of n contiguous slices
    of each micro-batch (sizes differ by at most one) (``WHOLE`` for all of it). Each micro-batch's
    losses are scaled by ``1 / chunks`` (the gradient is their mean). Returns
    the unscaled losses, ``[term][chunk]``.
    """
    dim = 1 if batch[0].dim() == 2 else 0  # text batches are (T, B)
    values: list[list[float]] = [[] for _ in terms]
    last = (chunks - 1, len(terms) - 1)
    for c in range(chunks):
        part = distributed.shard(batch, c, chunks, dim=dim)
        for t, (path, edge_weights, coef, (index, count)) in enumerate(terms):
            with distributed.pass_context(supernet, sync=(c, t) == last):
                sliced = part if count == 1 else tuple(t.tensor_split(count, dim)[index] for t in part)
                loss = path_loss(supernet, path, sliced, edge_weights)
                (loss * (coef / chunks)).backward()
            values[t].append(loss.item())
    return values


class Objective:
    """Plain cross-entropy of the current architecture (the baselines' loss)."""

    name: ClassVar[str] = "ce"
    archive: NoveltyArchive | None = None

    def observe(self, arch: Architecture) -> None:
        """Record the step's discrete architecture (before the loss)."""

    def backward(self, supernet: nn.Module, path: Any, batch: Batch,
                 edge_weights: list[torch.Tensor] | None = None, *, chunks: int = 1) -> StepLosses:
        """Accumulate the gradient of this step's loss into ``supernet`` (mean over ``chunks`` micro-batches)."""
        (values,) = _passes([(path, edge_weights, 1.0, WHOLE)], supernet, batch, chunks)
        value = sum(values) / chunks
        return StepLosses(current=value, archive=None, total=value, passes=1)

    def after_step(self, supernet: nn.Module) -> None:
        """Called after the optimizer step (WPL anchors its weights here)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class NSASObjective(Objective):
    """CE(current) + beta * mean CE(archive members), gradients through every term.

    Args:
        archive: the constraint archive (its policy decides nsas vs nsas-random).
        beta: weight of the mean constraint loss.
        replay: None for every member each step (``nsas``); r for the replay
            variant that draws r members per step (``nsas-replay``).
        every: variant: add the constraints only on every ``every``-th step
            (1: every step, as published); the other steps are plain CE.
        slices: variant: each constraint is computed on its own contiguous
            slice of the mini-batch (1/|constraints| of it) instead of the
            whole batch, so the constraints together cost about one pass.
        normalize: variant: scale the total by 1 / (1 + beta), so the step is
            a weighted mean of the terms rather than up to twice CE's step.
    """

    name = "nsas"

    def __init__(self, archive: NoveltyArchive, *, beta: float = 1.0, replay: int | None = None,
                 every: int = 1, slices: bool = False, normalize: bool = False) -> None:
        if every < 1:
            raise ValueError("constraint interval must be at least 1")
        self.archive, self.beta, self.replay = archive, beta, replay
        self.every, self.slices, self.normalize = every, slices, normalize
        self.steps = 0  # backward calls so far (decides the steps with constraints)

    def observe(self, arch: Architecture) -> None:
        self.archive.update(arch)

    def constraints(self) -> list[Architecture]:
        """The architectures whose losses regularise this step."""
        members = self.archive.members
        if self.replay is None or self.replay >= len(members):
            return list(members)
        return self.archive.rng.sample(members, self.replay)

    def backward(self, supernet: nn.Module, path: Any, batch: Batch,
                 edge_weights: list[torch.Tensor] | None = None, *, chunks: int = 1) -> StepLosses:
        constrained = self.steps % self.every == 0
        self.steps += 1
        constraints = self.constraints() if constrained else []
        n = len(constraints)
        scale = 1.0 / (1.0 + self.beta) if self.normalize else 1.0
        # d/dW [beta * mean_i CE_i] = sum_i (beta / |A|) dCE_i/dW: one backward per member.
        terms: list[Term] = [(path, edge_weights, scale, WHOLE)]
        terms += [(m, None, scale * self.beta / n, (i, n) if self.slices else WHOLE) for i, m in enumerate(constraints)]
        values = [sum(v) / chunks for v in _passes(terms, supernet, batch, chunks)]
        cur, members = values[0], values[1:]
        mean_archive = sum(members) / len(members) if members else None
        passes = 1 + (min(n, 1) if self.slices else n)  # whole-batch equivalents
        return StepLosses(current=cur, archive=mean_archive, passes=passes,
                          total=scale * (cur + self.beta * (mean_archive or 0.0)))

    def state_dict(self) -> dict[str, Any]:
        return {"archive": self.archive.state_dict(), "steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.archive.load_state_dict(state["archive"])
        self.steps = int(state.get("steps", 0))


class WPLObjective(Objective):
    """Weight plasticity loss (Benyahia et al. 2019), the prior method (docs/METHOD.md §6).

    L = CE(a_t) + (strength / 2) * sum_i F_i (w_i - w*_i)^2 over the weights
    a_t shares with the previous architecture; w* are the weights after the
    previous step and F the squared gradients of the previous architecture's
    loss (diagonal Fisher estimate).
    """

    name = "wpl"

    def __init__(self, *, strength: float = 1.0) -> None:
        self.strength = strength
        self.anchor: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # name -> (w*, F)
        self._pending: dict[str, torch.Tensor] = {}

    def backward(self, supernet: nn.Module, path: Any, batch: Batch,
                 edge_weights: list[torch.Tensor] | None = None, *, chunks: int = 1) -> StepLosses:
        # the mean gradient over micro-batches (and processes: identical on every rank)
        value = sum(_passes([(path, edge_weights, 1.0, WHOLE)], supernet, batch, chunks)[0]) / chunks
        # The penalty depends only on the weights, anchors and averaged gradient: every rank computes the same.
        named = dict(distributed.unwrap(supernet).named_parameters())
        used = {n: p for n, p in named.items() if p.grad is not None}
        # The Fisher of *this* architecture, kept for the next step.
        self._pending = {n: p.grad.detach().pow(2) for n, p in used.items()}
        shared = [n for n in used if n in self.anchor]
        penalty = torch.zeros((), device=batch[1].device)
        for n in shared:
            w_star, fisher = self.anchor[n]
            penalty = penalty + (fisher * (used[n] - w_star).pow(2)).sum()
        penalty = 0.5 * self.strength * penalty
        if shared:
            penalty.backward()
        return StepLosses(current=value, archive=None, total=value + penalty.item(), passes=1)

    def after_step(self, supernet: nn.Module) -> None:
        """Anchor the weights just updated (w*) with their Fisher estimate."""
        named = dict(distributed.unwrap(supernet).named_parameters())
        self.anchor = {n: (named[n].detach().clone(), f) for n, f in self._pending.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"anchor": {n: {"w": w, "fisher": f} for n, (w, f) in self.anchor.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.anchor = {n: (v["w"], v["fisher"]) for n, v in state["anchor"].items()}


LOSSES = ("ce", "nsas", "nsas-replay", "nsas-random", "wpl")


def build_objective(name: str, space: SearchSpace, *, archive_size: int = 8, pool_size: int = 50,
                    candidates: int | None = None, k: int = 10, beta: float = 1.0, replay: int = 1,
                    wpl_strength: float = 1.0, seed: int = 0, archive_max_age: int = 0,
                    constraint_every: int = 1, constraint_slices: bool = False,
                    normalize_loss: bool = False) -> Objective:
    """The objective registered as ``name`` (one of :data:`LOSSES`).

    The NSAS-family variants (off by default, see :class:`NSASObjective` and
    :class:`~nsas.archive.NoveltyArchive`): ``archive_max_age``,
    ``constraint_every``, ``constraint_slices``, ``normalize_loss``.
    """
    if name == "ce":
        return Objective()
    if name == "wpl":
        return WPLObjective(strength=wpl_strength)
    if name in ("nsas", "nsas-replay", "nsas-random"):
        archive = NoveltyArchive(space, capacity=archive_size, pool_size=pool_size, candidates=candidates,
                                 k=k, policy="random" if name == "nsas-random" else "novelty", seed=seed,
                                 max_age=archive_max_age)
        objective = NSASObjective(archive, beta=beta, replay=replay if name == "nsas-replay" else None,
                                  every=constraint_every, slices=constraint_slices, normalize=normalize_loss)
        objective.name = name
        return objective
    raise NsasError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
