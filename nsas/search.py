"""`nsas search`: train a weight-sharing supernet, then select architectures.

The step, top to bottom (docs/METHOD.md §3)::

    sample = strategy.sample()                        # path to compute + discrete arch
    objective.observe(sample.arch)                    # recent pool + archive (Algorithm 1)
    losses = objective.backward(supernet, sample.path, batch)   # CE + beta * mean CE(archive)
    clip_grad_norm_(...); optimizer.step()
    strategy.arch_step(supernet, val_batch)           # GDAS only: alpha on the validation half

Text (darts-rnn): a step trains on the next window of ``bptt`` tokens of the
training text. By default every step starts from a zero hidden state, so no
state computed by one architecture enters another's loss; ``carry_state``
starts each step from the state the previous step's architecture ended with,
as the RandomNAS and DARTS code do (the leak included; ``bench/rnn_state.py``
measures both). GDAS's architecture step on the validation text always starts
from zeros. Scores (probes, selection) run each architecture through the
first ``eval_batches`` validation windows of ``eval_batch_size`` columns in
order, carrying that architecture's own state (:func:`nsas.evaluate.path_outputs`).

Run it with no arguments for the quick preset (NAS-Bench-201 space, RandomNAS
with the NSAS loss, a small supernet, the embedded cifar10-mini data set).

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

import argparse
import dataclasses
import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nsas import distributed
from nsas.checkpoint import check_same_config, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from nsas.config import (add_config_flag, add_config_flags, build_config, config_to_dict,
                         default_repr, flag_name, print_config, read_yaml, write_yaml)
from nsas.correlate import kendall_tau
from nsas.errors import CheckpointError, NsasError, TrainingError
from nsas.evaluate import rank_key, rank_value, score_archs
from nsas.objectives import build_objective
from nsas.rundir import check_new_run, default_run_dir, progress_bar, run_directory, setup_logging, write_json
from nsas.spaces import get_space, space_names
from nsas.spaces.base import Architecture, SearchSpace
from nsas.strategies import build_strategy
from nsas.truth import read_arch_file, read_truth, stratified_sample
from nsas.search_config import DEFAULT_PRESET, PRESETS, SearchConfig, paper_preset, preset_values, quick_preset
# re-exported: rank, study, the benchmarks and callers import them from here
from nsas.search_data import (SearchData, build_search_data, build_supernet, caller_data,  # noqa: F401
                              cycle_batches, fixed_batches, load_search_run)
from nsas.threads import add_threads_flag, apply_threads
from nsas.tracking import open_metrics
from nsas.device import resolve_device  # noqa: F401  (re-exported: nsas.search.resolve_device)
from nsas.selection import arch_cost, within_budget


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
            supernet = build_supernet(cfg, self.data.num_classes)
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
        self.strategy = build_strategy(cfg.strategy, self.space, seed=cfg.seed, device=self.device,
                                       **self._strategy_options())
        self.objective = build_objective(cfg.loss, self.space, archive_size=cfg.archive_size,
                                         pool_size=cfg.pool_size, candidates=cfg.candidates, k=cfg.knn,
                                         beta=cfg.beta, replay=cfg.replay, wpl_strength=cfg.wpl_strength,
                                         wpl_window=cfg.wpl_window or self.steps_per_epoch,
                                         seed=cfg.seed + 3, archive_max_age=cfg.archive_max_age,
                                         constraint_every=cfg.constraint_every,
                                         constraint_slices=cfg.constraint_slices, normalize_loss=cfg.normalize_loss,
                                         shared_batch=cfg.shared_batch, archive_forgetting=cfg.archive_forgetting,
                                         criterion=criterion)
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

    def _strategy_options(self) -> dict[str, Any]:
        c = self.cfg
        if c.strategy == "random":
            return dict(sampling=c.sampling)
        if c.strategy != "gdas":
            return {}
        return dict(tau_max=c.tau_max, tau_min=c.tau_min, lr=c.arch_lr, weight_decay=c.arch_weight_decay)

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
            "rng": rng_state(),
            "hidden": self.hidden,
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
                          free=("device", "consistency_every", "tensorboard"))  # these may change between resumes
        try:
            self.supernet.load_state_dict(state["supernet"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.strategy.load_state_dict(state["strategy"])
            self.objective.load_state_dict(state["objective"])
            set_rng_state(state["rng"])
            self.epoch, self.step, self.global_step = state["epoch"], state["step"], state["global_step"]
            self.passes, self.elapsed = state["passes"], state["elapsed"]
            self.hidden = state.get("hidden")  # absent in checkpoints written before carry_state existed
            if self.hidden is not None and self.world > 1:
                self.hidden = distributed.shard((self.hidden,), self.rank, self.world)[0].clone()
        except (KeyError, RuntimeError, ValueError, TypeError) as err:
            raise CheckpointError(f"checkpoint {path} does not fit this run: {str(err).splitlines()[0][:200]}") from None

    # ---- training ------------------------------------------------------
    def train(self) -> None:
        """Train the supernet from the current state to the last epoch."""
        cfg = self.cfg
        # strategies with architecture parameters (GDAS) train them on the validation half
        val_stream = cycle_batches(self.data.val, self.global_step) if self.strategy.parameters() else None
        total_steps = cfg.epochs * self.steps_per_epoch
        bar = progress_bar(total_steps, self.global_step, enabled=self.progress)
        while self.epoch < cfg.epochs:
            self.strategy.set_progress(self.epoch, cfg.epochs)
            window_start, window_images = time.perf_counter(), 0
            if self.step == 0:
                self.hidden = None  # carry_state: every epoch starts from a zero state, as in DARTS
            batches = self.data.train.epoch(self.epoch, start=self.step)
            for batch in batches:
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
            self.end_epoch()
        bar.close()

    def local_part(self, batch: Any) -> Any:
        """This rank's contiguous slice of a global batch (images: along dim 0; text (T, B): dim 1)."""
        return distributed.shard(batch, self.rank, self.world, dim=1 if self.space.kind == "text" else 0)

    def train_step(self, batch: Any, val_stream: Iterator[Any] | None) -> dict[str, Any]:
        """One supernet step (docs/METHOD.md §3); returns its metrics record."""
        sample = self.strategy.sample()
        self.objective.observe(sample.arch)
        if not self.supernet.training:  # .train() walks thousands of modules; evaluation restores the mode
            self.supernet.train()
        self.optimizer.zero_grad(set_to_none=True)
        # self.model is the supernet, or its DistributedDataParallel wrapper under torchrun.
        part = self.local_part(batch)
        if self.carry:
            if self.hidden is None:
                self.hidden = self.supernet.init_hidden(part[0].size(1))
            losses = self.objective.backward(self.model, sample.path, part, sample.edge_weights,
                                             chunks=self.chunks, hidden=self.hidden)
            self.hidden = losses.hidden
        else:  # registered objectives need not know ``hidden``
            losses = self.objective.backward(self.model, sample.path, part, sample.edge_weights, chunks=self.chunks)
        if self.world > 1:  # the logged losses (and the NaN stop) are the global batch's, on every rank
            cur, arc, total = distributed.mean_floats(
                [losses.current, losses.archive or 0.0, losses.total], self.device)
            losses = dataclasses.replace(losses, current=cur, total=total,
                                         archive=None if losses.archive is None else arc)
        if not math.isfinite(losses.total):
            raise TrainingError(
                f"the loss became {losses.total} at epoch {self.epoch + 1}, step {self.step + 1} "
                f"(architecture {sample.arch}); the run stopped and the last good checkpoint "
                f"{self.checkpoint_path} is intact; try a lower --lr or --grad-clip")
        if self.cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip)
        self.optimizer.step()
        self.objective.after_step(self.supernet)
        self.passes += losses.passes
        record: dict[str, Any] = {
            "kind": "step", "step": self.global_step + 1, "epoch": self.epoch + 1,
            "loss": losses.current, "archive_loss": losses.archive, "total_loss": losses.total,
            "passes": self.passes, "lr": self.optimizer.param_groups[0]["lr"], "arch": str(sample.arch),
        }
        archive = self.objective.archive
        if archive is not None:
            record["archive_diversity"] = archive.diversity()
        if val_stream is not None:
            val_batch = next(val_stream)
            record.update(self.strategy.arch_step(self.supernet, self.local_part(val_batch), chunks=self.chunks))
            if hasattr(self.strategy, "tau"):
                record["tau"] = self.strategy.tau
            self.passes += 1  # GDAS's architecture step is one more single-path pass
            record["passes"] = self.passes
        return record

    def check_consistency(self, arch: str) -> None:
        """Stop with an error naming the ranks whose state differs from rank 0's."""
        archive = self.objective.archive
        alphas = [float(a.detach().double().sum()) for a in self.strategy.parameters()]
        fingerprint = (self.global_step, arch, [str(a) for a in archive.members] if archive else [],
                       [str(a) for a in archive.pool] if archive else [], distributed.weight_checksum(self.supernet),
                       alphas)
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
        accuracy (a tie goes to the lower loss) or the loss alone.
        """
        rank = lambda r: rank_key(r, self.cfg.rank_by, self.space.kind)  # noqa: E731  (best first)
        if callable(getattr(self.strategy, "final", None)):  # GDAS: the argmax of alpha
            if self.cfg.max_params or self.cfg.max_macs:
                self.log.warning("max_params/max_macs restrict RandomNAS selection only; %s keeps its argmax",
                                 self.cfg.strategy)
            return [{**self.score([self.strategy.final()])[0], "round": 0}]
        pool = read_arch_file(self.cfg.select_from, self.space)[0] if self.cfg.select_from else None
        if pool is not None and (self.cfg.max_params or self.cfg.max_macs):
            pool = [a for a in pool if self.within_budget(a)]
            if not pool:
                raise NsasError(f"no architecture of {self.cfg.select_from} is within max_params "
                                f"{self.cfg.max_params} / max_macs {self.cfg.max_macs}")
        rng = random.Random(f"select-{self.cfg.seed}")
        winners = []
        for round_ in range(self.cfg.select_rounds):
            if pool is None:
                archs = [self.sample_within_budget(rng) for _ in range(self.cfg.select_samples)]
            else:
                archs = rng.sample(pool, min(self.cfg.select_samples, len(pool)))
            scored = [{**row, "round": round_ + 1} for row in self.score(archs)]
            winners.append(min(scored, key=rank))
        return sorted(winners, key=rank)

    def within_budget(self, arch: Architecture) -> bool:
        """Whether ``arch``'s stand-alone network fits ``max_params`` / ``max_macs``."""
        return within_budget(arch_cost(self.space, arch), self.cfg.max_params, self.cfg.max_macs)

    def sample_within_budget(self, rng: random.Random, tries: int = 1000) -> Architecture:
        """A random architecture within ``max_params`` / ``max_macs`` (any, without a budget)."""
        if not (self.cfg.max_params or self.cfg.max_macs):
            return self.space.sample(rng)
        for _ in range(tries):
            arch = self.space.sample(rng)
            if self.within_budget(arch):
                return arch
        raise NsasError(f"no architecture within max_params {self.cfg.max_params} / max_macs "
                        f"{self.cfg.max_macs} among {tries} random ones; relax the budget")

    def finish(self) -> list[dict[str, Any]]:
        """Select, and write the selected architectures and the archive."""
        selected = self.select()
        if not self.main:  # every rank selected the same architectures; rank 0 writes them
            return selected
        write_json(self.run_dir / "selected.json", selected)
        archive = self.objective.archive
        write_json(self.run_dir / "archive.json", {
            "members": [str(a) for a in archive.members] if archive else [],
            "pool": [str(a) for a in archive.pool] if archive else [],
            "diversity": archive.diversity() if archive else None,
        })
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
        self.metrics = open_metrics(self.run_dir, resume_step=self.global_step if resume else None,
                                    enabled=self.main, tensorboard=self.cfg.tensorboard)
        try:
            self.train()
            return self.finish()
        finally:
            if self.cfg.tensorboard:
                self.metrics.close()



