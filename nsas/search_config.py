"""The search's configuration: :class:`SearchConfig` (every key of ``nsas search``) and its presets.

``nsas search --preset NAME`` starts from one of :data:`PRESETS` (``quick``
by default), then ``--config FILE`` and flags override it. The same keys
are the fields of :class:`SearchConfig` (``SearchConfig.preset(name, **keys)``
from Python); each field's help text is the flag's ``--help``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nsas.config import build_config, check_device, check_ranges, option
from nsas.errors import NsasError
from nsas.registry import CLI_HINT
from nsas.objectives import NSASOptions, loss_names
from nsas.selection import DEFAULT_FUSE_WEIGHTS, proxy_names_of
from nsas.spaces import get_space, space_names
from nsas.strategies import GDASOptions, RandomStrategy, strategy_names


# Allowed values of the numeric keys (checked before any work starts).
SEARCH_RANGES = {
    "lr": "(0, inf)", "lr_min": "[0, inf)", "momentum": "[0, 1)", "weight_decay": "[0, inf)",
    "grad_clip": "[0, inf)", "beta": "[0, inf)", "wpl_strength": "[0, inf)", "tau_max": "(0, inf)",
    "tau_min": "(0, inf)", "arch_lr": "(0, inf)", "arch_weight_decay": "[0, inf)", "recalibrate_batches": "[1, inf)",
    "probe_count": "[0, inf)", "probe_every": "[0, inf)", "checkpoint_every": "[0, inf)",
    "steps_per_epoch": "[1, inf)", "proxy_batch_size": "[1, inf)", "score_batch_size": "[0, inf)", "candidates": "[1, inf)", "channels": "[1, inf)",
    "cells": "[1, inf)",
    "hidden": "[1, inf)", "bptt": "[1, inf)", "few_shot_warmup": "[0, 1]", "constraint_after": "[0, 1)",
    "constraint_cap": "[0, inf)", "few_shot_workers": "[1, inf)",
}


@dataclass
class OptimizerOptions:
    """Optimizer options (the supernet's weights)."""

    lr: float = option(0.025, "SGD learning rate, cosine-annealed to lr_min over the epochs")
    lr_min: float = option(0.001, "final learning rate of the cosine schedule")
    momentum: float = option(0.9, "SGD momentum")
    weight_decay: float = option(3e-4, "SGD weight decay (the paper's l2 term)")
    grad_clip: float = option(5.0, "gradient-norm clip (0: off)")


@dataclass
class FewShotOptions:
    """Few-shot options (a supernet split into sub-supernets)."""

    few_shot_edge: int | None = option(None, "RandomNAS: split the supernet after the warm-up on this edge "
                                            "(nb201: 0-5; a choice space: its choice point) into one "
                                            "sub-supernet per operation, each trained only on the "
                                            "architectures that choose it (few-shot NAS; none: one supernet)",
                                       metavar="EDGE")
    few_shot_warmup: float = option(0.5, "few-shot: share of the epochs trained as one supernet before the "
                                         "split (0: split at the start)")
    few_shot_archive: str = option("split", "few-shot with an NSAS loss: split (one archive per sub-supernet) "
                                            "or shared (one archive; each member's loss trains its own "
                                            "sub-supernet)", choices=("split", "shared"))
    few_shot_workers: int = option(1, "few-shot: CPU processes that train the sub-supernets after the split, "
                                      "each copy in one of them for an epoch (1: this process alone). torch's "
                                      "threads are shared out among them; at one thread each the result is "
                                      "the one-process run's, bit for bit. On 2 cores one process of 2 "
                                      "threads was faster (bench/few_shot_parallel.md)", metavar="N")


@dataclass
class ScoringOptions:
    """Scoring and selection options (how trained architectures are scored and the result chosen)."""

    select_rounds: int = option(5, "RandomNAS selection: rounds R of random search on the trained supernet")
    select_samples: int = option(10, "RandomNAS selection: architectures S scored per round")
    select_from: str | None = option(None, "RandomNAS selection draws from the architectures of this file "
                                           "(list or table) instead of the space", metavar="FILE")
    eval_batches: int = option(80, "validation batches per architecture score, for selection, probes and `nsas "
                                   "rank` (80: 5,120 images at batch 64; text: consecutive windows, each "
                                   "architecture carrying its own state)")
    eval_batch_size: int = option(10, "darts-rnn: columns of the validation text when scoring (DARTS: 10)")
    score_batch_size: int = option(0, "image spaces: batch size of architecture scores (selection, probes, `nsas "
                                      "rank`), which also sets their BatchNorm batch statistics (0: batch_size)")
    bn: str = option("batch", "BatchNorm when scoring: batch statistics, or recalibrate per architecture",
                     choices=("batch", "recalibrate"))
    recalibrate_batches: int = option(10, "training batches that recalibrate BatchNorm (bn: recalibrate)")
    rank_by: str = option("acc", "image spaces: what ranks scored architectures in selection, probe tau and `nsas "
                                 "rank`: acc (accuracy, ties by the lower loss) or loss (the validation loss "
                                 "alone); text spaces rank by loss", choices=("acc", "loss"))
    max_params: int = option(0, "RandomNAS selection: only architectures with at most this many "
                                "parameters (0: any)")
    max_macs: int = option(0, "RandomNAS selection: only architectures with at most this many multiply-adds "
                              "per image, at the stand-alone default size (0: any)")
    select_by: str = option("score", "RandomNAS selection and `nsas rank`: score (the supernet's, as rank_by "
                                     "says) or fused (the supernet's score fused with zero-cost proxies by "
                                     "fuse_weights: a `score` column, higher is better)",
                            choices=("score", "fused"))
    fuse_weights: str = option(DEFAULT_FUSE_WEIGHTS, "select_by fused: COLUMN=WEIGHT,... over acc/loss and "
                                                     "proxies of nsas.proxies (default: the ranking benchmark's "
                                                     "pipeline, chosen on its tune half)", metavar="WEIGHTS")
    fuse_method: str = option("z", "select_by fused: z (standardised columns) or rank (average ranks)",
                              choices=("z", "rank"))
    proxy_batch_size: int = option(64, "select_by fused: training images in the proxies' one fixed batch")


@dataclass
class ProbeOptions:
    """Probe options (the fixed architectures whose scores are followed through training)."""

    probe: list[str] = option(default_factory=list, help="architectures of the forgetting probe set "
                                                         "(empty: probe_count random ones)", metavar="ARCH")
    probe_count: int = option(4, "random probe architectures when probe is empty")
    probe_from: str | None = option(None, "truth table: the probes are a stratified sample of probe_count of "
                                          "its architectures, and Kendall tau is logged", metavar="FILE")
    probe_key: str | None = option(None, "truth column of probe_from (none: acc if present, else the "
                                         "table's only column)", metavar="KEY")
    probe_every: int = option(0, "steps between probe evaluations (0: once per epoch)")


@dataclass
class DistributedOptions:
    """Data-parallel options."""

    micro_batches: int = option(0, "BatchNorm groups per global batch, shared out among the processes (0: one "
                                   "per process; fix it to resume with another process count)")
    consistency_every: int = option(50, "data parallel: steps between cross-rank consistency checks (0: never)")


@dataclass
class RunOptions:
    """The run: space, strategy, loss, data, supernet size, seed, device and logging."""

    space: str = option("nb201", "search space", choices=space_names)
    strategy: str = option("random", "random (RandomNAS: architectures drawn at random, as --sampling says) or "
                           "gdas (Gumbel-max sampling of learned architecture logits)", choices=strategy_names)
    loss: str = option("nsas", "supernet loss: ce (plain), nsas (archive constraints), nsas-replay (r archive "
                       "members per step), nsas-random (random archive, the ablation), wpl (weight plasticity "
                       "loss)", choices=loss_names)
    dataset: str = option("cifar10", "cifar10, cifar100, cifar10-mini, imagefolder:PATH, ptb or wikitext2")
    data_dir: str | None = option(None, "where data sets live (none: $NSAS_DATA or ~/.cache/nsas/data)",
                                  metavar="DIR")
    epochs: int = option(50, "supernet training epochs (paper: 50; GDAS on darts: 240; darts-rnn: 300)")
    steps_per_epoch: int | None = option(None, "cap on the steps of each epoch (none: the whole weights half)")
    batch_size: int = option(64, "global mini-batch size (paper: 64; darts-rnn: 128)")
    channels: int = option(16, "image spaces: initial channels of the supernet (paper: 16)")
    cells: int = option(5, "image spaces: cells (darts: in total, paper 8; nb201: per stage, paper 5)")
    hidden: int = option(300, "darts-rnn: embedding = hidden size (paper: 300)")
    bptt: int = option(35, "darts-rnn: truncated back-propagation length")
    train_fraction: float = option(0.5, "image spaces: share of the training set that trains the weights; the "
                                        "rest is the validation half (GDAS's alpha, scoring)")
    augment: bool = option(True, "image spaces: random crop and flip of the weights half")
    seed: int = option(0, "seed of data order, sampling and initialisation")
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    tensorboard: bool = option(False, "also log metrics to RUN_DIR/tensorboard (needs pip install "
                                      "'nsas[tensorboard]'); metrics.jsonl stays the record")
    sampling: str = option("uniform", "random strategy: uniform over architectures, or functions: uniform over "
                                      "the distinct functions of the supernet (nb201: 7,548), so that simple "
                                      "cells many strings share are not drawn more often",
                           choices=RandomStrategy.SAMPLING)
    carry_state: bool = option(False, "darts-rnn: start each training step from the hidden state the previous "
                                      "step ended with, as the RandomNAS and DARTS code do (it was computed by "
                                      "other architectures, so it leaks between them); off: from zeros")
    log_every: int = option(20, "steps between step records in metrics.jsonl")
    checkpoint_every: int = option(200, "steps between checkpoints (0: at epoch ends only)")


@dataclass
class SearchConfig(DistributedOptions, ProbeOptions, ScoringOptions, FewShotOptions, GDASOptions,
                   NSASOptions, OptimizerOptions, RunOptions):
    """Everything a search run depends on (recorded as config.yaml in the run directory).

    The keys are grouped in small option dataclasses (:class:`RunOptions`,
    :class:`OptimizerOptions`, :class:`~nsas.objectives.NSASOptions`,
    :class:`~nsas.strategies.GDASOptions`, :class:`FewShotOptions`,
    :class:`ScoringOptions`, :class:`ProbeOptions`, :class:`DistributedOptions`),
    which this class inherits: every key is still addressed flat (``cfg.beta``,
    ``beta:`` in YAML, ``--beta``), and ``nsas search --help`` lists them group by group.
    """

    def __post_init__(self) -> None:
        if self.space not in space_names():
            raise NsasError(f"unknown search space {self.space!r}; choose one of {', '.join(space_names())}; {CLI_HINT}")
        if self.strategy not in strategy_names():
            raise NsasError(f"unknown strategy {self.strategy!r}; choose one of {', '.join(strategy_names())}; {CLI_HINT}")
        if self.loss not in loss_names():
            raise NsasError(f"unknown loss {self.loss!r}; choose one of {', '.join(loss_names())}; {CLI_HINT}")
        for name in ("epochs", "batch_size", "archive_size", "pool_size", "knn", "replay",
                     "select_rounds", "select_samples", "eval_batches", "eval_batch_size", "log_every",
                     "probe_count"):
            if getattr(self, name) < 1:
                raise NsasError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.constraint_every < 1:
            raise NsasError(f"constraint_every must be at least 1, got {self.constraint_every}")
        for name in ("micro_batches", "consistency_every", "archive_max_age", "archive_forgetting", "wpl_window",
                     "max_params", "max_macs"):
            if getattr(self, name) < 0:
                raise NsasError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.archive_forgetting and self.archive_max_age:
            raise NsasError("archive_forgetting and archive_max_age are two ways to renew the archive; choose one")
        if self.archive_forgetting and self.loss == "nsas-random":
            raise NsasError("archive_forgetting chooses the archive by loss rise; nsas-random chooses it at random")
        if self.micro_batches and self.batch_size % self.micro_batches:
            raise NsasError(f"batch_size {self.batch_size} must be divisible by micro_batches {self.micro_batches}")
        if not 0.0 < self.train_fraction < 1.0:
            raise NsasError(f"train_fraction must be in (0, 1), got {self.train_fraction}")
        if self.sampling != "uniform" and self.strategy != "random":
            raise NsasError(f"sampling {self.sampling!r} is an option of the random strategy, not {self.strategy!r}")
        if self.rank_by not in ("acc", "loss"):
            raise NsasError(f"rank_by must be acc or loss, got {self.rank_by!r}")
        if self.bn not in ("batch", "recalibrate"):
            raise NsasError(f"bn must be batch or recalibrate, got {self.bn!r}")
        for key in ("constraint_after", "constraint_cap"):
            if getattr(self, key) and self.loss in ("ce", "wpl"):
                raise NsasError(f"{key} changes the NSAS archive constraints; the {self.loss} loss has none")
        if self.archive_by not in ("none", "size"):
            raise NsasError(f"archive_by must be none or size, got {self.archive_by!r}")
        if self.archive_by != "none" and self.loss in ("ce", "wpl"):
            raise NsasError(f"archive_by groups the NSAS archive; the {self.loss} loss has none")
        if self.archive_by != "none" and self.few_shot_edge is not None:
            raise NsasError("archive_by size and few_shot_edge both divide the archive; choose one")
        if self.select_by not in ("score", "fused"):
            raise NsasError(f"select_by must be score or fused, got {self.select_by!r}")
        if self.fuse_method not in ("z", "rank"):
            raise NsasError(f"fuse_method must be z or rank, got {self.fuse_method!r}")
        if self.select_by == "fused":
            if self.strategy != "random":
                raise NsasError(f"select_by fused ranks RandomNAS's candidates; {self.strategy} selects its argmax")
            if get_space(self.space).kind == "text":
                raise NsasError("select_by fused needs zero-cost proxies, which take images; text spaces select "
                                "by score")
            from nsas.proxies import parse_proxies

            names = proxy_names_of(self.fuse_weights)  # a malformed weight is a one-line error here
            if names:
                parse_proxies(names)
        if self.few_shot_edge is not None and self.strategy != "random":
            raise NsasError(f"few_shot_edge splits RandomNAS supernets; the {self.strategy} strategy learns one "
                            "distribution over the whole supernet")
        if self.few_shot_archive not in ("split", "shared"):
            raise NsasError(f"few_shot_archive must be split or shared, got {self.few_shot_archive!r}")
        if self.few_shot_edge is not None:
            get_space(self.space).split_options(self.few_shot_edge)  # a clear error for a bad edge or space
        if self.few_shot_workers > 1 and self.few_shot_edge is None:  # the built run checks the rest
            raise NsasError("few_shot_workers trains the sub-supernets of a few-shot split; set few_shot_edge too")
        check_device(self.device)
        check_ranges(self, SEARCH_RANGES)

    @classmethod
    def preset(cls, name: str = "quick", **overrides: Any) -> SearchConfig:
        """A config from a named preset, then ``overrides``.

        Args:
            name: a preset of ``nsas search --preset`` (``quick``, ``paper``, ``nb201-cpu``) for the space and
                strategy among the overrides, or a built-in space name for the paper's settings on it
                (``darts-rnn``: ptb, lr 20, ...). GDAS on a DARTS space gets its 240 epochs when
                ``strategy="gdas"`` is among the overrides.
            **overrides: config keys that replace the preset's values.

        Raises:
            NsasError: unknown preset or key, or an invalid value.
        """
        if name in PAPER_PRESETS:
            values = {"space": name, **paper_preset(name, overrides.get("strategy", cls.strategy))}
        else:
            values = preset_values(name, overrides)
        return build_config(cls, {**values, **overrides}, source=f"preset {name!r}")


# Paper settings per space (docs/METHOD.md, "Settings of the paper"); a YAML file or flags override them.
PAPER_PRESETS: dict[str, dict[str, Any]] = {
    "darts": dict(dataset="cifar10", epochs=50, batch_size=64, channels=16, cells=8),
    "darts-chain": dict(dataset="cifar10", epochs=50, batch_size=64, channels=16, cells=8),
    "nb201": dict(dataset="cifar10", epochs=50, batch_size=64, channels=16, cells=5),
    "darts-rnn": dict(dataset="ptb", epochs=300, batch_size=128, hidden=300, bptt=35, lr=20.0, lr_min=20.0,
                      momentum=0.0, weight_decay=5e-7, grad_clip=0.25, augment=False),
}
GDAS_EPOCHS = {"darts": 240, "darts-chain": 240}
# The quick preset: the paper's settings for the space at a size and budget that take minutes on a laptop CPU
# (image spaces on the embedded cifar10-mini).
QUICK_SIZES: dict[str, dict[str, Any]] = {
    "nb201": dict(dataset="cifar10-mini", channels=8, cells=1),
    "darts": dict(dataset="cifar10-mini", channels=8, cells=3),
    "darts-chain": dict(dataset="cifar10-mini", channels=8, cells=3),
    "darts-rnn": dict(hidden=64),
}
QUICK_BUDGET: dict[str, Any] = dict(epochs=5, select_rounds=3, select_samples=10, log_every=10, checkpoint_every=0,
                                    eval_batches=39)  # cifar10-mini: its whole 2,500-image validation half
# RandomNAS on nb201 (the no-argument search): the configuration that ranked best in the ranking benchmark
# (results/ranking/README.md) at the quick size: plain cross-entropy, each distinct function drawn equally
# often, lr 0.1, 40 epochs of single-path passes (another loss gets the same passes: fewer epochs), scored
# as the benchmark scores since round 7: recalibrated BatchNorm, ranked by validation loss
# (results/quick-pick/recal-loss: picks 93.28, 92.35, 89.93 against 91.53, 92.43, 89.93 before), and selected
# by the fused score of round 8's pipeline (loss + live parameters + jacov: select_by fused), which ranked
# held-out cells at Kendall tau 0.74-0.76 where the loss alone ranks at 0.45-0.52.
QUICK_NB201_RANDOM: dict[str, Any] = dict(loss="ce", sampling="functions", lr=0.1, epochs=40, bn="recalibrate",
                                          rank_by="loss", select_by="fused")


def passes_per_step(values: dict[str, Any]) -> float:
    """Single-path passes one search step of the config ``values`` costs once its archive is full.

    ``values`` are SearchConfig keys (missing ones take the defaults): a plain step is one pass, each NSAS
    archive member one more (``nsas-replay``: ``replay`` of them), fewer with the NSAS variants that share or
    slice the batch or add the constraints on every k-th step only, and GDAS's architecture step one more.
    """
    get = lambda key: values.get(key, getattr(SearchConfig, key))  # noqa: E731
    loss, m = get("loss"), get("archive_size")
    gdas = 1 if get("strategy") == "gdas" else 0
    if loss not in BUILTIN_LOSS_PASSES:  # a registered loss declares its own (nsas.objectives.register_loss)
        from nsas.objectives import loss_passes

        return loss_passes(loss, get) + gdas
    members = {"nsas": m, "nsas-random": m, "nsas-replay": min(get("replay"), m)}.get(loss, 0)
    if members and get("shared_batch"):
        members = 0  # the current architecture and the members split one batch: one pass in all
    elif members and get("constraint_slices"):
        members = 1  # every member on its own slice of the batch: one pass for all of them
    members /= get("constraint_every")  # constraints on every k-th step
    epochs = get("epochs")
    on = 1.0 - round(get("constraint_after") * epochs) / epochs  # share of the epochs with constraints
    refresh = 0.0
    if loss in ("nsas", "nsas-replay") and get("archive_forgetting"):  # forward passes of the rebuilds
        refresh = (m + min(get("candidates") or m, get("pool_size"))) / get("archive_forgetting")
    return 1 + members * on + refresh * on + gdas


BUILTIN_LOSS_PASSES = ("ce", "wpl", "nsas", "nsas-random", "nsas-replay")  # the losses passes_per_step knows


def paper_preset(space: str, strategy: str, chosen: dict[str, Any] | None = None) -> dict[str, Any]:
    """The paper's search settings for ``space`` (and GDAS's longer search on the DARTS spaces)."""
    preset = dict(PAPER_PRESETS.get(space, {}))
    if strategy == "gdas" and space in GDAS_EPOCHS:
        preset["epochs"] = GDAS_EPOCHS[space]
    return preset


def quick_preset(space: str, strategy: str, chosen: dict[str, Any] | None = None) -> dict[str, Any]:
    """The paper's settings for ``space`` with a small supernet, a few epochs and a short selection.

    RandomNAS on nb201 gets :data:`QUICK_NB201_RANDOM` (plain ce with function sampling, 40 epochs, scored with
    recalibrated BatchNorm, ranked by loss, selected by the fused score); a loss
    among ``chosen`` (the user's keys) that costs more passes a step gets proportionally fewer epochs, so
    every loss spends about the same compute. A space without paper settings (one registered by a user) gets
    the nb201 sizes on cifar10-mini, 5 epochs, and with RandomNAS what of nb201's quick search carries over
    to a space of unknown size (:data:`QUICK_CUSTOM_RANDOM`: plain ce, recalibrated BatchNorm, ranked by
    loss); it keeps uniform sampling (a space need not list its functions) and selects by that score (the
    zero-cost proxies are measured on nb201 only).
    """
    preset = {**paper_preset(space, strategy), **QUICK_SIZES.get(space, QUICK_SIZES["nb201"]), **QUICK_BUDGET}
    if space == "nb201" and strategy == "random":
        preset.update(QUICK_NB201_RANDOM)
        preset["epochs"] = max(1, round(preset["epochs"] / passes_per_step({**preset, **(chosen or {})})))
    elif space not in PAPER_PRESETS and strategy == "random":
        preset.update(QUICK_CUSTOM_RANDOM)
    return preset


QUICK_CUSTOM_RANDOM: dict[str, Any] = dict(loss="ce", bn="recalibrate", rank_by="loss")


# The supernet and budget of the ranking benchmark (bench/ranking.py, results/ranking/README.md): a small
# nb201 supernet, lr 0.1, 20 epochs of 390 steps (7,800 single-path passes with ce: one pass over the
# 25,000-image weights half per epoch), scores on the first 1,024 validation images at batch 256, each
# architecture with BatchNorm statistics of its own from 10 training batches (bn: recalibrate) and ranked by
# its validation loss (rank_by: loss), the scorer round 7 of the benchmark chose and checked on fresh cells.
# RandomNAS draws uniformly over the supernet's distinct functions (sampling: functions), the configuration
# that ranked best in the benchmark, and selects by the fused score (select_by: fused, round 8's pipeline). A loss or strategy that costs more passes a step gets fewer steps per
# epoch (the benchmark's equal compute; nsas with M = 8: 43).
NB201_CPU: dict[str, Any] = dict(space="nb201", dataset="cifar10", channels=8, cells=1, batch_size=64, lr=0.1,
                                 lr_min=0.001, epochs=20, steps_per_epoch=390, eval_batches=4, score_batch_size=256,
                                 select_rounds=5, select_samples=40, log_every=50, checkpoint_every=0,
                                 bn="recalibrate", rank_by="loss")
NB201_CPU_RANDOM: dict[str, Any] = dict(loss="ce", sampling="functions", select_by="fused")


def nb201_cpu_preset(space: str, strategy: str, chosen: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ranking benchmark's nb201 search (any strategy), sized for a 2-core CPU: 7,800 passes.

    RandomNAS gets plain ce with ``sampling="functions"`` (the benchmark's best configuration) and selects by
    the fused score (``select_by="fused"``), about 13 minutes of one core; GDAS samples from alpha. Other losses and GDAS keep the passes (fewer steps).
    """
    if space != "nb201":
        raise NsasError(f"the nb201-cpu preset is for the nb201 space, not {space!r}")
    preset = {**NB201_CPU, **(NB201_CPU_RANDOM if strategy == "random" else {})}
    passes = passes_per_step({**preset, "strategy": strategy, **(chosen or {})})
    preset["steps_per_epoch"] = max(1, round(preset["steps_per_epoch"] / passes))
    return preset


# name -> (space, strategy) -> config values; `--preset NAME` picks one (default quick).
PRESETS: dict[str, Any] = {"quick": quick_preset, "paper": paper_preset, "nb201-cpu": nb201_cpu_preset}
DEFAULT_PRESET = "quick"


def preset_values(name: str, values: dict[str, Any]) -> dict[str, Any]:
    """Config values of preset ``name`` for the space and strategy named in ``values`` (or the defaults)."""
    if name not in PRESETS:
        raise NsasError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name](values.get("space", SearchConfig.space), values.get("strategy", SearchConfig.strategy), values)
