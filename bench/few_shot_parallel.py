"""How much faster do a few-shot supernet's sub-supernets train in two processes than in one?

    python bench/few_shot_parallel.py [--rounds N] [--epochs N] [--steps N] [--losses ce,nsas] [--json PATH]

One few-shot search per variant, on the same config: the ``nb201-cpu`` preset's network (8 channels, 1
cell per stage, batch 64, lr 0.1) split on edge 3 from the start (``few_shot_warmup 0``, so every step is
a split step), on the embedded cifar10-mini set, ``--epochs`` epochs of ``--steps`` steps, a minimal
selection (2 candidates, batch-statistics scoring) since only training is timed. Variants:

  seq-1t   few_shot_workers 1, 1 torch thread (one process, one core)
  par-2x1  few_shot_workers 2 at 2 threads: two processes, one thread each (both cores)
  seq-2t   few_shot_workers 1, 2 torch threads (one process, both cores through torch's intra-op pool)

Rounds are interleaved (seq-1t, par-2x1, seq-2t, then again), and each variant's time is the run's
``train_seconds`` (summary.json: the training loop's wall time, which for par-2x1 includes starting
the worker process, importing torch there and sending the copies every epoch). The result is the ratio
of each variant's time to par-2x1's in the same round (the machine may be shared; adjacent runs see the
same load), median over the rounds. Every round also checks that par-2x1's final weights equal
seq-1t's bit for bit (the same computation at one thread per process).

Ideal speedup: a copy trains in one process for a whole epoch, so with 5 copies of about equal step
counts on 2 processes the best split is 3 : 2 and par-2x1 can be at most ~1.67x faster than seq-1t.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from nsas.search import SearchConfig, search
from nsas.search_config import NB201_CPU

VARIANTS = {"seq-1t": (1, 1), "par-2x1": (2, 2), "seq-2t": (1, 2)}  # name -> (few_shot_workers, torch threads)


def config(loss: str, epochs: int, steps: int, workers: int, dataset: str = "cifar10-mini") -> SearchConfig:
    sizes = {k: NB201_CPU[k] for k in ("channels", "cells", "batch_size", "lr", "lr_min")}
    return SearchConfig(space="nb201", dataset=dataset, strategy="random", loss=loss, sampling="functions",
                        few_shot_edge=3, few_shot_warmup=0.0, few_shot_workers=workers, epochs=epochs,
                        steps_per_epoch=steps, archive_size=4, eval_batches=1, select_rounds=1, select_samples=2,
                        probe_count=1, log_every=50, checkpoint_every=0, seed=0, **sizes)


def run_variant(loss: str, name: str, epochs: int, steps: int, root: Path, dataset: str) -> tuple[float, float, Path]:
    workers, threads = VARIANTS[name]
    torch.set_num_threads(threads)
    out = root / f"{loss}-{name}"
    t0 = time.perf_counter()
    search(config(loss, epochs, steps, workers, dataset), out, progress=False, force=True)
    wall = time.perf_counter() - t0
    return json.loads((out / "summary.json").read_text())["train_seconds"], wall, out


def same_weights(a: Path, b: Path) -> bool:
    from nsas.checkpoint import load_checkpoint

    sa = load_checkpoint(a / "checkpoint.pt", kind="search")["supernet"]
    sb = load_checkpoint(b / "checkpoint.pt", kind="search")["supernet"]
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=150, help="steps per epoch")
    parser.add_argument("--losses", default="ce,nsas")
    parser.add_argument("--dataset", default="cifar10-mini",
                        help="cifar10-mini (embedded: 39 steps an epoch) or any data set nsas loads, e.g. cifar10 or "
                             "imagefolder:PATH.tar.gz (full CIFAR-10: 390 steps an epoch, the preset's)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    results: dict[str, list[dict[str, float | bool]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for loss in args.losses.split(","):
            results[loss] = []
            for r in range(args.rounds):
                row: dict[str, float | bool] = {}
                for name in VARIANTS:
                    row[name], row[f"{name}_wall"], _ = run_variant(loss, name, args.epochs, args.steps, root, args.dataset)
                row["identical"] = same_weights(root / f"{loss}-seq-1t", root / f"{loss}-par-2x1")
                results[loss].append(row)
                print(f"{loss} round {r + 1}: " + ", ".join(f"{n} {row[n]:.1f}s" for n in VARIANTS)
                      + f", par-2x1 == seq-1t bit for bit: {row['identical']}", file=sys.stderr, flush=True)
    print(f"few-shot split training, nb201-cpu network, edge 3, {args.epochs} epochs x {args.steps} steps, "
          f"{args.rounds} rounds, torch {torch.__version__}\n")
    print("| loss | seq-1t s | par-2x1 s | seq-2t s | seq-1t / par-2x1 | seq-2t / par-2x1 | bit-identical |")
    print("|---|---|---|---|---|---|---|")
    for loss, rows in results.items():
        med = {n: statistics.median(float(r[n]) for r in rows) for n in VARIANTS}
        ratio = {n: statistics.median(float(r[n]) / float(r["par-2x1"]) for r in rows) for n in ("seq-1t", "seq-2t")}
        spread = {n: (min(float(r[n]) / float(r["par-2x1"]) for r in rows),
                      max(float(r[n]) / float(r["par-2x1"]) for r in rows)) for n in ("seq-1t", "seq-2t")}
        print(f"| {loss} | {med['seq-1t']:.1f} | {med['par-2x1']:.1f} | {med['seq-2t']:.1f} | "
              f"{ratio['seq-1t']:.2f} ({spread['seq-1t'][0]:.2f}-{spread['seq-1t'][1]:.2f}) | "
              f"{ratio['seq-2t']:.2f} ({spread['seq-2t'][0]:.2f}-{spread['seq-2t'][1]:.2f}) | "
              f"{all(bool(r['identical']) for r in rows)} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
