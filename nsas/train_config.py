"""Stand-alone training settings: :class:`TrainConfig` (every key of ``nsas train``), its recipes, the schedule.

A recipe (``nsas/recipes/<family>-<recipe>.yaml``: ``paper`` or ``proxy``
for the nb201, cifar (DARTS CNN) and ptb (DARTS RNN) families) gives the
values; ``--config FILE`` and flags override them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nsas.config import build_config, check_device, check_ranges, option, read_yaml
from nsas.errors import NsasError
from nsas.registry import CLI_HINT
from nsas.spaces import space_names


RECIPES = ("paper", "proxy")
RECIPE_DIR = Path(__file__).resolve().parent / "recipes"
RECIPE_FAMILY = {"nb201": "nb201", "darts": "cifar", "darts-chain": "cifar", "darts-rnn": "ptb"}
AUX_SPACES = ("darts", "darts-chain")  # spaces whose networks have an auxiliary head and drop-path
SCHEDULES = ("cosine", "constant")


@dataclass
class TrainConfig:
    """Everything a stand-alone training run depends on (recorded as config.yaml).

    Build one from a recipe with :func:`recipe_config`; the defaults here are
    only a base that the recipe files override.
    """

    space: str = option("nb201", "search space of the architecture", choices=space_names)
    recipe: str = option("custom", "the recipe the values came from (recorded, not interpreted)")
    dataset: str = option("cifar10", "cifar10, cifar100, cifar10-mini, imagefolder:PATH, ptb or wikitext2")
    data_dir: str | None = option(None, "where data sets live (none: $NSAS_DATA or ~/.cache/nsas/data)",
                                  metavar="DIR")
    train_fraction: float = option(1.0, "share of the training split used (a seeded subset; text: a prefix)")
    epochs: int = option(10, "training epochs")
    batch_size: int = option(128, "global mini-batch size")
    eval_batch_size: int = option(256, "images: test batch size; text: columns of the validation split "
                                       "(DARTS: 10)")
    test_batch_size: int = option(1, "text: columns of the test split (DARTS: 1)")
    channels: int = option(16, "image spaces: initial channels")
    cells: int = option(5, "image spaces: cells (darts: in total; nb201: per stage)")
    hidden: int = option(300, "darts-rnn: embedding = hidden size")
    bptt: int = option(35, "darts-rnn: truncated back-propagation length")
    random_bptt: bool = option(False, "darts-rnn: draw each window's length around bptt as AWD-LSTM/DARTS do "
                                      "(mean bptt, or bptt/2 with probability 0.05; sd 5; at least 5) and "
                                      "scale the learning rate by length / bptt")
    max_bptt_delta: int = option(20, "darts-rnn: random windows are at most bptt + this long (DARTS: 20)")
    ar_alpha: float = option(0.0, "darts-rnn: activation regularisation weight, alpha * mean(dropped "
                                  "output^2) (DARTS: 0)")
    tar_beta: float = option(0.0, "darts-rnn: temporal activation regularisation weight, beta * "
                                  "mean((h_t+1 - h_t)^2) (DARTS: 1e-3)")
    dropout: float = option(0.75, "darts-rnn: output dropout")
    dropouth: float = option(0.25, "darts-rnn: recurrent-state dropout")
    dropoutx: float = option(0.75, "darts-rnn: cell-input dropout")
    dropouti: float = option(0.2, "darts-rnn: embedding-output dropout")
    dropoute: float = option(0.1, "darts-rnn: whole-word dropout")
    auxiliary_weight: float = option(0.0, "darts: weight of the auxiliary head's loss (0: no head)")
    drop_path: float = option(0.0, "darts: final drop-path probability, ramped linearly from 0")
    lr: float = option(0.05, "initial learning rate")
    lr_min: float = option(0.0, "final learning rate of the cosine schedule")
    schedule: str = option("cosine", "per epoch: cosine from lr to lr_min, or constant lr",
                           choices=SCHEDULES)
    momentum: float = option(0.9, "SGD momentum")
    nesterov: bool = option(False, "Nesterov momentum")
    weight_decay: float = option(3e-4, "weight decay")
    grad_clip: float = option(5.0, "gradient-norm clip (0: off)")
    asgd_nonmono: int = option(0, "text: switch SGD to ASGD when the validation loss has not improved for "
                                  "this many epochs (0: never)")
    augment: bool = option(True, "images: random crop and flip")
    cutout: int = option(0, "images: cutout square side in pixels (0: off)")
    seed: int = option(0, "seed of initialisation, data order, augmentation and dropout")
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    tensorboard: bool = option(False, "also log metrics to RUN_DIR/tensorboard (needs pip install "
                                      "'nsas[tensorboard]'); metrics.jsonl stays the record")
    eval_every: int = option(1, "images: epochs between test evaluations (the last epoch always)")
    log_every: int = option(50, "steps between step records in metrics.jsonl (0: epoch records only)")
    checkpoint_every: int = option(0, "steps between mid-epoch checkpoints (0: epoch ends only)")

    def __post_init__(self) -> None:
        if self.space not in space_names():
            raise NsasError(f"unknown search space {self.space!r}; choose one of {', '.join(space_names())}; {CLI_HINT}")
        if self.schedule not in SCHEDULES:
            raise NsasError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        for name in ("epochs", "batch_size", "eval_batch_size", "test_batch_size", "channels", "cells", "hidden",
                     "bptt", "eval_every"):
            if getattr(self, name) < 1:
                raise NsasError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("cutout", "asgd_nonmono", "log_every", "checkpoint_every", "max_bptt_delta"):
            if getattr(self, name) < 0:
                raise NsasError(f"{name} must not be negative, got {getattr(self, name)}")
        check_ranges(self, {"lr": "(0, inf)", "lr_min": "[0, inf)", "momentum": "[0, 1)", "weight_decay": "[0, inf)",
                            "grad_clip": "[0, inf)", "auxiliary_weight": "[0, inf)", "ar_alpha": "[0, inf)",
                            "tar_beta": "[0, inf)"})
        for name in ("dropout", "dropouth", "dropoutx", "dropouti", "dropoute", "drop_path"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise NsasError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if not 0.0 < self.train_fraction <= 1.0:
            raise NsasError(f"train_fraction must be in (0, 1], got {self.train_fraction}")
        if self.nesterov and self.momentum == 0:
            raise NsasError("nesterov needs a momentum above 0")
        if self.space not in AUX_SPACES and (self.auxiliary_weight > 0 or self.drop_path > 0):
            raise NsasError(f"auxiliary_weight and drop_path apply to the {' and '.join(AUX_SPACES)} spaces only, "
                            f"not {self.space!r}; set them to 0")
        if self.space != "darts-rnn" and (self.ar_alpha > 0 or self.tar_beta > 0 or self.random_bptt):
            raise NsasError(f"ar_alpha, tar_beta and random_bptt apply to the darts-rnn space only, not {self.space!r}")
        check_device(self.device)

    @classmethod
    def preset(cls, space: str, recipe: str = "proxy", **overrides: Any) -> TrainConfig:
        """The recipe (``proxy`` or ``paper``) for a built-in ``space``, then ``overrides``."""
        return recipe_config(space, recipe, **overrides)


def recipe_path(space: str, recipe: str) -> Path:
    """The YAML file of ``recipe`` for ``space``."""
    if recipe not in RECIPES:
        raise NsasError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    if space not in RECIPE_FAMILY:
        raise NsasError(f"unknown search space {space!r}; choose one of {', '.join(space_names())}; {CLI_HINT}")
    return RECIPE_DIR / f"{RECIPE_FAMILY[space]}-{recipe}.yaml"


def recipe_config(space: str, recipe: str = "proxy", **overrides: Any) -> TrainConfig:
    """A validated config: the recipe file for ``space``, then ``overrides`` (library entry point)."""
    path = recipe_path(space, recipe)
    values = {**read_yaml(path), "space": space, **overrides}
    return build_config(TrainConfig, values, source=str(path) if not overrides else "train config")


def learning_rate(cfg: TrainConfig, epoch: int, window: int | None = None) -> float:
    """Learning rate of ``epoch`` (0-based): DARTS's per-epoch cosine to ``lr_min``, or constant.

    Text: a window of ``window`` tokens scales it by ``window / bptt``, as
    AWD-LSTM and DARTS do (a longer window sums more per-token gradients).
    """
    lr = cfg.lr if cfg.schedule == "constant" else \
        cfg.lr_min + (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * epoch / cfg.epochs)) / 2
    return lr if window is None else lr * window / cfg.bptt
