"""Re-score trained benchmark supernets with per-architecture BatchNorm recalibration.

The ranking benchmark (``bench/ranking.py``) scores every cell with the
supernet's batch statistics: BatchNorm normalises each 256-image scoring batch
by its own mean and variance. ``--bn recalibrate`` (``nsas rank``) instead
gives each cell statistics of its own, averaged over the first R training
batches, and scores in eval mode. This script scores the same probe with the
same trained runs both ways, side by side in one process, and reports Kendall
tau (by accuracy with the loss as tie-break, and by loss), the concordance
within equal live size, and the scoring time of each mode (a ratio: the
machine is shared).

    python bench/bn_rescore.py --out results/ranking/bn-recalibrate \\
        --runs holdout:results/ranking/holdout-7800/runs/ce-functions-compute-s0 ...

``--runs`` takes ``SPLIT:RUN_DIR`` items (the probe of ``SPLIT``, as
``bench/ranking.py --split``). The run directories are those that
``bench/ranking.py run`` writes (checkpoints are not committed; the same
command recreates them). Every score is written to ``OUT/scores/`` and the
table to ``OUT/report.md``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import ranking  # the benchmark's truth, probe and score conventions (a sibling script: python puts bench/ on sys.path)

MODES = ("batch", "recalibrate")


def rescore(run: Path, probe: list[str], out_csv: Path, bn: str, recalibrate_batches: int) -> tuple[dict, float]:
    """Scores ``{arch: [acc, loss]}`` of ``probe`` by ``run`` at the benchmark's 1,024 images, and seconds taken."""
    import nsas
    t0 = time.perf_counter()
    result = nsas.rank(run, probe, batches=ranking.SCORE_IMAGES // ranking.SCORE_BATCH, batch_size=ranking.SCORE_BATCH,
                       bn=bn, recalibrate_batches=recalibrate_batches if bn == "recalibrate" else None,
                       device="cpu", out=out_csv)
    return {r["arch"]: [r["acc"], r["loss"]] for r in result.rows}, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--runs", nargs="+", required=True, metavar="SPLIT:RUN_DIR")
    parser.add_argument("--truth", type=Path, default=ranking.TRUTH)
    parser.add_argument("--recalibrate-batches", type=int, default=10)
    args = parser.parse_args(argv)
    if not args.truth.is_file():
        parser.error(f"truth table not found: {args.truth}")
    truth = ranking.read_truth(args.truth)
    items = [item.partition(":")[::2] for item in args.runs]
    for (split, run), item in zip(items, args.runs):
        if split not in ("tune", "holdout") or not run:
            parser.error(f"--runs items are SPLIT:RUN_DIR with SPLIT tune or holdout, not {item!r}")
    (args.out / "scores").mkdir(parents=True, exist_ok=True)
    ranking.record_command(args.out, argv)
    lines = ["| split | run | mode | tau (acc) | tau (loss) | within equal size | scoring s |", "|---|---|---|---:|---:|---:|---:|"]
    gains: dict[str, list[float]] = {}
    for split, run in items:
        probe, _ = ranking.probe_and_candidates(truth, split, 200, 0)
        taus = {}
        for mode in MODES:
            scores, seconds = rescore(Path(run), probe, args.out / "scores" / f"{split}-{Path(run).name}-{mode}.csv",
                                      mode, args.recalibrate_batches)
            m = ranking.metrics(scores, truth, probe, [])  # the benchmark's own tau, tau by loss and within-size
            taus[mode] = m["tau"]
            lines.append(f"| {split} | {Path(run).name} | {mode} | {m['tau']:.3f} | {m['tau_loss']:.3f} | "
                         f"{m['tau_within_size']:.3f} | {seconds:.0f} |")
            print(lines[-1], flush=True)
        gains.setdefault(split, []).append(taus["recalibrate"] - taus["batch"])
    lines.append("")
    for split, g in gains.items():
        lines.append(f"{split}: recalibrate - batch, tau by accuracy: "
                     + ", ".join(f"{x:+.3f}" for x in g) + f" (mean {np.mean(g):+.3f})")
    (args.out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[-len(gains):]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
