"""The search run: :class:`Search` trains a weight-sharing supernet, probes it, and selects architectures.

The loop (:meth:`Search.train`) runs epochs of supernet steps (the step itself: ``nsas/step.py``), probes
the fixed probe architectures at the end of every epoch, writes ``metrics.jsonl`` and a checkpoint that
resumes exactly. Selection (:meth:`Search.select`) scores random architectures with inherited weights
(RandomNAS) or takes the argmax of alpha (GDAS); budgets are ``nsas.selection``'s. ``nsas.search``
holds the library function :func:`nsas.search.search` and the command line around this class.
(Why ~500 lines: one class whose methods share one run's state: its checkpoint, its loop, probes and
selection; the step, the candidates, the fusion and the data already live in their own modules.)

Text (darts-rnn): a step trains on the next window of ``bptt`` tokens of the
training text. By default every step starts from a zero hidden state, so no
state computed by one architecture enters another's loss; ``carry_state``
starts each step from the state the previous step's architecture ended with,
as the RandomNAS and DARTS code do (the leak included; ``bench/rnn_state.py``
measures both). GDAS's architecture step on the validation text always starts
from zeros. Scores (probes, selection) run each architecture through the
first ``eval_batches`` validation windows of ``eval_batch_size`` columns in
order, carrying that architecture's own state (:func:`nsas.evaluate.path_outputs`).

Data parallel (``torchrun --nproc-per-node N -m nsas search ...``, see
nsas/distributed.py): every rank samples the same architecture, keeps the same
archive, pool and GDAS alphas, and takes its contiguous slice of the same
global batch (``batch_size``); the supernet is wrapped in
DistributedDataParallel and each step's 1 + M backward passes accumulate
locally under ``no_sync()`` until the last one, which averages the gradients
over the ranks. Only rank 0 writes the run directory; every rank reads the
checkpoint on resume. Every ``consistency_every`` steps the ranks compare a
digest of (step, architecture, archive, weights) and stop if they differ.

BatchNorm caveat: the search networks normalise with the statistics of the
batch they see, so N processes compute what one process computes when it
splits each global batch into N micro-batches and averages their gradients,
not what it computes on the whole batch. ``micro_batches`` makes that
explicit: the global batch is split into ``micro_batches`` contiguous
micro-batches (shared out among the processes; 0 means one per process). With
a fixed ``micro_batches`` (a multiple of every process count used), the run
computes the same thing with 1, 2, ... processes, so a checkpoint resumes with
another process count and continues as the uninterrupted run would (up to
floating-point summation order).
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import replace
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nsas import distributed
from nsas.checkpoint import check_same_config, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from nsas.config import config_to_dict
from nsas.rankstats import kendall_tau
from nsas.device import resolve_device
from nsas.errors import CheckpointError, NsasError
from nsas.evaluate import rank_key, rank_value, score_archs
from nsas.few_shot import FewShotSupernet
from nsas.few_shot_parallel import SplitWorkers, train_split_epoch
from nsas.objectives import build_objective, nsas_options
from nsas.rundir import progress_bar, setup_logging, write_json
from nsas.search_config import SearchConfig
from nsas.search_data import build_search_data, build_supernet, caller_data, cycle_batches, fixed_batches
from nsas.selection import candidate_rounds, fuse_for_run
from nsas.spaces import get_space
from nsas.spaces.base import Architecture, SearchSpace
from nsas.step import local_micro_batches, local_part, supernet_step
from nsas.strategies import Strategy, build_strategy
from nsas.tracking import open_metrics
from nsas.truth import read_truth, stratified_sample


class Callback:
    """Hooks the search loop calls; subclass and override the ones you need (each default does nothing)."""

    def on_step_end(self, run: Search, record: dict[str, Any]) -> None:
        """After every optimizer step; ``record`` is the step's metrics (loss, arch, passes, lr, ...)."""

    def on_epoch_end(self, run: Search, epoch: int) -> None:
        """After epoch ``epoch`` (1-based) is probed, its scheduler step taken and its checkpoint written."""


OptimizerArg = torch.optim.Optimizer | Callable[[list[nn.Parameter]], torch.optim.Optimizer] | None
SchedulerArg = Any  # an LR scheduler, or a factory(optimizer) -> scheduler, or None


