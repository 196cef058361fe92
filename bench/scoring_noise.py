"""How precise is an inherited-weight score? Per-architecture noise across image subsets vs spread between archs.

    OMP_NUM_THREADS=1 python bench/scoring_noise.py RUN_DIR \
        --truth ../shared/data/nb201/cifar10-test-acc.public.csv --archs 40 --sizes 256 1024 5120

RUN_DIR is an nb201 search run (``nsas search ... --out RUN_DIR``). The
script takes the run's validation half, cuts the first ``max(sizes) x
subsets`` images into batches of ``--batch-size`` (BatchNorm uses batch
statistics, as in every nsas score), and scores ``--archs`` architectures
(a stratified sample of the truth table, one per supernet function) on every
batch with the batched scorer (``nsas.evaluate.score_archs``). A subset of n
images is n / batch-size consecutive batches; subsets of one size are
disjoint. For each size it reports:

- noise: the standard deviation of an architecture's accuracy across the
  disjoint subsets (root mean square over architectures);
- spread: the standard deviation between architectures of their accuracy on
  all scored images;
- relative noise: the same after subtracting from every score the mean over
  architectures on its subset (a harder subset lowers every architecture
  alike, which does not change a ranking);
- relative noise / spread, the share of ties on accuracy alone, the mean Kendall
  tau-b between the rankings of two disjoint subsets (how reproducible a
  ranking at that size is), and the mean tau-b against the truth table.

Prints a markdown table (and ``--json PATH`` writes the numbers).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import statistics
import time
from pathlib import Path

import torch

from nsas.rankstats import kendall_tau
from nsas.evaluate import score_archs
from nsas.search import build_search_data, fixed_batches, load_search_run
from nsas.spaces import get_space
from nsas.truth import read_truth, stratified_sample


def distinct_sample(values: dict[str, float], count: int, seed: int) -> list[str]:
    """A stratified sample of ``values`` after keeping one architecture (the first listed) per supernet function."""
    space = get_space("nb201")
    first: dict = {}
    for arch in values:
        first.setdefault(space.same_function(space.parse(arch)), arch)
    return stratified_sample({a: values[a] for a in first.values()}, count, seed=seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--truth", required=True, help="truth table of nb201 architectures")
    parser.add_argument("--archs", type=int, default=40)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 5120])
    parser.add_argument("--subsets", type=int, default=4, help="disjoint subsets of the largest size")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if any(n % args.batch_size for n in args.sizes):
        parser.error("every size must be a multiple of --batch-size")

    cfg, supernet, _, _ = load_search_run(args.run_dir, "cpu")

    val = build_search_data(dataclasses.replace(cfg, batch_size=args.batch_size), torch.device("cpu")).val
    n_batches = max(args.sizes) * args.subsets // args.batch_size
    if n_batches > len(val):
        parser.error(f"the validation half has only {len(val)} batches of {args.batch_size}")
    batches = fixed_batches(val, n_batches)
    key, truth = read_truth(args.truth, space="nb201")
    archs = distinct_sample(truth, args.archs, args.seed)
    space = get_space("nb201")
    parsed = [space.parse(a) for a in archs]

    start = time.perf_counter()
    per_batch = [score_archs(supernet, parsed, [b]) for b in batches]  # [batch][arch] -> {acc, loss}
    seconds = time.perf_counter() - start
    correct = [[r["acc"] * args.batch_size / 100 for r in rows] for rows in per_batch]
    losses = [[r["loss"] * args.batch_size for r in rows] for rows in per_batch]

    def subset_scores(size: int) -> list[list[tuple[float, float]]]:
        """[subset][arch] -> (accuracy %, mean loss) on disjoint subsets of ``size`` images."""
        k = size // args.batch_size
        out = []
        for s in range(n_batches // k):
            rows = range(s * k, (s + 1) * k)
            out.append([(100 * sum(correct[b][a] for b in rows) / size, sum(losses[b][a] for b in rows) / size)
                        for a in range(len(archs))])
        return out

    overall = subset_scores(n_batches * args.batch_size)[0]
    spread = statistics.pstdev(acc for acc, _ in overall)
    true = [truth[a] for a in archs]
    results = []
    for size in sorted(args.sizes):
        subsets = subset_scores(size)
        noise = math.sqrt(statistics.fmean(statistics.variance([s[a][0] for s in subsets])
                                           for a in range(len(archs))))
        # what ranking sees: each architecture's score relative to the subset's mean over architectures
        centred = [[acc - statistics.fmean(x for x, _ in s) for acc, _ in s] for s in subsets]
        relative = math.sqrt(statistics.fmean(statistics.variance([c[a] for c in centred])
                                              for a in range(len(archs))))
        order = lambda s: [acc - 1e-6 * loss for acc, loss in s]  # noqa: E731  (ties broken by loss)
        pairs = list(itertools.combinations(range(len(subsets)), 2))[:50]
        between = statistics.fmean(kendall_tau(order(subsets[i]), order(subsets[j])) for i, j in pairs)
        vs_truth = statistics.fmean(kendall_tau(order(s), true) for s in subsets)
        ties = statistics.fmean(1 - len({acc for acc, _ in s}) / len(archs) for s in subsets)
        results.append({"images": size, "subsets": len(subsets), "noise": noise, "relative_noise": relative,
                        "spread": spread, "ratio": relative / spread, "tie_share": ties, "tau_between_subsets": between,
                        "tau_vs_truth": vs_truth})
    images_per_s = len(archs) * n_batches * args.batch_size / seconds
    print(f"run {args.run_dir} ({cfg.channels} channels, {cfg.cells} cell(s) per stage); {len(archs)} architectures "
          f"(stratified over {args.truth}'s {key}, one per supernet function); batches of {args.batch_size}; "
          f"{n_batches * args.batch_size:,} validation images; scoring {seconds:.0f} s "
          f"({images_per_s:,.0f} images/s, one thread)\n")
    print("| images | subsets | noise (pts) | relative noise (pts) | spread between archs (pts) "
          "| relative noise / spread | accuracy ties | tau between subsets | tau vs truth |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['images']:,} | {r['subsets']} | {r['noise']:.2f} | {r['relative_noise']:.2f} "
              f"| {r['spread']:.2f} | {r['ratio']:.3f} "
              f"| {100 * r['tie_share']:.0f}% | {r['tau_between_subsets']:.3f} | {r['tau_vs_truth']:.3f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"archs": archs, "results": results, "seconds": seconds,
                                               "images_per_s": images_per_s}, indent=2))


if __name__ == "__main__":
    main()
