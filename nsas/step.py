"""The supernet step: the one place that cuts a batch and calls the objective.

One step of a search, top to bottom (:func:`supernet_step`; docs/METHOD.md §3)::

    sample = strategy.sample()                        # path to compute + discrete architecture
    objective.observe(sample.arch)                    # recent pool + archive (Algorithm 1)
    losses = objective.backward(model, sample.path, part)   # CE(a_t) + beta * mean CE(archive), one path at a time
    clip_grad_norm_(...); optimizer.step()
    objective.after_step(supernet)                    # WPL's anchors / Fisher window; nothing for the others
    strategy.arch_step(supernet, val_part)            # GDAS only: alpha on the validation half

How a batch is divided: the global batch of ``batch_size`` is first cut into
this process's contiguous slice (:func:`local_part`, one slice per DDP rank),
and the objective then runs that slice as ``chunks`` micro-batches
(:func:`local_micro_batches`) and, for ``constraint_slices``, one slice per
archive member (``nsas.passes``, ``run_passes``). With few-shot supernets
(``nsas.few_shot``) the model routes every path to its own sub-supernet; the
step itself is unchanged, only the objective is the sampled split's (and with
``few_shot_workers`` the split's steps run in several processes, each on the
copies it owns: ``nsas.few_shot_parallel``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import nn

from nsas import distributed
from nsas.errors import NsasError, TrainingError

if TYPE_CHECKING:  # type-only
    from nsas.objectives import Objective
    from nsas.search_config import SearchConfig
    from nsas.spaces.base import Architecture, SearchSpace
    from nsas.strategies import Sample, Strategy


class StepRun(Protocol):
    """What a step reads and advances: :class:`nsas.searcher.Search` is one."""

    cfg: SearchConfig
    strategy: Strategy
    space: SearchSpace
    supernet: nn.Module
    model: nn.Module  # the supernet, or its DistributedDataParallel wrapper
    optimizer: torch.optim.Optimizer
    params: list[nn.Parameter]
    device: torch.device
    rank: int
    world: int
    chunks: int
    carry: bool
    hidden: torch.Tensor | None
    passes: int
    epoch: int
    step: int
    global_step: int
    checkpoint_path: Path

    def objective_for(self, arch: Architecture) -> Objective: ...


def local_micro_batches(cfg: SearchConfig, world: int) -> int:
    """Micro-batches each of ``world`` processes runs per step (the global batch splits into world x that)."""
    if cfg.micro_batches and cfg.micro_batches % world:
        raise NsasError(f"micro_batches {cfg.micro_batches} must be a multiple of the number of processes ({world})")
    chunks = cfg.micro_batches // world if cfg.micro_batches else 1
    if cfg.batch_size % (world * chunks):
        raise NsasError(f"batch_size {cfg.batch_size} cannot be split into {world} processes x {chunks} "
                        "micro-batches; choose a divisible batch size")
    return chunks


def local_part(batch: Any, kind: str, rank: int, world: int) -> Any:
    """This rank's contiguous slice of a global batch (images: along dim 0; text (T, B): dim 1)."""
    return distributed.shard(batch, rank, world, dim=1 if kind == "text" else 0)


def supernet_step(run: StepRun, batch: Any, val_stream: Iterator[Any] | None,
                  sample: Sample | None = None) -> dict[str, Any]:
    """One supernet step of the search ``run`` on the global ``batch``; returns its metrics record.

    ``run`` holds the strategy, the objective(s), the supernet (``run.model`` is it, or its
    DistributedDataParallel wrapper under torchrun), the optimizer and the counters the step advances
    (``passes``; ``hidden`` with ``carry_state``). ``sample``: the step's architecture, when it was drawn
    from the strategy already (parallel few-shot splits, ``nsas.few_shot_parallel``).
    """
    if sample is None:
        sample = run.strategy.sample()
    objective = run.objective_for(sample.arch)  # the run's objective; few-shot: the sampled split's
    objective.observe(sample.arch)
    if not run.supernet.training:  # .train() walks thousands of modules; evaluation restores the mode
        run.supernet.train()
    run.optimizer.zero_grad(set_to_none=True)
    part = local_part(batch, run.space.kind, run.rank, run.world)
    if run.carry:
        if run.hidden is None:
            run.hidden = run.supernet.init_hidden(part[0].size(1))
        losses = objective.backward(run.model, sample.path, part, sample.edge_weights,
                                    chunks=run.chunks, hidden=run.hidden)
        run.hidden = losses.hidden
    else:  # registered objectives need not know ``hidden``
        losses = objective.backward(run.model, sample.path, part, sample.edge_weights, chunks=run.chunks)
    if run.world > 1:  # the logged losses (and the NaN stop) are the global batch's, on every rank
        cur, arc, total = distributed.mean_floats([losses.current, losses.archive or 0.0, losses.total], run.device)
        losses = dataclasses.replace(losses, current=cur, total=total, archive=None if losses.archive is None else arc)
    if not math.isfinite(losses.total):
        raise TrainingError(
            f"the loss became {losses.total} at epoch {run.epoch + 1}, step {run.step + 1} "
            f"(architecture {sample.arch}); the run stopped and the last good checkpoint "
            f"{run.checkpoint_path} is intact; try a lower --lr or --grad-clip")
    if run.cfg.grad_clip > 0:
        nn.utils.clip_grad_norm_(run.params, run.cfg.grad_clip)
    run.optimizer.step()
    objective.after_step(run.supernet)
    run.passes += losses.passes
    record: dict[str, Any] = {
        "kind": "step", "step": run.global_step + 1, "epoch": run.epoch + 1,
        "loss": losses.current, "archive_loss": losses.archive, "total_loss": losses.total,
        "passes": run.passes, "lr": run.optimizer.param_groups[0]["lr"], "arch": str(sample.arch),
    }
    if objective.archive is not None:
        record["archive_diversity"] = objective.archive.diversity()
    if val_stream is not None:
        val_part = local_part(next(val_stream), run.space.kind, run.rank, run.world)
        record.update(run.strategy.arch_step(run.supernet, val_part, chunks=run.chunks))  # GDAS: arch_loss, tau
        run.passes += 1  # GDAS's architecture step is one more single-path pass
        record["passes"] = run.passes
    return record