def _read_selected(path: Path) -> list[dict[str, Any]]:
    """The selected architectures a finished run wrote."""
    import json

    try:
        selected = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise NsasError(f"{path} is unreadable ({err}); delete it to select again with --resume") from None
    if not isinstance(selected, list) or not all(isinstance(r, dict) and "arch" in r for r in selected):
        raise NsasError(f"{path} is not a list of selected architectures; delete it to select again with --resume")
    return selected


def local_micro_batches(cfg: SearchConfig, world: int) -> int:
    """Micro-batches each of ``world`` processes runs per step (the global batch splits into world x that)."""
    if cfg.micro_batches and cfg.micro_batches % world:
        raise NsasError(f"micro_batches {cfg.micro_batches} must be a multiple of the number of processes ({world})")
    chunks = cfg.micro_batches // world if cfg.micro_batches else 1
    if cfg.batch_size % (world * chunks):
        raise NsasError(f"batch_size {cfg.batch_size} cannot be split into {world} processes x {chunks} "
                        "micro-batches; choose a divisible batch size")
    return chunks


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


@dataclass
class SearchResult:
    """What :func:`search` returns (the run directory holds the same, as files)."""

    run_dir: Path
    config: SearchConfig
    selected: list[dict[str, Any]]  # the selected architectures, best first: {"arch", "round", "acc", "loss"}
    archive: list[str]  # the final archive members (empty without an archive)
    steps: int  # supernet steps trained
    passes: int  # single-path forward/backward passes (the cost measure)
    supernet: nn.Module  # the trained supernet (unwrapped)

    @property
    def best(self) -> str:
        """The canonical string of the best selected architecture."""
        return self.selected[0]["arch"]