class Search:
    """One search run: supernet, strategy, objective, optimizer, and their state.

    Every keyword after ``progress`` is optional and replaces what ``cfg``'s
    strings would build (the run's config.yaml still records ``cfg``).

    Args:
        cfg: the resolved config.
        run_dir: where config, metrics, checkpoints and results go.
        progress: show a progress bar.
        dataset: an ImageDataset/TextDataset, or a torch ``Dataset`` of (x, y), instead of ``cfg.dataset``.
        train_data, val_data: DataLoaders (or lists) of (x, y) batches for the weights and validation halves.
        num_classes: output classes, when the data cannot tell (caller's loaders) and no supernet is given.
        supernet: a module with ``forward(x, path)`` (``edge_weights=`` too, for GDAS) instead of the space's.
        criterion: per-path loss ``criterion(logits (N, C), targets (N,))`` instead of cross-entropy.
        optimizer: an optimizer over the supernet's parameters, or a factory(parameters) -> optimizer
            (default: SGD with the config's lr, momentum and weight decay).
        scheduler: an LR scheduler stepped once per epoch, or a factory(optimizer) -> scheduler
            (default: cosine annealing to ``lr_min``).
        callbacks: objects with ``on_step_end`` / ``on_epoch_end`` (see :class:`Callback`).
    """

    def __init__(self, cfg: SearchConfig, run_dir: Path, *, progress: bool = True, dataset: Any = None,
                 train_data: Any = None, val_data: Any = None, num_classes: int | None = None,
                 supernet: nn.Module | None = None, criterion: Callable[..., torch.Tensor] | None = None,
                 optimizer: OptimizerArg = None, scheduler: SchedulerArg = None,
                 callbacks: Sequence[Callback] = ()) -> None:
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.rank, self.world, self.main = distributed.rank(), distributed.world_size(), distributed.is_main()
        self.progress = progress and self.main
        self.chunks = local_micro_batches(cfg, self.world)  # micro-batches of this process per step
        self.space: SearchSpace = get_space(cfg.space)
        self.device = resolve_device(cfg.device)
        torch.manual_seed(cfg.seed)
        if dataset is None and train_data is None and val_data is None:
            self.data = build_search_data(cfg, self.device)
        else:
            self.data = caller_data(cfg, self.device, dataset=dataset, train_data=train_data, val_data=val_data,
                                    num_classes=num_classes)
        self.num_classes = self.data.num_classes if supernet is None else num_classes
        if supernet is None:
            supernet = build_supernet(cfg, self.data.num_classes)  # few-shot: a FewShotSupernet already
        elif cfg.few_shot_edge is not None and not isinstance(supernet, FewShotSupernet):
            supernet = FewShotSupernet(supernet, self.space, cfg.few_shot_edge)
        self.supernet = supernet.to(self.device)
        self.callbacks = list(callbacks)
        self.model = distributed.wrap(self.supernet, self.device)  # DDP under torchrun, else the supernet
        self.params = list(self.supernet.parameters())  # walking ~1,400 DARTS tensors each step costs 2-3%
        self.steps_per_epoch = min(len(self.data.train), cfg.steps_per_epoch or len(self.data.train))
        if self.steps_per_epoch < 1:
            raise NsasError(f"data set {cfg.dataset!r} gives no full batch of {cfg.batch_size}")
        if optimizer is None:
            optimizer = torch.optim.SGD(self.params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        elif not isinstance(optimizer, torch.optim.Optimizer):
            optimizer = optimizer(self.params)
        self.optimizer = optimizer
        if scheduler is None:
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs, eta_min=cfg.lr_min)
        elif not hasattr(scheduler, "step"):
            scheduler = scheduler(optimizer)
        self.scheduler = scheduler
        self.strategy: Strategy = build_strategy(cfg.strategy, self.space, seed=cfg.seed, device=self.device,
                                       **self._strategy_options())
        self.criterion = criterion
        self.objective = self._build_objective(cfg.seed + 3)
        # few-shot with an archive per sub-supernet: the split's objectives (the warm-up uses self.objective)
        self.split_objectives: list[Any] = []
        if cfg.few_shot_edge is not None and cfg.few_shot_archive == "split" and self.objective.archive is not None:
            self.split_objectives = [self._build_objective(cfg.seed + 3 + 1000 * (k + 1))
                                     for k in range(len(self.supernet.subnets))]
        # archive_by size: one objective (and archive) per live parameter count, each made on first use
        self.size_objectives: dict[int, Any] = {}
        self._sizes: dict[Architecture, int] = {}
        self.split_epoch = round(cfg.few_shot_warmup * cfg.epochs)  # few-shot: the epoch that starts split
        self.constraint_epoch = round(cfg.constraint_after * cfg.epochs)  # the first epoch with NSAS constraints
        self.probe = self._probe_archs()
        self.eval_set = fixed_batches(self.data.score, cfg.eval_batches)
        self.epoch = self.step = self.global_step = 0  # next step to run
        self.passes = 0  # single-path forward/backward passes so far (the cost measure)
        self.carry = cfg.carry_state and self.space.kind == "text"
        if self.carry and not callable(getattr(self.supernet, "init_hidden", None)):
            raise NsasError("carry_state needs a recurrent supernet with init_hidden(batch_size) and "
                            "forward(x, path, hidden=..., return_hidden=True) (the darts-rnn one)")
        self.hidden: torch.Tensor | None = None  # carry_state: this rank's state (B, H) entering the next step
        self.elapsed = 0.0  # seconds of training, summed over resumes
        self.checkpoint_path = self.run_dir / "checkpoint.pt"
        self.log = setup_logging(self.run_dir if self.main else None, quiet=not self.progress)
        self._metrics: Any = None  # opened on first use (see the metrics property)
        self._resume_step: int | None = None  # set by load()
        # few_shot_workers: the processes that train the split's copies (checked now, started after the split)
        self.split_workers = SplitWorkers(self) if cfg.few_shot_workers > 1 else None

    def _build_objective(self, seed: int) -> Any:
        options = replace(nsas_options(self.cfg), wpl_window=self.cfg.wpl_window or self.steps_per_epoch)
        return build_objective(self.cfg.loss, self.space, options, seed=seed, criterion=self.criterion)

    def objectives(self) -> list[Any]:
        """Every objective of the run: its own, the few-shot splits' and the size classes' (ascending size)."""
        return [self.objective, *self.split_objectives, *(self.size_objectives[k] for k in sorted(self.size_objectives))]

    def size_objective(self, size: int) -> Any:
        """archive_by size: the objective of the cells with ``size`` live parameters (made on first use)."""
        if size not in self.size_objectives:
            objective = self._build_objective(self.cfg.seed + 3 + 7 * size)
            objective.constraints_on = self.epoch >= self.constraint_epoch
            self.size_objectives[size] = objective
        return self.size_objectives[size]

    @property
    def is_split(self) -> bool:
        """Few-shot: whether the supernet has been split into its sub-supernets."""
        return isinstance(self.supernet, FewShotSupernet) and bool(self.supernet.is_split)

    def archives(self) -> list[Any]:
        """The archives that constrain training now: one, one per sub-supernet (few-shot split), or none."""
        if self.split_objectives and self.is_split:
            return [o.archive for o in self.split_objectives]
        if self.size_objectives:
            return [self.size_objectives[k].archive for k in sorted(self.size_objectives)]
        return [self.objective.archive] if self.objective.archive is not None else []

    def _strategy_options(self) -> dict[str, Any]:
        """What every strategy is built with (each takes the ones it uses; a registered one gets them too)."""
        c = self.cfg
        return dict(sampling=c.sampling, tau_max=c.tau_max, tau_min=c.tau_min, lr=c.arch_lr,
                    weight_decay=c.arch_weight_decay)

    def _probe_archs(self) -> list[Architecture]:
        """The fixed probe set: ``probe``, else a stratified sample of ``probe_from``, else random architectures."""
        self.probe_truth: dict[str, float] = {}  # canonical arch -> truth (probe_from only)
        if self.cfg.probe:
            return [self.space.parse(s) for s in self.cfg.probe]
        if self.cfg.probe_from:
            _, values = read_truth(self.cfg.probe_from, self.cfg.probe_key, space=self.cfg.space)
            chosen = stratified_sample(values, self.cfg.probe_count, seed=f"probe-{self.cfg.seed}")
            self.probe_truth = {a: values[a] for a in chosen}
            return [self.space.parse(a) for a in chosen]
        rng = random.Random(f"probe-{self.cfg.seed}")
        return [self.space.sample(rng) for _ in range(self.cfg.probe_count)]

    # ---- checkpoints ---------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "config": config_to_dict(self.cfg),
            "epoch": self.epoch, "step": self.step, "global_step": self.global_step,
            "passes": self.passes, "elapsed": self.elapsed, "num_classes": self.num_classes,
            "supernet": self.supernet.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "strategy": self.strategy.state_dict(),
            "objective": self.objective.state_dict(),
            "split_objectives": [o.state_dict() for o in self.split_objectives],
            "size_objectives": {str(k): o.state_dict() for k, o in sorted(self.size_objectives.items())},
            "rng": rng_state(),
            "hidden": self.hidden,
            "data_fingerprint": self.data.fingerprint,
        }

    def save(self) -> None:
        state = self.state_dict()
        if self.world > 1 and self.hidden is not None:  # every column's carried state (all ranks take part)
            state["hidden"] = distributed.all_gather_tensor(self.hidden)
        if self.main:  # the other ranks hold the same state
            save_checkpoint(self.checkpoint_path, state, kind="search")

    def load(self, path: Path) -> None:
        """Restore everything from a checkpoint of a run with the same config (any number of processes)."""
        state = load_checkpoint(path, kind="search", map_location=self.device)
        defaults = config_to_dict(SearchConfig(space=self.cfg.space))  # keys added since the checkpoint was written
        check_same_config(path, {**defaults, **state.get("config", {})}, config_to_dict(self.cfg),
                          free=("device", "consistency_every", "tensorboard", "few_shot_workers"))  # free between resumes
        recorded, now = state.get("data_fingerprint"), self.data.fingerprint  # absent in older checkpoints
        if recorded is not None and now is not None and recorded != now:
            raise CheckpointError(f"the data set {self.cfg.dataset!r} is not the one {path} was trained on "
                                  f"(SHA-256 {now[:12]}... now, {recorded[:12]}... then); resume with that data, "
                                  "or start over with --force")
        try:
            self.supernet.load_state_dict(state["supernet"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.strategy.load_state_dict(state["strategy"])
            self.objective.load_state_dict(state["objective"])
            splits = state.get("split_objectives", [])  # absent before few-shot existed
            if len(splits) != len(self.split_objectives):
                raise ValueError(f"{len(splits)} split objectives in the checkpoint, {len(self.split_objectives)} here")
            for objective, split_state in zip(self.split_objectives, splits):
                objective.load_state_dict(split_state)
            sizes = state.get("size_objectives", {})  # absent before archive_by existed
            if sizes and self.cfg.archive_by != "size":
                raise ValueError("the checkpoint has an archive per size class, this run has one archive")
            self.size_objectives = {}
            for size, size_state in sizes.items():
                self.size_objective(int(size)).load_state_dict(size_state)
            set_rng_state(state["rng"])
            self.epoch, self.step, self.global_step = state["epoch"], state["step"], state["global_step"]
            self.passes, self.elapsed = state["passes"], state["elapsed"]
            self._resume_step = self.global_step  # metrics.jsonl keeps the records up to here
            self.hidden = state.get("hidden")  # absent in checkpoints written before carry_state existed
            if self.hidden is not None and self.world > 1:
                self.hidden = distributed.shard((self.hidden,), self.rank, self.world)[0].clone()
        except (KeyError, RuntimeError, ValueError, TypeError) as err:
            raise CheckpointError(f"checkpoint {path} does not fit this run: {str(err).splitlines()[0][:200]}") from None

    # ---- training ------------------------------------------------------
    @property
    def metrics(self) -> Any:
        """The run's metrics writer (metrics.jsonl, and TensorBoard if asked), opened on first use.

        After :meth:`load` it continues the file from the checkpoint's step (later lines are dropped).
        """
        if self._metrics is None:
            self._metrics = open_metrics(self.run_dir, resume_step=self._resume_step,
                                         enabled=self.main, tensorboard=self.cfg.tensorboard)
        return self._metrics

    @metrics.setter
    def metrics(self, writer: Any) -> None:
        self._metrics = writer

    def train(self, until_epoch: int | None = None) -> None:
        """Train the supernet from the current state to the end of epoch ``until_epoch`` (default: the last).

        The learning-rate schedule always spans ``cfg.epochs``, so stopping early gives a snapshot of the
        full run, and a later ``train()`` continues it.
        """
        cfg = self.cfg
        end = cfg.epochs if until_epoch is None else min(until_epoch, cfg.epochs)
        # strategies with architecture parameters (GDAS) train them on the validation half
        val_stream = cycle_batches(self.data.val, self.global_step) if self.strategy.parameters() else None
        total_steps = end * self.steps_per_epoch
        bar = progress_bar(total_steps, self.global_step, enabled=self.progress)
        if self.split_workers is not None and self.epoch < end:
            self.split_workers.start()  # now: the workers start up (import torch) while the warm-up trains
        try:
            while self.epoch < end:
                self.split_if_due()
                for objective in self.objectives():  # constraint_after: the late phase only
                    if hasattr(objective, "constraints_on"):
                        objective.constraints_on = self.epoch >= self.constraint_epoch
                self.strategy.set_progress(self.epoch, cfg.epochs)
                if self.step == 0:
                    self.hidden = None  # carry_state: every epoch starts from a zero state, as in DARTS
                if self.split_workers is not None and self.is_split:
                    train_split_epoch(self, self.split_workers, bar)  # the copies in parallel processes
                else:
                    self.train_epoch(bar, val_stream)
                self.end_epoch()
        finally:
            bar.close()
            if self.split_workers is not None:
                self.split_workers.close()

    def train_epoch(self, bar: Any, val_stream: Iterator[Any] | None) -> None:
        """The rest of the current epoch's steps, one after another in this process."""
        cfg = self.cfg
        window_start, window_images = time.perf_counter(), 0
        for batch in self.data.train.epoch(self.epoch, start=self.step):
            if self.step >= self.steps_per_epoch:
                break
            t0 = time.perf_counter()
            record = self.train_step(batch, val_stream)
            self.elapsed += time.perf_counter() - t0
            window_images += batch[1].numel()  # images, or tokens for text
            self.step += 1
            self.global_step += 1
            bar.update(1)
            bar.set_description(f"epoch {self.epoch + 1}/{cfg.epochs}")
            bar.set_postfix(loss=f"{record['loss']:.3f}", archive=_fmt(record.get("archive_loss")))
            if self.global_step % cfg.log_every == 0:
                now = time.perf_counter()
                unit = "tokens_per_s" if self.space.kind == "text" else "images_per_s"
                record[unit] = window_images / max(now - window_start, 1e-9)
                window_start, window_images = now, 0
                self.metrics.write(record)
            if cfg.probe_every and self.global_step % cfg.probe_every == 0:
                self.evaluate_probe()
            if cfg.checkpoint_every and self.global_step % cfg.checkpoint_every == 0:
                self.save()
            if self.world > 1 and cfg.consistency_every and self.global_step % cfg.consistency_every == 0:
                self.check_consistency(record["arch"])
            for callback in self.callbacks:
                callback.on_step_end(self, record)

    def local_part(self, batch: Any) -> Any:
        """This rank's contiguous slice of a global batch (:func:`nsas.step.local_part`)."""
        return local_part(batch, self.space.kind, self.rank, self.world)

    def train_step(self, batch: Any, val_stream: Iterator[Any] | None) -> dict[str, Any]:
        """One supernet step (:func:`nsas.step.supernet_step`); returns its metrics record."""
        return supernet_step(self, batch, val_stream)

    def objective_for(self, arch: Architecture) -> Any:
        """The objective that trains ``arch``: the run's one, its sub-supernet's (few-shot, split archives), or
        its size class's (archive_by size)."""
        if self.split_objectives and self.is_split:
            return self.split_objectives[self.supernet.route(arch)]
        if self.cfg.archive_by == "size" and self.objective.archive is not None:
            if arch not in self._sizes:
                self._sizes[arch] = self.space.parameter_count(self.space.live_arch(arch))
            return self.size_objective(self._sizes[arch])
        return self.objective

    def split_if_due(self) -> None:
        """Few-shot: split the supernet when the warm-up is over (idempotent; resumes keep the split)."""
        if isinstance(self.supernet, FewShotSupernet) and not self.is_split and self.epoch >= self.split_epoch:
            self.supernet.split(self.optimizer)
            self.log.info(f"few-shot: the supernet split on edge {self.cfg.few_shot_edge} into "
                          f"{len(self.supernet.subnets)} sub-supernets ({', '.join(self.supernet.options)}) "
                          f"after {self.epoch} warm-up epoch{'s' * (self.epoch != 1)}"
                          + (f"; {self.cfg.few_shot_workers} processes train them" if self.split_workers else ""))
            within = [k for k in ("probe_every", "checkpoint_every") if self.split_workers and getattr(self.cfg, k)]
            if within:  # the copies come together only at an epoch's end
                self.log.info(f"few-shot: {' and '.join(within)} act in the warm-up only; the parallel split epochs "
                              "are probed and checkpointed at their ends")

    def check_consistency(self, arch: str) -> None:
        """Stop with an error naming the ranks whose state differs from rank 0's."""
        archives = self.archives()
        alphas = [float(a.detach().double().sum()) for a in self.strategy.parameters()]
        fingerprint = (self.global_step, arch, [str(a) for archive in archives for a in archive.members],
                       [str(a) for archive in archives for a in archive.pool],
                       distributed.weight_checksum(self.supernet), alphas)
        distributed.check_consistent(f"step {self.global_step}", fingerprint)

    def end_epoch(self) -> None:
        """Probe, log and checkpoint at the end of an epoch."""
        probe = self.evaluate_probe()
        self.scheduler.step()
        self.epoch, self.step = self.epoch + 1, 0
        mean_acc = sum(p["acc"] for p in probe) / len(probe) if probe else float("nan")
        tau = f", Kendall tau {self.last_probe_tau:+.3f} vs {self.cfg.probe_from}" if self.probe_truth else ""
        self.log.info(f"epoch {self.epoch}/{self.cfg.epochs}: probe accuracy {mean_acc:.2f}%{tau} "
                      f"(passes {self.passes}, {self.elapsed:.0f}s)")
        self.save()
        for callback in self.callbacks:
            callback.on_epoch_end(self, self.epoch)

    def score(self, archs: list[Architecture]) -> list[dict[str, Any]]:
        """Inherited-weight accuracy and loss of ``archs`` on the fixed validation batches (batched scorer).

        With ``bn: recalibrate`` each architecture first gets BatchNorm
        statistics of its own from the first training batches. The training
        random streams are left untouched.
        """
        recalibrate = []
        if self.cfg.bn == "recalibrate":
            recalibrate = fixed_batches(self.data.train, self.cfg.recalibrate_batches)
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            return score_archs(self.supernet, archs, self.eval_set, recalibrate=recalibrate, seed=self.cfg.seed)

    def evaluate_probe(self) -> list[dict[str, Any]]:
        """Inherited-weight accuracy of the fixed probe architectures (the forgetting tracker).

        The record holds each probe's score (and truth, with ``probe_from``),
        their mean accuracy and, with a truth, Kendall tau-b of the accuracy
        against it.
        """
        results = self.score(self.probe)
        record: dict[str, Any] = {"kind": "probe", "step": self.global_step, "epoch": self.epoch + 1,
                                  "passes": self.passes, "probe": results,
                                  "probe_mean_acc": sum(r["acc"] for r in results) / len(results)}
        if self.probe_truth:
            for row in results:
                row["truth"] = self.probe_truth[row["arch"]]
            values = [rank_value(r, self.cfg.rank_by, self.space.kind) for r in results]
            self.last_probe_tau = kendall_tau(values, [r["truth"] for r in results])
            record["probe_tau"] = None if math.isnan(self.last_probe_tau) else self.last_probe_tau
        self.metrics.write(record)
        return results

    # ---- selection -----------------------------------------------------
    def select(self) -> list[dict[str, Any]]:
        """Final architecture(s): random search on the supernet (RandomNAS) or argmax (GDAS).

        RandomNAS: ``select_rounds`` rounds, each scoring ``select_samples``
        random architectures on the validation half with inherited weights and
        keeping the round's best; the winners are returned best first (retrain
        them: the best after retraining is the final answer). With
        ``select_from`` the candidates are drawn from the architectures of
        that file instead of the whole space. "Best" is ``rank_by``'s: the
        accuracy (a tie goes to the lower loss) or the loss alone; with ``select_by: fused`` it is the
        fused score (:meth:`fuse`) of the supernet's loss/accuracy and zero-cost proxies, fused over all
        the candidates, higher is better.
        """
        rank = lambda r: rank_key(r, self.cfg.rank_by, self.space.kind)  # noqa: E731  (best first)
        if callable(getattr(self.strategy, "final", None)):  # GDAS: the argmax of alpha
            if self.cfg.max_params or self.cfg.max_macs:
                self.log.warning("max_params/max_macs restrict RandomNAS selection only; %s keeps its argmax",
                                 self.cfg.strategy)
            return [{**self.score([self.strategy.final()])[0], "round": 0}]
        rounds = [[{**row, "round": i + 1} for row in self.score(archs)]
                  for i, archs in enumerate(candidate_rounds(self.cfg, self.space))]
        if self.cfg.select_by == "fused":  # the fused score over every candidate; higher is better
            fused = self.fuse([row for scored in rounds for row in scored])
            rounds = [fused[i * len(r):(i + 1) * len(r)] for i, r in enumerate(rounds)]
            rank = lambda r: (-r["score"],)  # noqa: E731
        return sorted((min(scored, key=rank) for scored in rounds), key=rank)

    def fuse(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``rows`` (supernet scores) with the proxies of ``fuse_weights`` and the fused ``score``
        (:func:`nsas.selection.fuse_for_run`)."""
        return fuse_for_run(self.cfg, self.space, rows, num_classes=self.data.num_classes, device=self.device)

    def finish(self) -> list[dict[str, Any]]:
        """Select, and write the selected architectures and the archive."""
        selected = self.select()
        if not self.main:  # every rank selected the same architectures; rank 0 writes them
            return selected
        write_json(self.run_dir / "selected.json", selected)
        archives = self.archives()
        record: dict[str, Any] = {
            "members": [str(a) for archive in archives for a in archive.members],
            "pool": [str(a) for archive in archives for a in archive.pool],
            "diversity": archives[0].diversity() if len(archives) == 1 else None,
        }
        if self.size_objectives:  # archive_by size: one archive per live parameter count
            record["sizes"] = [{"params": k, "members": [str(a) for a in o.archive.members],
                                "diversity": o.archive.diversity()} for k, o in sorted(self.size_objectives.items())]
        elif len(archives) > 1:  # few-shot: one archive per sub-supernet
            record["splits"] = [{"op": op, "members": [str(a) for a in archive.members],
                                 "diversity": archive.diversity()}
                                for op, archive in zip(self.supernet.options, archives)]
        write_json(self.run_dir / "archive.json", record)
        write_json(self.run_dir / "summary.json", {
            "space": self.cfg.space, "strategy": self.cfg.strategy, "loss": self.cfg.loss,
            "steps": self.global_step, "passes": self.passes, "train_seconds": self.elapsed,
            "best": selected[0]["arch"],
        })
        return selected

    def run(self, *, resume: bool = False) -> list[dict[str, Any]]:
        """Train (resuming from the run directory's checkpoint if asked), then select."""
        if resume:
            self.load(self.checkpoint_path)
            finished = self.epoch >= self.cfg.epochs
            if finished and (self.run_dir / "selected.json").is_file():  # nothing left to do: not even selection
                self.log.info(f"{self.run_dir} finished training ({self.epoch}/{self.cfg.epochs} epochs) and its "
                              "selection; nothing to resume (selected.json stands)")
                return _read_selected(self.run_dir / "selected.json")
            self.log.info(f"resumed from {self.checkpoint_path} after training ({self.epoch}/{self.cfg.epochs} "
                          "epochs): selecting"
                          if finished else
                          f"resumed from {self.checkpoint_path} at epoch {self.epoch + 1}, step {self.step}")
        try:
            self.train()
            return self.finish()
        finally:
            if self.cfg.tensorboard and self._metrics is not None:
                self._metrics.close()


def _read_selected(path: Path) -> list[dict[str, Any]]:
    """The selected architectures a finished run wrote."""
    try:
        selected = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise NsasError(f"{path} is unreadable ({err}); delete it to select again with --resume") from None
    if not isinstance(selected, list) or not all(isinstance(r, dict) and "arch" in r for r in selected):
        raise NsasError(f"{path} is not a list of selected architectures; delete it to select again with --resume")
    return selected


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
