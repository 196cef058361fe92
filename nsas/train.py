"""`nsas train`: train one architecture stand-alone from scratch (the ground truth).

(Why ~560 lines: the Trainer, its image and text steps and its library function and CLI; the settings,
recipes and learning-rate schedule are ``nsas/train_config.py``.)

    nsas train "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|" \\
        --recipe proxy --dataset cifar10-mini --out runs/t1
    nsas train runs/search-darts-random-nsas-... --recipe paper --out runs/retrain   # the search's best
    nsas train @genotype.txt --space darts-rnn --recipe proxy --epochs 20 --out runs/t2

One step, top to bottom::

    images: logits, aux = net(x)                  # aux only with the auxiliary head, in training
            loss = CE(logits) + w_aux * CE(aux)
    text:   x: a window of bptt tokens (random length around bptt with random_bptt; lr x length / bptt)
            logits, hidden, h, h_dropped = net(x, hidden.detach())  # state carried across windows
            loss = CE(logits) + ar_alpha * mean(h_dropped^2) + tar_beta * mean((h[t+1] - h[t])^2)
    clip_grad_norm_(...); optimizer.step()        # SGD; text switches to ASGD when validation stalls

Settings come from a recipe (``nsas/recipes/<family>-<recipe>.yaml``; family
``cifar`` for darts spaces, ``nb201``, ``ptb`` for darts-rnn), then
``--config``, then flags. The learning rate is a pure function of the epoch
(cosine or constant; text scales it by the window length), so a checkpoint needs no scheduler state: model,
optimizer, counters, running sums, the carried hidden state and the RNG states
make a resumed run bit-identical to an uninterrupted one (on CPU).

Data parallel (``torchrun --nproc-per-node N -m nsas train ...``): the network
is wrapped in DistributedDataParallel and each rank trains on its contiguous
slice of the same global batch (``batch_size``); evaluation runs on every rank
(the same weights give the same scores) and rank 0 writes the run directory.
Rank 0 alone decides the switch to ASGD and broadcasts it; before every
checkpoint the ranks compare (step, optimizer, weights checksum) and stop,
naming the rank that differs, if they disagree. The checkpoint holds global state (summed running sums, the text hidden state
of every batch column), so a run resumes with another number of processes.
BatchNorm normalises each rank's slice with its own statistics (and rank 0's
running statistics are broadcast), so runs with different process counts
differ slightly; a resume with another count continues correctly but not
bit-identically.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nsas import data as nsas_data
from nsas import distributed
from nsas.checkpoint import check_same_config, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from nsas.config import (add_config_flag, add_config_flags, build_config, config_to_dict, default_repr,
                         print_config, read_yaml, write_yaml)
from nsas.errors import CheckpointError, NsasError, TrainingError
from nsas.evaluate import evaluate_model, perplexity
from nsas.inspection import read_arch_argument
from nsas.rundir import (check_new_run, default_run_dir, resume_dir, progress_bar, resume_values, run_directory, setup_logging, write_json,
                         write_text_atomic)
from nsas.threads import add_threads_flag, apply_threads
from nsas.device import resolve_device
from nsas.spaces import detect_space, get_space
from nsas.spaces.base import Architecture, SearchSpace
from nsas.spaces.counting import count_macs, count_parameters
from nsas.spaces.darts_rnn_net import activation_regularisation
from nsas.tracking import open_metrics
# re-exported: study, export, the tests and callers import them from here
from nsas.train_config import (AUX_SPACES, RECIPE_DIR, RECIPE_FAMILY, RECIPES, SCHEDULES, TrainConfig,  # noqa: F401
                               learning_rate, recipe_config, recipe_path)


# ---- data and network ------------------------------------------------------
@dataclass
class TrainData:
    """Training batches and the evaluation splits (images: test; text: valid and test)."""

    train: Any  # ImageBatches | TextBatches
    test: Any
    valid: Any | None
    num_classes: int  # classes, or the vocabulary size


def build_train_data(cfg: TrainConfig, kind: str, device: torch.device) -> TrainData:
    """The data set's full training split (or a ``train_fraction`` of it) and its evaluation splits."""
    with distributed.local_rank_zero_first():  # one download/decode per node, not one per rank
        dataset = nsas_data.load_dataset(cfg.dataset, cfg.data_dir)
    if kind == "text":
        if not isinstance(dataset, nsas_data.TextDataset):
            raise NsasError(f"space {cfg.space!r} needs a text data set (ptb, wikitext2), got {cfg.dataset!r}")
        tokens = dataset.train[: max(2, int(len(dataset.train) * cfg.train_fraction))]
        train = nsas_data.TextBatches(tokens, batch_size=cfg.batch_size, bptt=cfg.bptt, device=device,
                                      random_bptt=cfg.random_bptt, max_delta=cfg.max_bptt_delta, seed=cfg.seed)
        evals = [nsas_data.TextBatches(split, batch_size=size, bptt=cfg.bptt, device=device)
                 for split, size in ((dataset.valid, cfg.eval_batch_size), (dataset.test, cfg.test_batch_size))]
        return TrainData(train, evals[1], evals[0], dataset.vocab_size)
    if not isinstance(dataset, nsas_data.ImageDataset):
        raise NsasError(f"space {cfg.space!r} needs an image data set, got {cfg.dataset!r}")
    x, y = dataset.train_x, dataset.train_y
    if cfg.train_fraction < 1.0:
        idx, _ = nsas_data.search_split(len(y), fraction=cfg.train_fraction, seed=cfg.seed)
        x, y = x[idx], y[idx]
    common = dict(mean=dataset.mean, std=dataset.std, device=device)
    train = nsas_data.ImageBatches(x, y, batch_size=cfg.batch_size, augment=cfg.augment, cutout=cfg.cutout,
                                   shuffle=True, seed=cfg.seed, **common)
    test = nsas_data.ImageBatches(dataset.test_x, dataset.test_y, batch_size=cfg.eval_batch_size,
                                  shuffle=False, drop_last=False, **common)
    return TrainData(train, test, None, dataset.num_classes)