def search(cfg: SearchConfig | None = None, run_dir: str | Path | None = None, *, resume: bool = False,
           progress: bool = True, force: bool = False, **components: Any) -> SearchResult:
    """Library entry point: run (or resume) a search; ``nsas.search(...)`` is this function.

    Args:
        cfg: the config (default: ``SearchConfig.preset("quick")``).
        run_dir: the run directory (default: a new ``runs/search-...-<time>``).
        resume: continue the run in ``run_dir`` from its checkpoint (pass the same components).
        progress: show a progress bar and console log.
        force: start over in a ``run_dir`` that holds an earlier run's results (deleting them); without it
            such a folder is refused (``nsas.rundir.run_directory``, which also locks it for the run).
        **components: optional replacements for what the config's strings build: ``dataset``,
            ``train_data``, ``val_data``, ``num_classes``, ``supernet``, ``criterion``, ``optimizer``,
            ``scheduler``, ``callbacks`` (see :class:`Search`).

    Returns:
        The selected architectures, the archive, the cost and the trained supernet.
    """
    cfg = cfg if cfg is not None else SearchConfig.preset("quick")
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(f"search-{cfg.space}-{cfg.strategy}-{cfg.loss}")
    with run_directory(run_dir, resume=resume, force=force):  # rank 0 locks it for the whole run
        if distributed.is_main():
            write_yaml(run_dir / "config.yaml", config_to_dict(cfg))
        distributed.barrier()
        run = Search(cfg, run_dir, progress=progress, **components)
        selected = run.run(resume=resume)
    archive = run.objective.archive
    return SearchResult(run_dir=run_dir, config=cfg, selected=selected,
                        archive=[str(a) for a in archive.members] if archive else [], steps=run.global_step,
                        passes=run.passes, supernet=run.supernet)


