"""`nsas rank`: score architectures with a search run's inherited supernet weights.

    nsas rank runs/search-nb201-random-nsas-... --all --batches 1 --batch-size 256
    nsas rank RUN_DIR --archs candidates.txt --split test --bn recalibrate
    nsas rank RUN_DIR --sample 1000 --seed 1 --out sample.csv

Every architecture runs its single path through the trained supernet on the
same K batches and gets its accuracy (per image, or per token for text) and
mean cross-entropy. The CSV (``arch,acc,loss``, plus ``ppl`` for darts-rnn)
has one row per canonical string, in the order the architectures were given,
and is what ``nsas correlate`` reads. Image architectures rank by accuracy,
RNN cells by loss. A text score runs through the first K windows of the
split in order, carrying the architecture's own hidden state from window to
window (:func:`nsas.evaluate.path_outputs`).

Speed: the K batches are made once and stay on the device (channels-last on
the CPU), every forward runs under ``torch.inference_mode``, and each
architecture's sums stay on the device until all are scored, so a GPU never
waits for the host. ``--workers N`` splits the architectures over N CPU
processes of one thread each (same scores, same order). Measured on the
project's 2-core machine (AMD EPYC, AVX2, torch 2.13), otherwise idle, for a
supernet of 8 channels and 1 cell per stage (a run of
results/nb201-cifar10-study) and one batch of 256 images::

    OMP_NUM_THREADS=1 nsas rank RUN --sample 200 --batches 1 --batch-size 256 --device cpu   # 7.2 architectures/s
    nsas rank RUN --sample 1000 --batches 1 --batch-size 256 --device cpu --workers 2       # 13.1 architectures/s

so ``--all`` (15,625 architectures) takes about 20 minutes with
``--workers 2`` (36 with one process); the time scales with
``--batch-size`` and ``--batches``. On a machine shared with other work,
``OMP_NUM_THREADS=1`` avoids thread oversubscription (2 threads there were
4x slower than 1).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import math
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from nsas import data as nsas_data
from nsas.correlate import read_table
from nsas.errors import ArchitectureError, NsasError
from nsas.evaluate import Batch, path_outputs, recalibrated_bn
from nsas.rundir import write_text_atomic
from nsas.search import (
    SearchConfig,
    build_search_data,
    fixed_batches,
    load_search_run,
    resolve_device,
)
from nsas.spaces import get_space
from nsas.spaces.base import Architecture, SearchSpace

SPLITS = ("val", "test")
BN_MODES = ("batch", "recalibrate")
_TOP = 5  # architectures printed at the end


# ---------------------------------------------------------------- architectures
def read_arch_file(path: str | Path, space: SearchSpace) -> tuple[list[Architecture], int]:
    """Architectures listed in a file, parsed in ``space``; repeats dropped.

    A plain list holds one architecture per line (blank lines and ``#``
    comments ignored). A ``.csv``, ``.json`` or ``.jsonl`` file, or one whose
    first line is a CSV header with an ``arch`` column or starts JSON, is a
    table read by :func:`nsas.correlate.read_table` (its ``arch`` column; the
    other columns are ignored; as there, a table may not repeat a row's exact
    ``arch`` text).

    Returns:
        The architectures in file order, each once (the first spelling of an
        architecture written twice, in any form, is kept), and how many
        entries were dropped as repeats.

    Raises:
        NsasError: unreadable file, no architectures, or an entry the space
            cannot parse (naming the file and line).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise NsasError(f"cannot read architecture file {path}: {getattr(err, 'strerror', None) or err}") from None
    entries = _table_entries(path) if _is_table(path, text) else _list_entries(text)
    if not entries:
        raise NsasError(f"{path}: no architectures (blank lines and '#' comments only)")
    archs: dict[Architecture, None] = {}
    for line, raw in entries:
        try:
            archs.setdefault(space.parse(raw), None)
        except ArchitectureError as err:
            raise ArchitectureError(f"{path} line {line}: not a {space.name} architecture: {err}") from None
    return list(archs), len(entries) - len(archs)


def _list_entries(text: str) -> list[tuple[int, str]]:
    """``(line number, text)`` of every non-blank, non-comment line."""
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()  # no architecture string contains '#'
        if line:
            entries.append((number, line))
    return entries