def build_model(cfg: TrainConfig, space: SearchSpace, arch: Architecture, num_classes: int) -> nn.Module:
    """The stand-alone network of ``arch`` at the configured size."""
    if space.kind == "text":
        return space.build_network(arch, vocab=num_classes, hidden=cfg.hidden, dropout=cfg.dropout,
                                   dropouth=cfg.dropouth, dropoutx=cfg.dropoutx, dropouti=cfg.dropouti,
                                   dropoute=cfg.dropoute)
    options: dict[str, Any] = dict(channels=cfg.channels, cells=cfg.cells, num_classes=num_classes)
    if cfg.space in AUX_SPACES:
        options.update(auxiliary=cfg.auxiliary_weight > 0, drop_path=0.0)
    return space.build_network(arch, **options)


# ---- the trainer -----------------------------------------------------------
class Trainer:
    """One stand-alone training run: network, optimizer, counters and their checkpoint.

    Args:
        cfg: the resolved config.
        arch: the architecture to train.
        run_dir: where config, log, metrics, checkpoint and result go.
        progress: show a progress bar and log to the console.
    """

    def __init__(self, cfg: TrainConfig, arch: Architecture, run_dir: Path, *, progress: bool = True) -> None:
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.rank, self.world, self.main = distributed.rank(), distributed.world_size(), distributed.is_main()
        self.progress = progress and self.main
        self.space = get_space(cfg.space)
        self.arch = self.space.coerce(arch)
        self.text = self.space.kind == "text"
        self.device = resolve_device(cfg.device)
        self.data = build_train_data(cfg, self.space.kind, self.device)
        self.steps_per_epoch = len(self.data.train)  # text with random_bptt: about as many (see count)
        if self.steps_per_epoch < 1:
            raise NsasError(f"data set {cfg.dataset!r} gives no full batch of {cfg.batch_size}")
        torch.manual_seed(cfg.seed)
        model = build_model(cfg, self.space, self.arch, self.data.num_classes)
        self.parameters, self.macs = count_parameters(model), count_macs(model, self.space.kind)
        self.model = model.to(self.device).train()
        self.net = distributed.wrap(self.model, self.device)  # what training calls: DDP under torchrun
        if cfg.batch_size % self.world:
            raise NsasError(f"batch_size {cfg.batch_size} cannot be split among {self.world} processes; "
                            "choose a multiple of the process count")
        self.optimizer_name = "sgd"
        self.optimizer = self._make_optimizer()
        self.val_losses: list[float] = []  # text: validation loss per epoch (the ASGD switch rule)
        self.epoch = self.step = self.global_step = 0  # next step to run
        self.sums = self._zero_sums()  # running sums of the current epoch
        self.hidden: torch.Tensor | None = None  # text: state carried to the next window
        self.elapsed = 0.0  # seconds of training and evaluation, summed over resumes
        self._mark = time.perf_counter()
        self.checkpoint_path = self.run_dir / "checkpoint.pt"
        self.log = setup_logging(self.run_dir if self.main else None, quiet=not self.progress)

    def _make_optimizer(self) -> torch.optim.Optimizer:
        c, params = self.cfg, self.model.parameters()
        if self.optimizer_name == "asgd":  # DARTS / AWD-LSTM: plain averaging from the switch on
            return torch.optim.ASGD(params, lr=c.lr, t0=0, lambd=0.0, weight_decay=c.weight_decay)
        return torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, nesterov=c.nesterov,
                               weight_decay=c.weight_decay)

    @staticmethod
    def _zero_sums() -> dict[str, float]:
        return {"loss": 0.0, "correct": 0.0, "count": 0.0, "batches": 0.0, "seconds": 0.0}

    # ---- checkpoints ---------------------------------------------------
    def _tick(self) -> float:
        """Seconds since the last tick, added to the run's elapsed time."""
        now = time.perf_counter()
        seconds, self._mark = now - self._mark, now
        self.elapsed += seconds
        return seconds

    def state_dict(self) -> dict[str, Any]:
        return {
            "config": config_to_dict(self.cfg), "arch": str(self.arch),
            "epoch": self.epoch, "step": self.step, "global_step": self.global_step,
            "elapsed": self.elapsed, "sums": dict(self.sums), "val_losses": list(self.val_losses),
            "model": self.model.state_dict(), "num_classes": self.data.num_classes,
            "optimizer_name": self.optimizer_name, "optimizer": self.optimizer.state_dict(),
            "hidden": self.hidden, "rng": rng_state(),
        }

    def save(self) -> None:
        self.sums["seconds"] += self._tick()
        self.write_checkpoint()

    def write_checkpoint(self) -> None:
        """Rank 0 writes the global state (every rank takes part in gathering it and checking the ranks agree)."""
        state = self.state_dict()
        if self.world > 1:  # never save a state the ranks disagree on; name the rank that differs
            distributed.check_consistent(f"step {self.global_step}", (self.global_step, self.optimizer_name,
                                                                       distributed.weight_checksum(self.model)))
            self._gather_sums()
            state["sums"] = dict(self.sums)
            state["hidden"] = None if self.hidden is None else distributed.all_gather_tensor(self.hidden)
        if self.main:
            save_checkpoint(self.checkpoint_path, state, kind="train")

    def _gather_sums(self) -> None:
        """Rank 0 holds the sums over all ranks, the others zero (so the next gathering counts all once)."""
        keys = ("loss", "correct", "count")  # "batches" counts global batches: the same on every rank
        totals = distributed.mean_floats([self.sums[k] for k in keys], self.device)
        for k, v in zip(keys, totals):
            self.sums[k] = v * self.world if self.main else 0.0

    def load(self, path: Path) -> None:
        """Restore everything from a checkpoint of a run with the same config and architecture."""
        state = load_checkpoint(path, kind="train", map_location=self.device)
        check_same_config(path, state.get("config", {}), config_to_dict(self.cfg), free=("device", "tensorboard"))
        if state.get("arch") != str(self.arch):
            raise CheckpointError(f"checkpoint {path} trains another architecture: {str(state.get('arch'))[:80]}")
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer_name = state["optimizer_name"]
            self.optimizer = self._make_optimizer()
            self.optimizer.load_state_dict(state["optimizer"])
            self.epoch, self.step, self.global_step = state["epoch"], state["step"], state["global_step"]
            self.elapsed, self.sums = state["elapsed"], dict(state["sums"])
            self.val_losses, self.hidden = list(state["val_losses"]), state["hidden"]
            set_rng_state(state["rng"])
            if self.world > 1:  # the checkpoint holds global sums and every column's hidden state
                if not self.main:
                    self.sums = self._zero_sums()
                if self.hidden is not None:
                    self.hidden = distributed.shard((self.hidden,), self.rank, self.world)[0].clone()
        except (KeyError, RuntimeError, ValueError, TypeError) as err:
            first = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
            raise CheckpointError(f"checkpoint {path} does not fit this run: {first}") from None
        self._mark = time.perf_counter()

    # ---- training ------------------------------------------------------
    def train(self) -> None:
        """Train from the current state to the last epoch."""
        cfg = self.cfg
        bar = progress_bar(cfg.epochs * self.steps_per_epoch, self.global_step, enabled=self.progress)
        while self.epoch < cfg.epochs:
            if cfg.space in AUX_SPACES:  # DARTS: drop_path_prob = drop_path * epoch / epochs
                self.model.drop_path_prob = cfg.drop_path * self.epoch / cfg.epochs
            if self.step == 0:
                self.hidden = None  # text: every epoch starts from a zero state, as in DARTS
            for x, y in self.data.train.epoch(self.epoch, start=self.step):
                if self.world > 1:  # this rank's slice of the global batch (text (T, B): columns)
                    x, y = distributed.shard((x, y), self.rank, self.world, dim=1 if self.text else 0)
                loss = self.train_step(x, y)
                self.step += 1
                self.global_step += 1
                bar.update(1)
                bar.set_description(f"epoch {self.epoch + 1}/{cfg.epochs}")
                bar.set_postfix(loss=f"{loss:.3f}")
                if cfg.log_every and self.global_step % cfg.log_every == 0:
                    self.metrics.write({"kind": "step", "step": self.global_step, "epoch": self.epoch + 1,
                                        "loss": loss, "lr": self.optimizer.param_groups[0]["lr"]})
                last = self.data.train.count(self.epoch) if self.text else self.steps_per_epoch
                if cfg.checkpoint_every and self.global_step % cfg.checkpoint_every == 0 and self.step < last:
                    self.save()
            self.end_epoch()
        bar.close()

    def forward_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int, int]:
        """Training loss of one batch, its regularisation (text: AR + TAR), correct predictions and targets."""
        if self.text:
            hidden = None if self.hidden is None else self.hidden.detach()
            # logits (T, B, V), final state (B, H), cell outputs before and after the output dropout (T, B, H)
            logits, self.hidden, states, dropped = self.net(x, hidden, return_states=True)
            logits, y = logits.reshape(-1, logits.size(-1)), y.reshape(-1)
            loss = F.cross_entropy(logits, y)
            reg = activation_regularisation(states, dropped, alpha=self.cfg.ar_alpha, beta=self.cfg.tar_beta)
        else:
            out = self.net(x)
            logits, aux = out if isinstance(out, tuple) else (out, None)  # (B, classes) each
            loss = F.cross_entropy(logits, y)
            if aux is not None:
                loss = loss + self.cfg.auxiliary_weight * F.cross_entropy(aux, y)
            reg = loss.new_zeros(())
        return loss, reg, int((logits.detach().argmax(-1) == y).sum()), y.numel()

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """One optimizer step; returns the batch's loss (cross-entropy, without AR/TAR)."""
        # text: DARTS scales the rate by the window length (random with random_bptt; the last window is shorter)
        lr = learning_rate(self.cfg, self.epoch, x.size(0) if self.text else None)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        loss, reg, correct, count = self.forward_loss(x, y)
        value = loss.item()
        if self.world > 1:  # every rank stops on a NaN together; logs show the global batch's loss
            (value,) = distributed.mean_floats([value], self.device)
        if not math.isfinite(value):
            kept = (f"the last checkpoint {self.checkpoint_path} is intact" if self.checkpoint_path.exists()
                    else "no checkpoint had been written yet")
            raise TrainingError(f"the loss became {value} at epoch {self.epoch + 1}, step {self.step + 1} "
                                f"(architecture {self.arch}); the run stopped and {kept}; "
                                "try a lower --lr or a gradient clip")
        (loss + reg).backward()
        if self.cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        s = self.sums
        s["loss"] += value * count
        s["correct"] += correct
        s["count"] += count
        s["batches"] += 1
        return value

    def end_epoch(self) -> None:
        """Evaluate, record, maybe switch to ASGD, and checkpoint at the end of an epoch."""
        if self.world > 1:
            self._gather_sums()
        cfg, s = self.cfg, self.sums
        train_loss = s["loss"] / max(s["count"], 1)
        record: dict[str, Any] = {"kind": "epoch", "step": self.global_step, "epoch": self.epoch + 1,
                                  "train_loss": train_loss, "lr": learning_rate(cfg, self.epoch)}
        if self.text:
            record["train_ppl"] = perplexity(train_loss)
            scores = self.evaluate(self.data.valid)
            record.update(valid_loss=scores["loss"], valid_ppl=scores["ppl"], optimizer=self.optimizer_name)
            self._maybe_switch_to_asgd(scores["loss"])
        else:
            record["train_acc"] = 100.0 * s["correct"] / max(s["count"], 1)
            if cfg.drop_path > 0:
                record["drop_path"] = self.model.drop_path_prob
            if (self.epoch + 1) % cfg.eval_every == 0 or self.epoch + 1 == cfg.epochs:
                scores = self.evaluate(self.data.test)
                record.update(test_acc=scores["acc"], test_loss=scores["loss"])
        s["seconds"] += self._tick()
        record["seconds"] = s["seconds"]
        self.metrics.write(record)  # before the checkpoint: a crash in between drops it on resume
        self.log.info("epoch %d/%d: %s", self.epoch + 1, cfg.epochs, _summary(record))
        self.epoch, self.step, self.sums = self.epoch + 1, 0, self._zero_sums()
        self.write_checkpoint()

    def _maybe_switch_to_asgd(self, val_loss: float) -> None:
        """DARTS's rule: switch once the loss is worse than the best before the last ``nonmono`` epochs."""
        n = self.cfg.asgd_nonmono
        switch = self.optimizer_name == "sgd" and n and len(self.val_losses) > n and val_loss > min(self.val_losses[:-n])
        if self.world > 1:  # rank 0 decides for all: the ranks' losses may differ in the last bits
            switch = distributed.broadcast_object(bool(switch))
        if switch:
            self.log.info("epoch %d: validation loss stopped improving; switching to ASGD", self.epoch + 1)
            self.optimizer_name = "asgd"
            self.optimizer = self._make_optimizer()
        self.val_losses.append(val_loss)

    @contextlib.contextmanager
    def averaged_weights(self) -> Iterator[None]:
        """Under ASGD, the model holds the averaged weights inside the block (as DARTS evaluates)."""
        saved = []
        if self.optimizer_name == "asgd":
            for p in self.model.parameters():
                state = self.optimizer.state.get(p, {})
                if "ax" in state:
                    saved.append((p, p.detach().clone()))
                    p.data.copy_(state["ax"])
        try:
            yield
        finally:
            for p, value in saved:
                p.data.copy_(value)

    def evaluate(self, batches: Any) -> dict[str, float]:
        """Loss, accuracy (per image or token) and perplexity on ``batches``; text carries the state."""
        with self.averaged_weights():
            scores = evaluate_model(self.model, batches.epoch(0), text=self.text)
        self.model.train()
        return scores

    # ---- the run -------------------------------------------------------
    def finish(self) -> dict[str, Any]:
        """Final evaluation; writes and returns result.json."""
        result: dict[str, Any] = {"arch": str(self.arch), "space": self.cfg.space, "recipe": self.cfg.recipe,
                                  "dataset": self.cfg.dataset}
        if self.text:
            valid, test = self.evaluate(self.data.valid), self.evaluate(self.data.test)
            result.update(valid_ppl=valid["ppl"], valid_loss=valid["loss"], test_ppl=test["ppl"],
                          test_loss=test["loss"], optimizer=self.optimizer_name)
        else:
            test = self.evaluate(self.data.test)
            result.update(test_acc=test["acc"], test_loss=test["loss"])
        self._tick()
        result.update(parameters=self.parameters, macs=self.macs, epochs=self.cfg.epochs,
                      steps=self.global_step, wall_seconds=self.elapsed)
        if self.main:
            write_json(self.run_dir / "result.json", result)
        self.log.info("result: %s", _summary(result))
        return result

    def run(self, *, resume: bool = False) -> dict[str, Any]:
        """Train (resuming from the run directory's checkpoint if asked), then evaluate."""
        if resume:
            self.load(self.checkpoint_path)
            self.log.info(f"resumed from {self.checkpoint_path} at epoch {self.epoch + 1}, step {self.step}")
        self.metrics = open_metrics(self.run_dir, resume_step=self.global_step if resume else None,
                                    enabled=self.main, tensorboard=self.cfg.tensorboard)
        try:
            self.train()
            return self.finish()
        finally:
            if self.cfg.tensorboard:
                self.metrics.close()