# ---- command line ----------------------------------------------------------
RESUME_KEYS = ("device", "consistency_every", "tensorboard")  # keys --resume lets a user change


def _default_text(key: str, default: Any) -> str:
    """The default a flag's help shows: the dataclass default, or the preset's when a preset sets the key."""
    if any(key in PRESETS[name]("nb201", "random") for name in PRESETS) or any(
            key in preset(space, "random") for preset in (quick_preset, paper_preset) for space in space_names()):
        text = f"default: from --preset; quick on nb201: {default_repr(quick_preset('nb201', 'random').get(key, default))}"
        if key == "epochs":  # the quick preset keeps its passes: a costlier step gets fewer epochs
            text += f", with --loss nsas {quick_preset('nb201', 'random', {'loss': 'nsas'})['epochs']}"
        return text
    return f"default: {default_repr(default)}"


def configure(parser: argparse.ArgumentParser) -> None:
    """Flags of `nsas search`: one per SearchConfig key, plus the preset, run directory and resume."""
    parser.description = (
        "Train a weight-sharing supernet and select architectures. Settings: the preset (--preset; default "
        "quick), then --config FILE.yaml, then flags. The quick preset is the paper's settings for the chosen "
        "--space and --strategy with a small supernet, few epochs (nb201 with RandomNAS: "
        f"{quick_preset('nb201', 'random')['epochs']} epochs of ce, fewer for a loss whose step costs more "
        "passes) and a short selection (image spaces on the "
        "embedded cifar10-mini data set); --preset paper is the paper's settings (e.g. 50 epochs, 240 for GDAS "
        "on the DARTS spaces); --preset nb201-cpu is the ranking benchmark's nb201 search on CIFAR-10, sized for "
        "a 2-core CPU. Choosing --space or --dataset never changes the preset. --print-config shows "
        "the resolved settings.")
    parser.add_argument("--preset", choices=tuple(PRESETS), default=None,
                        help=f"base settings, overridden by --config and flags (default: {DEFAULT_PRESET})")
    add_config_flag(parser)
    add_config_flags(parser, SearchConfig, default_text=_default_text)
    parser.add_argument("--out", default=None, help="run directory (default runs/search-<space>-...-<time>)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its last checkpoint (config from its config.yaml)")
    parser.add_argument("--force", action="store_true",
                        help="start a new run in an --out that holds an earlier run's results, deleting them")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or console log")
    add_threads_flag(parser)


