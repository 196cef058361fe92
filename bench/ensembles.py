"""Seed ensembles of benchmark supernets: how does tau grow with the number of runs averaged?

``nsas rank RUN_A RUN_B ...`` averages each cell's accuracy and loss over
several supernets. This script takes the probe scores of several runs of one
configuration (``bench/ranking.py`` job files ``jobs/NAME.json``, or score CSVs
``arch,acc,loss`` such as ``nsas rank`` and ``bench/bn_rescore.py`` write) and
reports, for every ensemble size k, Kendall tau of every k-subset's ensemble
(mean, min, max, and how many subsets reach ``--target``), ranking by accuracy
or (``--score loss``) by the validation loss alone, next to the
training-free live-parameter baseline. Compute grows with k: k searches and
k scorings.

    python bench/ensembles.py --out results/ranking/ensembles --split holdout \\
        --group ce-functions results/ranking/bn-recalibrate/scores/holdout-ce-functions-compute-s0-recalibrate.csv ... \\
        --group nsas-forget-norm-functions ...

Every source must score the whole probe of ``--split`` (``bench/ranking.py``'s
200 stratified cells); the tau is the benchmark's (``ranking.metrics``:
accuracy, ties broken by the lower loss). ``--probe fresh`` uses 200 other
cells of the split instead (``ranking.fresh_probe``), which no earlier
decision looked at; ``--write-probe FILE`` writes them for ``nsas rank``:

    python bench/ensembles.py --out OUT --probe fresh --write-probe fresh.txt
    nsas rank RUN --archs fresh.txt --out RUN-fresh.csv        # per run (checkpoints: bench/ranking.py run)
"""
from __future__ import annotations

import argparse
import csv
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np

import ranking  # the benchmark's truth, probe and metrics (a sibling script: python puts bench/ on sys.path)


def read_scores(path: Path) -> dict[str, list[float]]:
    """``{arch: [acc, loss]}`` from a benchmark job file or a scores CSV."""
    if path.suffix == ".json":
        return json.loads(path.read_text())["scores"]
    with open(path, newline="") as f:
        return {row["arch"]: [float(row["acc"]), float(row["loss"])] for row in csv.DictReader(f)}


def ensemble(runs: list[dict[str, list[float]]], cells: list[str]) -> dict[str, list[float]]:
    """Each cell's accuracy and loss averaged over ``runs`` (as ``nsas rank RUN_A RUN_B ...`` does)."""
    return {a: np.mean([run[a] for run in runs], axis=0).tolist() for a in cells}


def ensemble_taus(runs: list[dict[str, list[float]]], truth: dict[str, float], probe: list[str],
                  target: float) -> list[dict[str, Any]]:
    """Per ensemble size k: the taus of all k-subsets of ``runs`` and how many reach ``target``."""
    rows = []
    for k in range(1, len(runs) + 1):
        taus = [ranking.metrics(ensemble([runs[i] for i in subset], probe), truth, probe, [])["tau"]
                for subset in itertools.combinations(range(len(runs)), k)]
        rows.append({"k": k, "taus": taus, "mean": float(np.mean(taus)), "min": float(min(taus)),
                     "max": float(max(taus)), "reach": sum(t >= target for t in taus)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--split", choices=("tune", "holdout"), default="holdout")
    parser.add_argument("--group", nargs="+", action="append", default=[], metavar=("NAME", "SOURCE"),
                        help="a configuration's name, then its runs' job files or score CSVs (one per seed)")
    parser.add_argument("--probe", choices=("benchmark", "fresh"), default="benchmark",
                        help="benchmark: bench/ranking.py's probe of --split; fresh: 200 other cells of --split, "
                             "stratified the same way, that no result before round 7 looked at")
    parser.add_argument("--write-probe", type=Path, metavar="FILE",
                        help="write the probe's cells (one per line, for `nsas rank RUN --archs FILE`) and stop")
    parser.add_argument("--score", choices=("acc", "loss"), default="acc",
                        help="rank by accuracy, ties broken by the lower loss (the benchmark's score, default), or "
                             "by the mean validation loss alone (lower ranks higher)")
    parser.add_argument("--target", type=float, default=0.6, help="the tau to count subsets reaching (default 0.6)")
    parser.add_argument("--truth", type=Path, default=ranking.TRUTH)
    args = parser.parse_args(argv)
    if not args.truth.is_file():
        parser.error(f"truth table not found: {args.truth}")
    if not args.group and not args.write_probe:
        parser.error("name at least one --group (or --write-probe FILE)")
    for group in args.group:
        if len(group) < 2:
            parser.error(f"--group {group[0]}: name the group, then at least one job file or score CSV")
        for source in group[1:]:
            if not Path(source).is_file():
                parser.error(f"--group {group[0]}: {source} is not a file")
    truth = ranking.read_truth(args.truth)
    if args.probe == "fresh":
        probe = ranking.fresh_probe(truth, args.split, 200)
    else:
        probe, _ = ranking.probe_and_candidates(truth, args.split, 200, 0)
    if args.write_probe:
        args.write_probe.write_text("".join(a + "\n" for a in probe))
        return 0
    groups = {}
    for name, *sources in args.group:
        runs = [read_scores(Path(s)) for s in sources]
        if args.score == "loss":  # -loss as the accuracy slot: the ensemble's mean loss decides, lowest first
            runs = [{a: [-loss, loss] for a, (_, loss) in run.items()} for run in runs]
        for source, run in zip(sources, runs):
            if missing := [a for a in probe if a not in run]:
                parser.error(f"{source} lacks {len(missing)} of the {args.probe} {args.split} probe's 200 cells")
        groups[name] = {"sources": sources, "sizes": ensemble_taus(runs, truth, probe, args.target)}
    args.out.mkdir(parents=True, exist_ok=True)
    ranking.record_command(args.out, argv)
    baseline = ranking.baseline_metrics(truth, probe, [])["tau"]
    lines = [f"Kendall tau on the {args.probe} {args.split} probe (200 cells) of seed ensembles of k runs: each cell's accuracy "
             f"and loss averaged over the k runs' scores, every k-subset of the runs, ranked by "
             f"{'mean loss' if args.score == 'loss' else 'mean accuracy (ties: mean loss)'}. Live parameter count (no "
             f"training): {baseline:.3f}.", "",
             f"| configuration | k | subsets | tau mean | min | max | subsets with tau >= {args.target} |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, group in groups.items():
        for row in group["sizes"]:
            lines.append(f"| {name} | {row['k']} | {len(row['taus'])} | {row['mean']:.3f} | {row['min']:.3f} | "
                         f"{row['max']:.3f} | {row['reach']} |")
    lines += ["", "Single runs, in the order of their sources:", ""]
    lines += [f"- {name}: " + ", ".join(f"{t:.3f}" for t in group["sizes"][0]["taus"]) for name, group in groups.items()]
    lines += ["", "Sources (one run each, in order):", ""]
    lines += [f"- {name}: " + ", ".join(f"`{s}`" for s in group["sources"]) for name, group in groups.items()]
    (args.out / "report.md").write_text("\n".join(lines) + "\n")
    (args.out / "report.json").write_text(json.dumps({"split": args.split, "probe": args.probe, "score": args.score, "target": args.target,
                                                      "live_parameters": baseline, "groups": groups}, indent=1))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