def _summary(record: dict[str, Any]) -> str:
    keys = ("train_loss", "train_acc", "test_acc", "test_loss", "valid_ppl", "test_ppl")
    return ", ".join(f"{k} {record[k]:.4g}" for k in keys if k in record)


def train(cfg: TrainConfig, arch: Architecture | str, out_dir: str | Path, *, resume: bool = False,
          progress: bool = True, force: bool = False) -> dict[str, Any]:
    """Library entry point: train (or resume) ``arch`` stand-alone; returns the result (also result.json).

    ``out_dir`` is locked for the run, and one holding an earlier run's results is refused unless
    ``force`` (which deletes them): ``nsas.rundir.run_directory``.
    """
    run_dir = Path(out_dir)
    arch = get_space(cfg.space).coerce(arch)
    with run_directory(run_dir, resume=resume, force=force):  # rank 0 locks it for the whole run
        if distributed.is_main():
            write_yaml(run_dir / "config.yaml", config_to_dict(cfg))
            write_text_atomic(run_dir / "arch.txt", f"{arch}\n")
        distributed.barrier()
        return Trainer(cfg, arch, run_dir, progress=progress).run(resume=resume)


# ---- command line ----------------------------------------------------------
def _recipe_keys() -> set[str]:
    """Keys that some recipe file sets."""
    return {k for path in RECIPE_DIR.glob("*.yaml") for k in read_yaml(path)}