def _is_table(path: Path, text: str) -> bool:
    if path.suffix.lower() in (".csv", ".json", ".jsonl"):
        return True
    first = next((line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")), "")
    cells = next(csv.reader([first]), None) or []
    return first[:1] in ("[", "{") or "arch" in (cell.strip() for cell in cells)


def _table_entries(path: Path) -> list[tuple[int, str]]:
    table = read_table(path, keys=[])
    lines: dict[str, int] = getattr(table, "lines", {})
    return [(lines.get(raw, 0), raw) for raw in table]


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
    """The batch size scores use: the run's ``eval_batch_size`` for text (DARTS: 10), else its ``batch_size``."""
    return cfg.eval_batch_size if get_space(cfg.space).kind == "text" else cfg.batch_size


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
        field = "eval_batch_size" if text else "batch_size"
        return build_search_data(dataclasses.replace(cfg, **{field: batch_size}), torch.device(device)).score
    if split != "test":
        raise NsasError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    dataset = nsas_data.load_dataset(cfg.dataset, cfg.data_dir)
    if isinstance(dataset, nsas_data.TextDataset):
        return nsas_data.TextBatches(dataset.test, batch_size=batch_size, bptt=cfg.bptt, device=device)
    return nsas_data.ImageBatches(dataset.test_x, dataset.test_y, batch_size=batch_size, mean=dataset.mean,
                                  std=dataset.std, augment=False, shuffle=True, seed=cfg.seed, device=device)


# ---------------------------------------------------------------- scoring
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


def score_archs(model: nn.Module, archs: Sequence[Architecture], batches: Sequence[Batch], *,
                recalibrate: Sequence[Batch] = (), seed: int = 0, progress: bool = False
                ) -> list[dict[str, Any]]:
    """Accuracy and mean cross-entropy of every architecture on the same ``batches``.

    The same numbers as :func:`nsas.evaluate.evaluate_path` on the preloaded
    batches, computed for many paths without a host synchronisation per path.

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
    return [{"arch": str(arch), "acc": 100.0 * correct / total, "loss": loss / total}
            for arch, (correct, loss) in zip(archs, values)]


def best_first(rows: Sequence[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """Rows sorted best first: by accuracy (then loss) for images, by loss for text."""
    if kind == "text":
        return sorted(rows, key=lambda r: r["loss"])
    return sorted(rows, key=lambda r: (-r["acc"], r["loss"]))


def write_scores(path: str | Path, rows: Sequence[dict[str, Any]], *, kind: str) -> None:
    """The CSV ``arch,acc,loss`` (``+ppl`` for text), written atomically; floats exact (repr)."""
    columns = ["arch", "acc", "loss"] + (["ppl"] if kind == "text" else [])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        if kind == "text":
            row = {**row, "ppl": math.exp(row["loss"]) if row["loss"] < 700 else math.inf}
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
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a search run directory (config.yaml, checkpoint.pt)")
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
                        help="batch size (default: the run's; darts-rnn: its eval_batch_size, 10)")
    parser.add_argument("--bn", choices=BN_MODES, default="batch",
                        help="batch: BatchNorm uses each batch's statistics, as in the search (default); "
                             "recalibrate: per-architecture statistics from training batches")
    parser.add_argument("--recalibrate-batches", dest="recalibrate_batches", metavar="R", type=_positive,
                        default=None, help="training batches per recalibration (default 10; needs --bn recalibrate)")
    parser.add_argument("--seed", type=int, default=0, help="seed of --sample and of recalibration (default 0)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.add_argument("--out", metavar="FILE.csv", default=None, help="where to write the scores (default RUN_DIR/scores.csv)")
    parser.add_argument("--workers", type=int, default=1,
                        help="CPU processes scoring slices of the architectures, one thread each (default 1)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _choose_archs(args: argparse.Namespace, space: SearchSpace) -> tuple[list[Architecture], str]:
    """The architectures to score, and a note on where they came from."""
    if args.archs is not None:
        archs, repeats = read_arch_file(args.archs, space)
        return archs, f"from {args.archs}" + (f" ({repeats} repeated entries dropped)" if repeats else "")
    if args.sample is not None:
        return sample_archs(space, args.sample, args.seed), f"sampled with seed {args.seed}"
    return list(space.enumerate()), "(the whole space)"


def _eval_batches(args: argparse.Namespace, cfg: SearchConfig, batches: Any) -> list[Batch]:
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


def _setup(args: argparse.Namespace) -> tuple[SearchConfig, nn.Module, list[Batch], list[Batch], torch.device]:
    """The run's supernet, the scoring batches and the recalibration batches (the same in every worker)."""
    device = resolve_device(args.device)
    cfg, supernet, data, _ = load_search_run(args.run_dir, device)
    batch_size = args.batch_size or default_batch_size(cfg)
    eval_set = _eval_batches(args, cfg, split_batches(cfg, data, args.split, batch_size=batch_size, device=device))
    recalibrate = []
    if args.bn == "recalibrate":
        recalibrate = fixed_batches(data.train, args.recalibrate_batches or 10)
    return cfg, supernet, eval_set, recalibrate, device


def _score_chunk(args: argparse.Namespace, archs: list[str]) -> list[dict[str, Any]]:
    """One worker process of ``--workers``: one thread, its own copy of the run, a slice of the architectures."""
    torch.set_num_threads(1)
    cfg, supernet, eval_set, recalibrate, _ = _setup(args)
    space = get_space(cfg.space)
    return score_archs(supernet, [space.parse(a) for a in archs], eval_set, recalibrate=recalibrate, seed=args.seed)


def _score_parallel(args: argparse.Namespace, archs: list[Architecture]) -> list[dict[str, Any]]:
    """Score in ``args.workers`` processes (contiguous slices, results in input order)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    size = -(-len(archs) // args.workers)
    chunks = [[str(a) for a in archs[i:i + size]] for i in range(0, len(archs), size)]
    with ProcessPoolExecutor(len(chunks), mp_context=multiprocessing.get_context("spawn")) as pool:
        return [row for rows in pool.map(_score_chunk, [args] * len(chunks), chunks) for row in rows]


def run(args: argparse.Namespace) -> int:
    """`nsas rank`."""
    if args.recalibrate_batches is not None and args.bn != "recalibrate":
        raise NsasError("--recalibrate-batches applies only with --bn recalibrate")
    if args.workers < 1:
        raise NsasError(f"--workers must be at least 1, got {args.workers}")
    cfg, supernet, eval_set, recalibrate, device = _setup(args)
    if args.workers > 1 and device.type != "cpu":
        raise NsasError("--workers splits the work over CPU processes; on a GPU leave it at 1")
    space = get_space(cfg.space)
    out = Path(args.out) if args.out else Path(args.run_dir) / "scores.csv"
    if not out.parent.is_dir():
        raise NsasError(f"cannot write {out}: folder {out.parent} does not exist")
    archs, origin = _choose_archs(args, space)
    unit = "tokens" if space.kind == "text" else "images"
    examples = sum(y.numel() for _, y in eval_set)
    bn = f"recalibrated on {len(recalibrate)} training batches" if recalibrate else "batch statistics"
    print(f"nsas rank: {len(archs):,} {space.name} architectures {origin}; {args.split} split, "
          f"{len(eval_set)} batches ({examples:,} {unit}); BatchNorm: {bn}; {device}")
    start = time.perf_counter()
    if args.workers > 1:
        rows = _score_parallel(args, archs)
    else:
        rows = score_archs(supernet, archs, eval_set, recalibrate=recalibrate, seed=args.seed,
                           progress=not args.quiet)
    seconds = time.perf_counter() - start
    write_scores(out, rows, kind=space.kind)
    print(f"scored {len(rows):,} architectures in {seconds:.1f} s ({len(rows) / max(seconds, 1e-9):.1f} architectures/s)")
    print(f"top {min(_TOP, len(rows))} by {'loss' if space.kind == 'text' else 'accuracy'}:")
    for row in best_first(rows, space.kind)[:_TOP]:
        print(f"  {row['acc']:7.2f}%  loss {row['loss']:.4f}  {row['arch']}")
    print(f"scores: {out}")
    return 0
