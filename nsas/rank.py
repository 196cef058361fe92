"""`nsas rank`: score architectures with a search run's inherited supernet weights.

    nsas rank runs/search-nb201-random-nsas-... --all --batches 1 --batch-size 256
    nsas rank RUN_DIR --archs candidates.txt --split test --bn recalibrate
    nsas rank RUN_DIR --sample 1000 --seed 1 --out sample.csv
    nsas rank RUN_SEED0 RUN_SEED1 RUN_SEED2 --archs probe.txt --out ensemble.csv

Every architecture runs its single path through the trained supernet on the
same K batches and gets its accuracy (per image, or per token for text) and
mean cross-entropy. The CSV (``arch,acc,loss``, plus ``ppl`` for darts-rnn)
has one row per canonical string, in the order the architectures were given,
and is what ``nsas correlate`` reads. Image architectures rank by accuracy,
RNN cells by loss. Several run directories (of one space, e.g. one search
with several seeds) make a seed ensemble: each supernet scores the same
architectures and the CSV holds the mean accuracy and loss. A text score runs through the first K windows of the
split in order, carrying the architecture's own hidden state from window to
window (:func:`nsas.evaluate.path_outputs`). ``--cost`` adds ``params`` and ``macs`` columns: the
parameters and multiply-adds of each architecture's stand-alone network at
the space's default size (as ``nsas inspect`` reports them; about half a
second per architecture on one core, so they are not computed by default).
``--max-params N`` / ``--max-macs N`` keep only architectures within that
budget (and imply ``--cost``); the others are not scored.

Zero-cost proxies and fusion (issue 20): ``--proxies count,jacov,...`` (or
``all``) adds one column per proxy of :mod:`nsas.proxies` (higher is better),
computed on each distinct function's stand-alone network at ``--seed`` on one
fixed training batch (``--proxy-batch-size``, default 64, of the run's data
set or ``--dataset``); ``--proxy-channels``/``--proxy-cells`` size those
networks (default: the space's). With no run directory, ``nsas rank --space
nb201 --archs FILE --proxies all --out CSV`` writes the proxies alone (data
set ``cifar10-mini`` unless ``--dataset``). ``--fuse`` adds ``score`` (higher
is better, :mod:`nsas.fusion`) from ``--weights count=0.5,loss=0.5``, weights
fitted for Kendall tau on ``--fit-on TRUTH`` (over the proxies and acc/loss),
or ``--weights-from FILE``, and writes the weights as ``OUT.fusion.json``.
Measured on the 2-core machine with a benchmark loading both cores, one
thread, batch 64, per distinct function: every proxy together about 0.45 s
for 8 channels and 1 cell per stage, about 1.75 s at 16 channels and 5 cells.

Same function, one score: cells that compute the same supernet function
(NAS-Bench-201: a ``none`` edge, a node cut off from the input or from the
output, weight-free ops swapped between parallel nodes; see
:func:`nsas.spaces.nb201.function_key`) are scored once and share the
score, so ``--all`` scores 7,548 functions for the 15,625 cells.

Speed: the K batches are made once and stay on the device (channels-last on
the CPU), every forward runs under ``torch.inference_mode``, and each
architecture's sums stay on the device until all are scored, so a GPU never
waits for the host. ``--workers N`` splits the architectures over N CPU
processes of one thread each (same scores, same order). Measured throughputs
and end-to-end timings are in bench/README.md ("nsas rank: measured speed").

(Why ~750 lines: the command's scoring, ensembles, budgets, the proxies and fusion columns and the
proxies-only path share one argument set; its library function is :func:`rank`.)
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn
from tqdm import tqdm

from nsas import data as nsas_data
from nsas.atomic import check_not_an_input, check_writable
from nsas.errors import NsasError
from nsas.evaluate import (  # noqa: F401  (the scorer lives in nsas.evaluate; importable from here too)
    RANK_BY,
    Batch,
    distinct_functions,
    perplexity,
    preload,
    rank_key,
    score_archs,
    share_scores,
)
from nsas.rundir import write_text_atomic
from nsas.truth import read_arch_file  # noqa: F401  (importable from here too)
from nsas.device import resolve_device
from nsas.search_config import SearchConfig
from nsas.search_data import build_search_data, fixed_batches, load_search_run
from nsas.selection import arch_cost, within_budget
from nsas.spaces import get_space
from nsas.threads import add_threads_flag, apply_threads
from nsas.spaces.base import Architecture, SearchSpace

SPLITS = ("val", "test")
BN_MODES = ("batch", "recalibrate")
FEW_IMAGES = 1000  # fewer scoring images than this get a warning: about 1.6 points of binomial noise at 50%
_TOP = 5  # architectures printed at the end
RUN_FILES = ("checkpoint.pt", "config.yaml", "metrics.jsonl", "log.txt", "selected.json", "summary.json",
             "archive.json", "result.json", ".nsas-run.json")  # a run's own files: never an --out


# ---------------------------------------------------------------- architectures
def sample_archs(space: SearchSpace, count: int, seed: int) -> list[Architecture]:
    """``count`` distinct architectures drawn uniformly (repeated draws are dropped and redrawn)."""
    if count < 1:
        raise NsasError(f"--sample needs at least 1 architecture, got {count}")
    if count > space.size():
        raise NsasError(f"--sample {count}: space {space.name!r} has only {space.size():,} architectures; use --all")
    rng = random.Random(f"rank-{seed}")
    archs: dict[Architecture, None] = {}
    while len(archs) < count:
        archs.setdefault(space.sample(rng), None)
    return list(archs)


# ---------------------------------------------------------------- batches
def default_batch_size(cfg: SearchConfig) -> int:
    """The batch size scores use: the run's ``eval_batch_size`` for text (DARTS: 10), else its
    ``score_batch_size`` (0: its ``batch_size``)."""
    if get_space(cfg.space).kind == "text":
        return cfg.eval_batch_size
    return cfg.score_batch_size or cfg.batch_size


def split_batches(cfg: SearchConfig, data: Any, split: str, *, batch_size: int,
                  device: str | torch.device) -> Any:
    """Batches (ImageBatches or TextBatches) of a run's ``val`` half or its data set's ``test`` split.

    ``val`` at the default batch size (:func:`default_batch_size`) is exactly
    the search's scoring batches (so the first ``eval_batches`` reproduce its
    selection scores). ``test`` is shuffled with the run's seed (a small K
    still sees every class) and keeps full batches only; text splits stay in
    order (scores carry the state from window to window).
    """
    text = get_space(cfg.space).kind == "text"
    if text and batch_size < 2:
        raise NsasError("the darts-rnn supernet normalises with batch statistics: score with at least 2 "
                        "columns (--batch-size 2 or more; DARTS's test batch of 1 applies to `nsas train`)")
    if split == "val":
        if batch_size == default_batch_size(cfg):
            return data.score
        field = "eval_batch_size" if text else "score_batch_size"
        return build_search_data(dataclasses.replace(cfg, **{field: batch_size}), torch.device(device),
                                 fingerprint=False).score
    if split != "test":
        raise NsasError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    dataset = nsas_data.load_dataset(cfg.dataset, cfg.data_dir)
    if isinstance(dataset, nsas_data.TextDataset):
        return nsas_data.TextBatches(dataset.test, batch_size=batch_size, bptt=cfg.bptt, device=device)
    return nsas_data.ImageBatches(dataset.test_x, dataset.test_y, batch_size=batch_size, mean=dataset.mean,
                                  std=dataset.std, augment=False, shuffle=True, seed=cfg.seed, device=device)


# ---------------------------------------------------------------- scoring
def best_first(rows: Sequence[dict[str, Any]], kind: str, rank_by: str = "acc") -> list[dict[str, Any]]:
    """Rows sorted best first: for images by accuracy (then loss) or, ``rank_by="loss"``, by loss; text by loss."""
    return sorted(rows, key=lambda r: rank_key(r, rank_by, kind))


def write_scores(path: str | Path, rows: Sequence[dict[str, Any]], *, kind: str, extra: Sequence[str] = ()) -> None:
    """The CSV ``arch,acc,loss`` (``+ppl`` for text, ``+params,macs`` when the rows have them), written atomically.

    ``extra`` columns (proxies, the fused ``score``) follow; rows without ``acc`` (proxies only) have no
    ``acc,loss`` columns.
    """
    scored = bool(rows) and "acc" in rows[0]
    columns = ["arch"] + (["acc", "loss"] + (["ppl"] if kind == "text" else []) if scored or not extra else [])
    columns += [c for c in ("params", "macs") if rows and c in rows[0] and c not in extra]
    columns += [c for c in extra if c not in columns]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        if kind == "text":
            row = {**row, "ppl": perplexity(row["loss"])}
        writer.writerow([row[c] for c in columns])
    path = Path(path)
    try:
        write_text_atomic(path, buffer.getvalue())
    except OSError as err:
        raise NsasError(f"cannot write {path}: {err.strerror}") from None


# ---------------------------------------------------------------- command line
def _count_or_all(text: str) -> int:
    """``--batches``: a positive count, or ``all`` (returned as 0)."""
    if text == "all":
        return 0
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'all', got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'all', got {text!r}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    """Flags of `nsas rank`."""
    parser.add_argument("run_dir", metavar="RUN_DIR", nargs="*",
                        help="a search run directory (config.yaml, checkpoint.pt); several runs of one space "
                             "(e.g. seeds) score with each supernet and write the mean accuracy and loss "
                             "(a seed ensemble; needs --out); none: proxies only (--space, --proxies, --out)")
    add_threads_flag(parser)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--archs", metavar="FILE",
                       help="architectures: one per line ('#' comments), or a CSV/JSON/JSONL table with an arch column")
    which.add_argument("--sample", metavar="N", type=_positive, help="N distinct uniformly sampled architectures")
    which.add_argument("--all", action="store_true", help="every architecture of the space (nb201: 15,625)")
    parser.add_argument("--split", choices=SPLITS, default="val",
                        help="val: the run's validation half (default); test: the data set's test split")
    parser.add_argument("--batches", metavar="K", type=_count_or_all, default=None,
                        help="score on the first K batches of the split, or 'all' (default: the run's eval_batches)")
    parser.add_argument("--batch-size", dest="batch_size", metavar="B", type=_positive, default=None,
                        help="batch size (default: the run's score_batch_size, else its batch_size; darts-rnn: its "
                             "eval_batch_size, 10)")
    parser.add_argument("--bn", choices=BN_MODES, default=None,
                        help="batch: BatchNorm uses each scoring batch's statistics; recalibrate: each architecture "
                             "gets statistics of its own from training batches (default: the run's bn setting, "
                             "batch unless the search set bn: recalibrate, as the nb201-cpu preset does)")
    parser.add_argument("--recalibrate-batches", dest="recalibrate_batches", metavar="R", type=_positive,
                        default=None, help="training batches per recalibration (default: the run's "
                                           "recalibrate_batches, 10; needs --bn recalibrate)")
    parser.add_argument("--rank-by", dest="rank_by", choices=RANK_BY, default=None,
                        help="image spaces: what orders the top list and RankResult.best: acc (accuracy, ties by "
                             "the lower loss) or loss (default: the run's rank_by; the CSV holds both)")
    parser.add_argument("--seed", type=int, default=0, help="seed of --sample and of recalibration (default 0)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.add_argument("--out", metavar="FILE.csv", default=None, help="where to write the scores (default RUN_DIR/scores.csv)")
    parser.add_argument("--workers", type=int, default=1,
                        help="CPU processes scoring slices of the architectures, one thread each (default 1)")
    parser.add_argument("--cost", action="store_true",
                        help="add params and macs columns (stand-alone network at the space's default size)")
    parser.add_argument("--max-params", dest="max_params", metavar="N", type=_positive, default=None,
                        help="score only architectures with at most N parameters (implies --cost)")
    parser.add_argument("--max-macs", dest="max_macs", metavar="N", type=_positive, default=None,
                        help="score only architectures with at most N multiply-adds per image (implies --cost)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    zc = parser.add_argument_group("zero-cost proxies and fusion (nsas.proxies, nsas.fusion)")
    zc.add_argument("--proxies", metavar="LIST", default=None,
                    help="comma-separated proxies, one column each (count/params, flops, synflow, snip, grad_norm, "
                         "fisher, jacov, naswot; 'all': every registered one); higher is better")
    zc.add_argument("--space", default=None, help="with no RUN_DIR: the search space of the architectures")
    zc.add_argument("--dataset", default=None,
                    help="data set of the proxies' batch (default: the run's; with no RUN_DIR cifar10-mini)")
    zc.add_argument("--data-dir", dest="data_dir", default=None, help="with no RUN_DIR: where data sets live")
    zc.add_argument("--proxy-batch-size", dest="proxy_batch_size", metavar="B", type=_positive, default=64,
                    help="images in the proxies' one fixed training batch (default 64)")
    zc.add_argument("--proxy-channels", dest="proxy_channels", metavar="C", type=_positive, default=None,
                    help="channels of the proxies' stand-alone networks (default: the space's, nb201 16)")
    zc.add_argument("--proxy-cells", dest="proxy_cells", metavar="N", type=_positive, default=None,
                    help="cells of the proxies' stand-alone networks (default: the space's, nb201 5 per stage)")
    zc.add_argument("--fuse", action="store_true",
                    help="add a column 'score' (higher is better): a weighted sum of the columns' ranks "
                         "(--weights, --fit-on or --weights-from); the weights JSON goes next to the CSV")
    zc.add_argument("--weights", metavar="K=V,...", default=None, help="fusion weights, e.g. count=0.5,loss=0.5")
    zc.add_argument("--fit-on", dest="fit_on", metavar="TRUTH", default=None,
                    help="fit the fusion weights for the best Kendall tau on the cells of this truth table "
                         "(never judge on the cells fitted on)")
    zc.add_argument("--truth-key", dest="truth_key", default=None, help="--fit-on's column (default acc)")
    zc.add_argument("--weights-from", dest="weights_from", metavar="FILE", default=None,
                    help="fusion weights saved by an earlier --fuse (its .fusion.json)")
    zc.add_argument("--fuse-method", dest="fuse_method", choices=("rank", "z"), default="rank",
                    help="rank: weighted sum of average ranks (default); z: of standardised scores")


def _choose_archs(args: RankOptions, space: SearchSpace) -> tuple[list[Architecture], str]:
    """The architectures to score, and a note on where they came from."""
    if args.archs is not None and not isinstance(args.archs, (str, Path)):  # a list from the Python API
        archs = list(dict.fromkeys(space.coerce(a) for a in args.archs))
        return archs, "given"
    if args.archs is not None:
        archs, repeats = read_arch_file(args.archs, space)
        return archs, f"from {args.archs}" + (f" ({repeats} repeated entries dropped)" if repeats else "")
    if args.sample is not None:
        return sample_archs(space, args.sample, args.seed), f"sampled with seed {args.seed}"
    return list(space.enumerate()), "(the whole space)"


def _eval_batches(args: RankOptions, cfg: SearchConfig, batches: Any) -> list[Batch]:
    """The first K batches of the split (default: the run's eval_batches, at most all)."""
    available = len(batches)
    if available < 1:
        raise NsasError(f"the {args.split} split gives no full batch of {args.batch_size or default_batch_size(cfg)}")
    if args.batches is None:
        count = min(cfg.eval_batches, available)
    elif args.batches == 0:
        count = available
    elif args.batches > available:
        raise NsasError(f"--batches {args.batches}: the {args.split} split has only {available} batches "
                        f"of {args.batch_size or default_batch_size(cfg)}")
    else:
        count = args.batches
    return fixed_batches(batches, count)


class _Loaded(NamedTuple):
    """A run loaded for scoring: the same in every worker process."""

    cfg: SearchConfig
    supernet: nn.Module
    eval_set: list[Batch]
    recalibrate: list[Batch]
    device: torch.device
    num_classes: int | None  # the supernet's outputs (the checkpoint records them; None: unknown)


def _setup(args: RankOptions) -> _Loaded:
    """The run's supernet, the scoring batches and the recalibration batches (the same in every worker)."""
    device = resolve_device(args.device)
    cfg, supernet, data, state = load_search_run(args.run_dir, device, supernet=args.supernet)
    batch_size = args.batch_size or default_batch_size(cfg)
    eval_set = _eval_batches(args, cfg, split_batches(cfg, data, args.split, batch_size=batch_size, device=device))
    recalibrate = []
    if bn_mode(args, cfg) == "recalibrate":
        recalibrate = fixed_batches(data.train, args.recalibrate_batches or cfg.recalibrate_batches)
    elif args.recalibrate_batches is not None:
        raise NsasError("--recalibrate-batches applies only with --bn recalibrate")
    return _Loaded(cfg, supernet, eval_set, recalibrate, device, state.get("num_classes") or data.num_classes)


def bn_mode(args: RankOptions, cfg: SearchConfig) -> str:
    """How BatchNorm scores: ``--bn`` if given, else the run's own ``bn`` setting (what its search scored with)."""
    return args.bn or cfg.bn


def _score_chunk(args: RankOptions, archs: list[str]) -> list[dict[str, Any]]:
    """One worker process of ``--workers``: one thread, its own copy of the run, a slice of the architectures."""
    torch.set_num_threads(1)
    cfg, supernet, eval_set, recalibrate, _, _ = _setup(args)
    space = get_space(cfg.space)
    return score_archs(supernet, [space.parse(a) for a in archs], eval_set, recalibrate=recalibrate, seed=args.seed)


def _score_parallel(args: RankOptions, archs: list[Architecture]) -> list[dict[str, Any]]:
    """Score in ``args.workers`` processes (contiguous slices, results in input order)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    size = -(-len(archs) // args.workers)
    chunks = [[str(a) for a in archs[i:i + size]] for i in range(0, len(archs), size)]
    with ProcessPoolExecutor(len(chunks), mp_context=multiprocessing.get_context("spawn")) as pool:
        return [row for rows in pool.map(_score_chunk, [args] * len(chunks), chunks) for row in rows]


@dataclasses.dataclass
class RankResult:
    """What :func:`rank` returns: the scores (also written to ``out``)."""

    rows: list[dict[str, Any]]  # one per architecture, in the order given: arch, acc, loss (+ ppl, params, macs)
    out: Path  # the CSV written
    kind: str  # "image" or "text" (text ranks by loss)
    rank_by: str = "acc"  # image spaces: "acc" (ties: lower loss) or "loss", the run's rank_by or --rank-by
    order_by: str | None = None  # a higher-is-better column that orders `best` instead (the fused score, a proxy)
    weights: Path | None = None  # the fusion weights JSON written (--fuse)
    proxy_seconds: dict[str, float] | None = None  # per proxy, seconds per distinct function

    @property
    def best(self) -> list[dict[str, Any]]:
        """The rows, best first."""
        if self.order_by:
            return sorted(self.rows, key=lambda r: -r[self.order_by])
        return best_first(self.rows, self.kind, self.rank_by)


@dataclasses.dataclass
class RankOptions:
    """Everything one scoring depends on: the flags of `nsas rank`, typed (see :func:`rank` for each).

    The command builds one from its flags (:meth:`from_args`), :func:`rank` from its arguments; both hand it
    to :func:`score_runs`.
    """

    run_dir: list[str] = dataclasses.field(default_factory=list)  # none: proxies only (needs space)
    archs: str | Path | Sequence[Architecture | str] | None = None
    sample: int | None = None
    all: bool = False
    split: str = "val"
    batches: int | None = None  # 0: every batch of the split
    batch_size: int | None = None
    bn: str | None = None
    rank_by: str | None = None
    recalibrate_batches: int | None = None
    seed: int = 0
    device: str = "auto"
    out: str | None = None
    workers: int = 1
    quiet: bool = True
    cost: bool = False
    max_params: int | None = None
    max_macs: int | None = None
    supernet: nn.Module | None = None
    proxies: str | None = None  # comma-separated names, or "all"
    space: str | None = None
    dataset: str | None = None
    data_dir: str | None = None
    proxy_batch_size: int = 64
    proxy_channels: int | None = None
    proxy_cells: int | None = None
    fuse: bool = False
    weights: str | None = None  # COLUMN=WEIGHT,...
    fit_on: str | None = None
    truth_key: str | None = None
    weights_from: str | None = None
    fuse_method: str = "rank"

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RankOptions:
        """The options of parsed `nsas rank` flags (flags that are not options, like --threads, are left out)."""
        given = vars(args)
        return cls(**{f.name: given[f.name] for f in dataclasses.fields(cls) if f.name in given})


def rank(run_dir: str | Path | Sequence[str | Path] | None = None,
         archs: str | Path | Sequence[Architecture | str] | None = None, *,
         sample: int | None = None, all: bool = False, split: str = "val", batches: int | str | None = None,
         batch_size: int | None = None, bn: str | None = None, rank_by: str | None = None,
         recalibrate_batches: int | None = None, seed: int = 0,
         device: str = "auto", out: str | Path | None = None, workers: int = 1, cost: bool = False,
         max_params: int | None = None, max_macs: int | None = None,
         supernet: nn.Module | None = None, proxies: str | Sequence[str] | None = None, space: str | None = None,
         dataset: str | None = None, data_dir: str | None = None, proxy_batch_size: int = 64,
         proxy_channels: int | None = None, proxy_cells: int | None = None, fuse: bool = False,
         weights: str | dict[str, float] | None = None, fit_on: str | Path | None = None,
         truth_key: str | None = None, weights_from: str | Path | None = None,
         fuse_method: str = "rank") -> RankResult:
    """Library entry point of `nsas rank`; ``nsas.rank(...)`` is this function (it calls :func:`score_runs`).

    Args:
        run_dir: a search run directory, or several (a seed ensemble: the mean accuracy and loss of each
            run's score; needs ``out``).
        archs: architectures (strings or values), or a file listing them.
        sample: instead, this many distinct random architectures.
        all: instead, every architecture of the space.
        split, batches, batch_size, bn, rank_by, recalibrate_batches, seed, device, workers: as the flags
            (``batches="all"``: every batch).
        cost, max_params, max_macs: as ``--cost``, ``--max-params``, ``--max-macs``.
        out: the CSV to write (default ``run_dir/scores.csv``).
        supernet: an untrained module of the run's shape, for runs whose supernet the caller built.
        proxies, space, dataset, data_dir, proxy_batch_size, proxy_channels, proxy_cells: as ``--proxies`` ...
            (``run_dir=None`` with ``space``: proxies only, ``out`` needed).
        fuse, weights, fit_on, truth_key, weights_from, fuse_method: as ``--fuse`` ... (``weights`` also a dict).
    """
    runs = [] if run_dir is None else [str(run_dir)] if isinstance(run_dir, (str, Path)) else [str(r) for r in run_dir]
    if isinstance(weights, dict):
        weights = ",".join(f"{k}={v}" for k, v in weights.items())
    if proxies is not None and not isinstance(proxies, str):
        proxies = ",".join(proxies)
    options = RankOptions(run_dir=runs, archs=archs, sample=sample, all=all, split=split,
                          batches=0 if batches == "all" else batches, batch_size=batch_size, bn=bn, rank_by=rank_by,
                          recalibrate_batches=recalibrate_batches, seed=seed, device=device,
                          out=None if out is None else str(out), workers=workers, quiet=True, cost=cost,
                          max_params=max_params, max_macs=max_macs, supernet=supernet, proxies=proxies,
                          space=space, dataset=dataset, data_dir=data_dir, proxy_batch_size=proxy_batch_size,
                          proxy_channels=proxy_channels, proxy_cells=proxy_cells, fuse=fuse, weights=weights,
                          fit_on=None if fit_on is None else str(fit_on), truth_key=truth_key,
                          weights_from=None if weights_from is None else str(weights_from), fuse_method=fuse_method)
    return score_runs(options)


def _costs(args: RankOptions, space: SearchSpace, archs: list[Architecture]
           ) -> dict[Architecture, tuple[int, int]]:
    """Stand-alone (params, macs) per architecture when --cost or a budget asks for them, else {}."""
    if not (args.cost or args.max_params or args.max_macs):
        return {}

    return {a: arch_cost(space, a) for a in tqdm(archs, unit="arch", desc="cost", disable=args.quiet, leave=False)}


def _check_out(out: Path, args: RankOptions | None = None) -> None:
    """``out`` can be written, and is none of the files this command reads (the runs' own files, --archs,
    --fit-on, --weights-from): replacing one of them would lose it."""
    try:
        check_writable(out)
    except OSError as err:
        raise NsasError(f"cannot write {out}: {err.filename} {err.strerror}") from None
    if args is None:
        return
    runs = args.run_dir if isinstance(args.run_dir, (list, tuple)) else [args.run_dir] if args.run_dir else []
    inputs = [Path(r) / name for r in runs for name in RUN_FILES]
    inputs += [args.fit_on, args.weights_from]
    if isinstance(args.archs, (str, Path)):
        inputs.append(args.archs)
    fusion = out.with_name(out.stem + ".fusion.json")
    for path, flag in ((out, "--out"), *(((fusion, "--out's weights file"),) if args.fuse else ())):
        try:
            check_not_an_input(path, inputs, flag=flag)
        except OSError as err:
            raise NsasError(f"{flag} {path}: {err.strerror}") from None


def _workers(args: RankOptions) -> int:
    """``--workers``, at most the CPU cores this process may use (as DataLoader warns: more only slows down)."""
    cores = os.cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):
        cores = min(cores, len(os.sched_getaffinity(0)))
    if args.workers > cores:
        sys.stderr.write(f"nsas: warning: --workers {args.workers} is more than the {cores} CPU core"
                         f"{'s' if cores != 1 else ''} here; using {cores}\n")
        return cores
    return args.workers


def run(args: argparse.Namespace) -> int:
    """`nsas rank`: its flags as :class:`RankOptions`, scored by :func:`score_runs`."""
    apply_threads(args.threads)
    score_runs(RankOptions.from_args(args), log=print)
    return 0


def score_runs(args: RankOptions, log: Callable[[str], Any] | None = None) -> RankResult:
    """Score the architectures ``args`` names, write the CSV, report through ``log``.

    Several run directories (``args.run_dir`` a list) score the same architectures with each run's supernet
    and write the mean accuracy and loss: a seed ensemble.
    """
    log = log or (lambda line: None)
    if sum((args.archs is not None, args.sample is not None, bool(args.all))) != 1:
        raise NsasError("pass exactly one of archs, sample or all")
    if args.recalibrate_batches is not None and args.bn == "batch":
        raise NsasError("--recalibrate-batches applies only with --bn recalibrate")
    _check_fusion_flags(args)
    if args.proxies and (args.cost or args.max_params or args.max_macs):
        from nsas.proxies import parse_proxies

        if "params" in parse_proxies(args.proxies):
            raise NsasError("--cost's params column (every parameter) and the params proxy (live parameters) "
                            "share a name: drop one of them")
    if not args.run_dir:
        return _rank_proxies_only(args, log)
    if args.space:
        raise NsasError("--space is for scoring without a run directory; a run knows its space")
    if args.workers < 1:
        raise NsasError(f"--workers must be at least 1, got {args.workers}")
    runs = [str(r) for r in args.run_dir] if isinstance(args.run_dir, (list, tuple)) else [str(args.run_dir)]
    if len(set(runs)) < len(runs):
        raise NsasError("a run directory is named twice: an ensemble averages distinct runs")
    if len(runs) > 1 and not args.out:
        raise NsasError(f"{len(runs)} runs give one ensemble score: name its CSV with --out")
    out = Path(args.out) if args.out else Path(runs[0]) / "scores.csv"
    if args.out:
        _check_out(out, args)  # before loading anything
    args = dataclasses.replace(args, workers=_workers(args))
    scored: list[list[dict[str, Any]]] = []
    seconds = 0.0
    for i, run_dir in enumerate(runs):
        one = dataclasses.replace(args, run_dir=run_dir)
        cfg, supernet, eval_set, recalibrate, device, num_classes = _setup(one)
        examples = sum(y.numel() for _, y in eval_set)
        if i == 0:
            rank_by = args.rank_by or cfg.rank_by  # what "best" means: the flag, else the run's own setting
            _check_out(out)  # and, for RUN/scores.csv, once RUN is known to be a run: before hours of scoring
            if args.workers > 1 and device.type != "cpu":
                raise NsasError("--workers splits the work over CPU processes; on a GPU leave it at 1")
            space = get_space(cfg.space)
            archs, origin = _choose_archs(args, space)
            costs = _costs(args, space, archs)
            if args.max_params or args.max_macs:
                before = len(archs)
                archs = [a for a in archs if within_budget(costs[a], args.max_params, args.max_macs)]
                origin += f", {len(archs):,} of {before:,} within the budget"
                if not archs:
                    raise NsasError("no architecture is within --max-params/--max-macs")
            distinct, index = distinct_functions(archs)
            unit = "tokens" if space.kind == "text" else "images"
            bn = f"recalibrated on {len(recalibrate)} training batches" if recalibrate else "batch statistics"
            log(f"nsas rank: {len(archs):,} {space.name} architectures {origin}; {args.split} split, "
                f"{len(eval_set)} batches ({examples:,} {unit}); BatchNorm: {bn}; {device}")
            if len(distinct) < len(archs):
                log(f"  {len(distinct):,} distinct supernet functions: each is scored once and shares its score")
            if space.kind == "image" and examples < FEW_IMAGES:
                log(f"  warning: an accuracy on {examples:,} images carries about {50 / examples ** 0.5:.1f} points "
                    f"of sampling noise; --batches/--batch-size for {FEW_IMAGES:,} or more images "
                    "(the nb201-cpu preset scores 1,024)")
        elif cfg.space != space.name:
            raise NsasError(f"{run_dir} searched the {cfg.space} space, {runs[0]} the {space.name} space: "
                            "an ensemble needs runs of one space")
        if len(runs) > 1:
            log(f"  run {i + 1} of {len(runs)}: {run_dir} ({examples:,} {unit})")
        start = time.perf_counter()
        if args.workers > 1:
            scored.append(share_scores(archs, _score_parallel(one, distinct), index))
        else:
            scored.append(score_archs(supernet, archs, eval_set, recalibrate=recalibrate, seed=args.seed,
                                      progress=not args.quiet))
        seconds += time.perf_counter() - start
    rows = scored[0] if len(scored) == 1 else ensemble_rows(scored)
    if costs:
        rows = [{**row, "params": costs[a][0], "macs": costs[a][1]} for row, a in zip(rows, archs, strict=True)]
    extra: list[str] = []
    proxy_seconds = None
    if args.proxies:
        rows, extra, proxy_seconds = _add_proxies(args, space, archs, rows, cfg, log)
    weights_path = None
    if args.fuse:
        supernet_columns = ["loss"] if space.kind == "text" else ["acc", "loss"]
        rows, weights_path = _add_fused(args, space, rows, extra + supernet_columns, out, log)
        extra.append("score")
    elif cfg.select_by == "fused" and len(runs) == 1 and not extra:  # the run's own pipeline, at its defaults
        from nsas.selection import fuse_for_run, proxy_names_of

        rows = fuse_for_run(cfg, space, rows, num_classes=num_classes,
                            device=device)
        extra = [*proxy_names_of(cfg.fuse_weights), "score"]
        log(f"fused score of the run's pipeline (select_by fused, {cfg.fuse_method}: {cfg.fuse_weights}); "
            "higher is better")
    write_scores(out, rows, kind=space.kind, extra=extra)
    log(f"scored {len(rows):,} architectures ({len(distinct):,} functions) "
        f"{f'with {len(runs)} supernets ' if len(runs) > 1 else ''}in {seconds:.1f} s "
        f"({len(distinct) * len(runs) / max(seconds, 1e-9):.2f} functions/s)")
    mean = "mean " if len(runs) > 1 else ""
    order_by = "score" if "score" in extra else None  # a fused score (--fuse, a fused run's pipeline) ranks
    by = "fused score (higher is better)" if order_by else \
        "loss" if space.kind == "text" or rank_by == "loss" else "accuracy"
    log(f"top {min(_TOP, len(rows))} by {mean if not order_by else ''}{by}:")
    best = sorted(rows, key=lambda r: -r["score"]) if order_by else best_first(rows, space.kind, rank_by)
    for row in best[:_TOP]:
        fused = f"  score {row['score']:.4g}" if order_by else ""
        log(f"  {row['acc']:7.2f}%  loss {row['loss']:.4f}{fused}  {row['arch']}")
    log(f"scores: {out}")
    return RankResult(rows=rows, out=out, kind=space.kind, rank_by=rank_by, order_by=order_by, weights=weights_path,
                      proxy_seconds=proxy_seconds)


# ---------------------------------------------------------------- proxies and fusion
def _check_fusion_flags(args: RankOptions) -> None:
    """--fuse needs exactly one source of weights; a source needs --fuse."""
    sources = [f for f, v in (("--weights", args.weights), ("--fit-on", args.fit_on),
                              ("--weights-from", args.weights_from)) if v]
    if args.fuse and len(sources) != 1:
        raise NsasError("--fuse needs exactly one of --weights K=V,..., --fit-on TRUTH or --weights-from FILE"
                        + (f" (got {', '.join(sources)})" if sources else ""))
    if sources and not args.fuse:
        raise NsasError(f"{sources[0]} applies only with --fuse")
    if args.truth_key and not args.fit_on:
        raise NsasError("--truth-key applies only with --fit-on")


def _proxy_options(args: RankOptions) -> dict[str, int]:
    return {k: v for k, v in (("channels", args.proxy_channels),
                              ("cells", args.proxy_cells)) if v is not None}


def _add_proxies(args: RankOptions, space: SearchSpace, archs: list[Architecture], rows: list[dict[str, Any]],
                 cfg: SearchConfig | None, log: Any) -> tuple[list[dict[str, Any]], list[str], dict[str, float]]:
    """``rows`` with one column per proxy of ``--proxies`` (computed on the stand-alone networks)."""
    from nsas.proxies import parse_proxies, proxy_batch, score_proxies

    names = parse_proxies(args.proxies)
    if "params" in names and rows and "params" in rows[0]:
        raise NsasError("--cost's params column (every parameter) and the params proxy (live parameters) share "
                        "a name: drop one of them")
    batch = None
    if names != ["params"]:
        dataset = args.dataset or (cfg.dataset if cfg is not None else "cifar10-mini")
        data_dir = args.data_dir or (cfg.data_dir if cfg is not None else None)
        batch = proxy_batch(dataset, args.proxy_batch_size, seed=args.seed, data_dir=data_dir)
    options = _proxy_options(args)
    scored = score_proxies(space, archs, names, batch, seed=args.seed, options=options,
                           device=resolve_device(args.device), progress=not args.quiet)
    per_fn = ", ".join(f"{n} {scored.seconds[n]:.3f}" for n in names)
    shared = "".join(f", {k} {v:.3f}" for k, v in scored.seconds.items() if k.startswith("shared:"))
    log(f"proxies on {scored.functions:,} functions ({', '.join(f'{k}={v}' for k, v in options.items()) or 'default size'}"
        f"{f', batch of {len(batch[0])}' if batch is not None else ''}): s per function {per_fn}{shared}, "
        f"build {scored.build_seconds:.3f}")
    if rows:
        merged = [{**row, **{n: p[n] for n in names}} for row, p in zip(rows, scored, strict=True)]
    else:
        merged = [dict(p) for p in scored]
    return merged, names, scored.seconds


def _add_fused(args: RankOptions, space: SearchSpace, rows: list[dict[str, Any]], columns: list[str],
               out: Path, log: Any) -> tuple[list[dict[str, Any]], Path]:
    """``rows`` with the fused ``score`` column; the weights JSON written as ``OUT.fusion.json``."""
    from nsas.fusion import FusionWeights, direction, fit_weights, parse_weights

    if args.weights_from:
        fw = FusionWeights.load(args.weights_from)
    elif args.weights:
        w = parse_weights(args.weights)
        fw = FusionWeights(weights=w, method=args.fuse_method, lower_is_better=[c for c in w if direction(c) < 0])
    else:
        from nsas.tables import metric_column, read_table

        key = metric_column(args.fit_on, args.truth_key)
        truth: dict[str, float] = {}
        for raw, values in read_table(args.fit_on, keys=[key]).items():
            truth[str(space.parse(raw.strip()))] = values[key]
        matched = [r for r in rows if r["arch"] in truth]
        if len(matched) < 3:
            raise NsasError(f"--fit-on {args.fit_on}: only {len(matched)} of the {len(rows)} architectures have a "
                            "truth value; fitting needs at least 3")
        fw = fit_weights(matched, [truth[r["arch"]] for r in matched], columns, method=args.fuse_method,
                         truth_name=Path(args.fit_on).name, truth_key=key)
        log(f"fusion weights fitted on {len(matched):,} cells of {args.fit_on} ({key}): "
            f"{', '.join(f'{c}={v:g}' for c, v in fw.weights.items())}; Kendall tau {fw.fitted_on['tau']} there "
            "(judge them on other cells)")
    fused = fw.fuse(rows)
    path = fw.save(out.with_name(out.stem + ".fusion.json"))
    log(f"fused score ({fw.method}: {', '.join(f'{c}={v:g}' for c, v in fw.weights.items())}); weights: {path}")
    return [{**r, "score": float(v)} for r, v in zip(rows, fused, strict=True)], path


def _rank_proxies_only(args: RankOptions, log: Any) -> RankResult:
    """`nsas rank --space SPACE --archs FILE --proxies LIST --out CSV`: no run, no supernet."""
    if not args.space or not args.proxies:
        raise NsasError("name a RUN_DIR, or score without one with --space SPACE and --proxies LIST")
    if not args.out:
        raise NsasError("scoring without a run directory needs --out FILE.csv")
    run_only = [f for f, v in (("--split", args.split != "val"), ("--batches", args.batches is not None),
                               ("--batch-size", args.batch_size is not None), ("--bn", args.bn is not None),
                               ("--rank-by", args.rank_by is not None), ("--workers", args.workers != 1),
                               ("--cost", args.cost), ("--max-params", args.max_params),
                               ("--max-macs", args.max_macs)) if v]
    if run_only:
        raise NsasError(f"{run_only[0]} needs a RUN_DIR (a supernet); with --space only proxies are computed")
    out = Path(args.out)
    _check_out(out, args)
    space = get_space(args.space)
    archs, origin = _choose_archs(args, space)
    log(f"nsas rank: {len(archs):,} {space.name} architectures {origin}; proxies only")
    start = time.perf_counter()
    rows, extra, seconds = _add_proxies(args, space, archs, [], None, log)
    weights_path = None
    if args.fuse:
        rows, weights_path = _add_fused(args, space, rows, list(extra), out, log)
        extra.append("score")
    write_scores(out, rows, kind=space.kind, extra=extra)
    order_by = "score" if args.fuse else extra[0]
    log(f"scored {len(rows):,} architectures in {time.perf_counter() - start:.1f} s")
    log(f"top {min(_TOP, len(rows))} by {order_by}:")
    for row in sorted(rows, key=lambda r: -r[order_by])[:_TOP]:
        log(f"  {row[order_by]:12.5g}  {row['arch']}")
    log(f"scores: {out}")
    return RankResult(rows=rows, out=out, kind=space.kind, order_by=order_by, weights=weights_path,
                      proxy_seconds=seconds)


def ensemble_rows(scored: Sequence[Sequence[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per architecture, the mean accuracy and loss over the runs' rows (the same architectures, in order)."""
    rows = []
    for per_run in zip(*scored, strict=True):
        if len({r["arch"] for r in per_run}) != 1:
            raise ValueError("the runs' rows list different architectures")
        rows.append({"arch": per_run[0]["arch"], "acc": sum(r["acc"] for r in per_run) / len(per_run),
                     "loss": sum(r["loss"] for r in per_run) / len(per_run)})
    return rows


import nsas as _nsas  # noqa: E402

_nsas._make_callable(__name__)  # nsas.rank(...) calls rank() above