def configure(parser: argparse.ArgumentParser) -> None:
    """Flags of `nsas train`: one per TrainConfig key, plus the architecture, run directory and resume."""
    parser.description = (
        "Train one architecture stand-alone from scratch and report its test accuracy (images) or "
        "perplexity (text). Settings: the recipe for the space (paper: the published evaluation; proxy: "
        "a short budget for ranking), then --config, then flags. --print-config shows the resolved settings.")
    parser.add_argument("arch", metavar="ARCH", nargs="?",
                        help="architecture string, @FILE holding one, or a search run directory (its best)")
    parser.add_argument("--recipe", choices=RECIPES, default=None,
                        help="base settings: nsas/recipes/<family>-<recipe>.yaml (default: proxy)")
    add_config_flag(parser)
    recipe_keys = _recipe_keys()
    add_config_flags(parser, TrainConfig, skip=("recipe",), default_text=lambda key, default: (
        "default: the recipe's" if key in recipe_keys else
        "default: from ARCH" if key == "space" else f"default: {default_repr(default)}"))
    parser.add_argument("--out", default=None, help="run directory (default runs/train-<space>-<recipe>-<time>)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.add_argument("--force", action="store_true",
                        help="start a new run in an --out that holds an earlier run's results, deleting them")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or console log")
    add_threads_flag(parser)