def resolve(args: argparse.Namespace) -> SearchConfig:
    """Config from preset < YAML < flags (the preset: ``--preset``, else quick)."""
    names = {f.name for f in dataclasses.fields(SearchConfig)}
    flags = {k: v for k, v in vars(args).items() if k in names}
    yaml_values = read_yaml(args.config) if args.config else {}
    chosen = {**yaml_values, **flags}
    values = {**preset_values(getattr(args, "preset", None) or DEFAULT_PRESET, chosen), **chosen}
    return build_config(SearchConfig, values, source=f"config file {args.config}" if args.config else "search")


def _resume_config(args: argparse.Namespace, run_dir: Path) -> SearchConfig:
    """The recorded config of the run to continue (only --device, --consistency-every and --tensorboard may change)."""
    names = {f.name for f in dataclasses.fields(SearchConfig)}
    given = sorted(k for k in vars(args) if k in names and k not in RESUME_KEYS)
    if given or args.config or args.preset:
        flag = "--config" if args.config else "--preset" if args.preset else flag_name(given[0])
        raise NsasError(f"--resume continues with the run's own config.yaml; {flag} cannot change it "
                        "(only --device, --consistency-every and --tensorboard may be given)")
    values = read_yaml(run_dir / "config.yaml")
    for key in RESUME_KEYS:
        if hasattr(args, key):
            values[key] = getattr(args, key)
    return build_config(SearchConfig, values, source=f"{run_dir / 'config.yaml'}")


def run(args: argparse.Namespace) -> int:
    """`nsas search`."""
    apply_threads(getattr(args, "threads", None))
    if args.resume:
        if not args.out:
            raise NsasError("--resume needs --out RUN_DIR (the run to continue)")
        run_dir = Path(args.out)
        check_new_run(run_dir, resume=True, force=args.force)
        cfg = _resume_config(args, run_dir)
        if args.print_config:
            print_config(cfg)
            return 0
        how = "resumed"
    else:
        cfg = resolve(args)
        if args.print_config:
            print_config(cfg)
            return 0
        run_dir = Path(args.out) if args.out else default_run_dir(f"search-{cfg.space}-{cfg.strategy}-{cfg.loss}")
        run_dir = Path(distributed.broadcast_object(str(run_dir)))  # the ranks' clocks may differ
        check_new_run(run_dir, force=args.force)  # before the work; checked again under the run's lock
        how = f"preset {args.preset or DEFAULT_PRESET}"
    print(f"nsas search: {cfg.space} / {cfg.strategy} / {cfg.loss} on {cfg.dataset}, "
          f"{cfg.epochs} epoch{'s' * (cfg.epochs != 1)} ({how}) -> {run_dir}")
    selected = search(cfg, run_dir, resume=args.resume, progress=not args.quiet, force=args.force).selected
    if get_space(cfg.space).kind == "text":
        print("selected architectures, best first (validation loss with inherited weights):")
        for row in selected:
            print(f"  {row['loss']:8.3f}  {row['arch']}")
    else:
        print(f"selected architectures, best first by {'loss' if cfg.rank_by == 'loss' else 'accuracy'} "
              "(validation accuracy and loss with inherited weights):")
        for row in selected:
            print(f"  {row['acc']:7.2f}%  loss {row['loss']:.4f}  {row['arch']}")
    print(f"run directory: {run_dir}")
    return 0


import nsas as _nsas  # noqa: E402

_nsas._make_callable(__name__)  # nsas.search(...) calls search() above