def read_arch_source(text: str) -> tuple[str, dict[str, Any]]:
    """An architecture's text, and the defaults a search run directory implies (space, data set).

    ``text`` is an architecture string, ``@FILE``, or a search run directory
    (its selected.json's first entry, its config.yaml's space and data set).
    """
    if text.startswith("@") or not Path(text).is_dir():
        return read_arch_argument(text), {}
    run_dir = Path(text)
    if not (run_dir / "selected.json").is_file():
        raise NsasError(f"{run_dir} is not a finished search run (no selected.json)")
    try:
        selected = json.loads((run_dir / "selected.json").read_text())
        arch = selected[0]["arch"]
    except (ValueError, LookupError, TypeError):
        raise NsasError(f"{run_dir / 'selected.json'} does not list a selected architecture") from None
    run_cfg = read_yaml(run_dir / "config.yaml")
    return arch, {k: run_cfg[k] for k in ("space", "dataset", "data_dir") if run_cfg.get(k) is not None}


def resolve(args: argparse.Namespace) -> tuple[TrainConfig, Architecture]:
    """Config from recipe < search run's space/data set < YAML < flags, and the architecture."""
    if not args.arch:
        raise NsasError("give the architecture to train: a string, @FILE or a search run directory")
    text, run_values = read_arch_source(args.arch)
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    flags = {k: v for k, v in vars(args).items() if k in names and k != "recipe"}
    yaml_values = read_yaml(args.config) if args.config else {}
    space = flags.get("space") or yaml_values.get("space") or run_values.get("space") or detect_space(text)
    recipe = args.recipe or yaml_values.get("recipe") or "proxy"
    values = {**read_yaml(recipe_path(str(space), str(recipe))), **run_values, **yaml_values, **flags,
              "space": space, "recipe": recipe}
    cfg = build_config(TrainConfig, values, source=f"config file {args.config}" if args.config else "train")
    return cfg, get_space(cfg.space).parse(text)


RESUME_KEYS = ("device", "tensorboard")  # keys --resume lets a user change


def _resume_config(args: argparse.Namespace, run_dir: Path) -> tuple[TrainConfig, Architecture]:
    """The recorded config and architecture of the run to continue (only --device and --tensorboard may change)."""
    if not (run_dir / "checkpoint.pt").exists():
        raise NsasError(f"{run_dir} holds no checkpoint.pt to resume from")
    fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"recipe"}
    values = resume_values(args, run_dir, fields, RESUME_KEYS, blockers=("config", "recipe"))
    cfg = build_config(TrainConfig, values, source=str(run_dir / "config.yaml"))
    try:
        recorded = (run_dir / "arch.txt").read_text().strip()
    except OSError:
        raise NsasError(f"{run_dir} has no arch.txt: it is not a `nsas train` run") from None
    arch = get_space(cfg.space).parse(recorded)
    if args.arch and get_space(cfg.space).parse(read_arch_source(args.arch)[0]) != arch:
        raise NsasError(f"{run_dir} trains {recorded[:80]}, not the ARCH given; omit ARCH to resume")
    return cfg, arch


def run(args: argparse.Namespace) -> int:
    """`nsas train`."""
    apply_threads(getattr(args, "threads", None))
    if args.resume:
        run_dir = resume_dir(args.out, args.force)
        cfg, arch = _resume_config(args, run_dir)
    else:
        cfg, arch = resolve(args)
    if args.print_config:
        print(f"# arch: {arch}")
        print_config(cfg)
        return 0
    if not args.resume:
        run_dir = Path(args.out) if args.out else default_run_dir(f"train-{cfg.space}-{cfg.recipe}")
        run_dir = Path(distributed.broadcast_object(str(run_dir)))  # the ranks' clocks may differ
        check_new_run(run_dir, force=args.force)  # before the work; checked again under the run's lock
    print(f"nsas train: {cfg.space} architecture on {cfg.dataset}, recipe {cfg.recipe}, "
          f"{cfg.epochs} epoch{'s' * (cfg.epochs != 1)} -> {run_dir}")
    result = train(cfg, arch, run_dir, resume=args.resume, progress=not args.quiet, force=args.force)
    if "test_acc" in result:
        print(f"test accuracy {result['test_acc']:.2f}% (loss {result['test_loss']:.4f})")
    else:
        print(f"perplexity: valid {result['valid_ppl']:.2f}, test {result['test_ppl']:.2f}")
    print(f"{result['parameters']:,} parameters, {result['macs']:,} MACs, {result['wall_seconds']:.0f}s")
    print(f"run directory: {run_dir}")
    return 0


import nsas as _nsas  # noqa: E402

_nsas._make_callable(__name__)  # nsas.train(...) calls train() above
