"""Rounds 9 and 10 of the ranking benchmark, judged on held-out cells with round 8's fusion weights.

Round 9: few-shot supernets and NSAS in the low-learning-rate phase; round 10: an archive per live size
class and a cap on the constraints; round 11: few-shot split on the edge measured best on the tune half. Every choice was made before (``results/ranking/round<N>/
PREREGISTRATION.md``); the fusion weights are round 8's ``pipeline.json``. This script reads the round's
jobs (``results/ranking/round<N>/jobs``) and the earlier rounds' jobs of the same seeds, and writes
``judge-<probe>.md`` / ``.json`` into the round's folder for the benchmark's held-out probe and round 8's
fresh probe 2: each run alone (by loss) and fused, and each comparison paired by seed with bootstrap
intervals over the cells.

    python bench/judge_rounds.py 9 --probe probe fresh2
    python bench/judge_rounds.py 10 --probe probe fresh2
    python bench/judge_rounds.py 11 --probe probe fresh2
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import fusion
import ranking

ROUND8 = fusion.RESULTS / "round8"
BASE = "nsas-forget-norm-functions"  # round 8's forgetting variant, which rounds 9 and 10 build on


@dataclass(frozen=True)
class Round:
    """One judged round: its methods (table order) and its comparisons (mine, theirs), paired by seed."""

    folder: Path
    methods: tuple[str, ...]
    comparisons: tuple[tuple[str, str], ...]
    sources: tuple[Path, ...]  # where jobs are looked up, first match wins


ROUNDS = {
    9: Round(fusion.RESULTS / "round9",
             ("ce-functions", "ce-functions-fewshot", BASE, f"{BASE}-fewshot", f"{BASE}-late"),
             (("ce-functions-fewshot", "ce-functions"), (f"{BASE}-fewshot", BASE),
              (f"{BASE}-fewshot", "ce-functions-fewshot"), (f"{BASE}-late", BASE), (f"{BASE}-late", "ce-functions"),
              (BASE, "ce-functions")),
             (fusion.RESULTS / "round9", ROUND8)),
    10: Round(fusion.RESULTS / "round10",
              ("ce-functions", BASE, f"{BASE}-late", f"{BASE}-size", f"{BASE}-cap"),
              ((f"{BASE}-size", "ce-functions"), (f"{BASE}-size", BASE), (f"{BASE}-cap", "ce-functions"),
               (f"{BASE}-cap", BASE), (f"{BASE}-late", "ce-functions"), (BASE, "ce-functions")),
              (fusion.RESULTS / "round10", fusion.RESULTS / "round9", ROUND8)),
    11: Round(fusion.RESULTS / "round11",
              ("ce-functions", "ce-functions-fewshot", "ce-functions-fewshot-e2"),
              (("ce-functions-fewshot-e2", "ce-functions"), ("ce-functions-fewshot-e2", "ce-functions-fewshot")),
              (fusion.RESULTS / "round11", fusion.RESULTS / "round9", ROUND8)),
}


def score_sets(round_: Round) -> list[dict[str, Any]]:
    """Every job of the round's methods, seeds 10-14, from the first of its sources that has it."""
    sets = []
    for method in round_.methods:
        for seed in range(10, 15):
            for folder in round_.sources:
                path = folder / "jobs" / f"{method}-compute-s{seed}.json"
                if path.is_file():
                    job = json.loads(path.read_text())
                    sets.append({"method": method, "seed": seed, "source": str(path.relative_to(fusion.REPO)),
                                 "scores": {a: (v[0], v[1]) for a, v in job["scores"].items()},
                                 "cpu_s": job["train_s"] + job["score_s"], "passes": job["passes"]})
                    break
    return sets


def judge(round_: Round, probe: str, truth: dict[str, float]) -> dict[str, Any]:
    from nsas.fusion import fuse
    from nsas.rankstats import live_parameters

    spec = json.loads((ROUND8 / "pipeline.json").read_text())
    proxies, _ = fusion.read_proxies(ROUND8 / "proxies.csv")
    cells = fusion.probes(truth)[probe]
    t, size = np.array([truth[a] for a in cells]), live_parameters(cells, "nb201")
    plain = fusion.rows_of(cells, proxies, None)
    priors = fuse(plain, spec["priors"]["weights"], method=spec["priors"]["method"])
    weights = spec["pipeline"]["weights"]["ce-functions"]  # the same values for both methods of round 8
    result: dict[str, Any] = {"round": round_.folder.name, "probe": probe, "cells": len(cells), "priors": fusion.judge_vector(priors, t, size),
                              "count": fusion.judge_vector(size, t, size), "runs": [], "paired": {}}
    vectors: dict[str, dict[str, dict[int, np.ndarray]]] = {}
    for s in score_sets(round_):
        if not all(a in s["scores"] for a in cells):
            continue  # a job of another probe
        rows = fusion.rows_of(cells, proxies, s["scores"])
        fused = fuse(rows, weights, method=spec["pipeline"]["method"])
        loss = fusion.oriented(rows, "loss")
        result["runs"].append({"method": s["method"], "seed": s["seed"], "source": s["source"],
                               "passes": s["passes"], "cpu_min": s["cpu_s"] / 60,
                               "loss": fusion.judge_vector(loss, t, size), "fused": fusion.judge_vector(fused, t, size)})
        for name, v in (("loss", loss), ("fused", fused)):
            vectors.setdefault(s["method"], {}).setdefault(name, {})[s["seed"]] = v
    for mine, theirs in round_.comparisons:
        if mine not in vectors or theirs not in vectors:
            continue
        common = sorted(set(vectors[mine]["loss"]) & set(vectors[theirs]["loss"]))
        for name in ("loss", "fused"):
            result["paired"][f"{mine} - {theirs} ({name})"] = fusion.paired(
                [vectors[mine][name][k] for k in common], [vectors[theirs][name][k] for k in common], t, size)
    for method, v in vectors.items():
        seeds = sorted(v["fused"])
        result["paired"][f"{method} fused - priors"] = fusion.paired([v["fused"][k] for k in seeds],
                                                                     [priors] * len(seeds), t, size)
    return result


def _f(x: Any) -> str:
    return fusion._f(x)


def format_judge(round_: Round, r: dict[str, Any]) -> str:
    lines = [f"# Round {round_.folder.name.removeprefix('round')}, judged on `{r['probe']}` ({r['cells']} held-out cells)", "",
             "Fusion: round 8's pipeline.json (z fusion; loss 0.05, params 0.05, jacov 0.90), fitted on the tune half.",
             f"Live parameter count alone: tau {_f(r['count']['tau'])}, pick {r['count']['pick_acc']:.2f}; "
             f"priors fused (no supernet): tau {_f(r['priors']['tau'])}, pick {r['priors']['pick_acc']:.2f}.", "",
             "| method | seed | passes | tau loss | within-size loss | tau fused | within-size fused | pick (fused) | CPU-min |",
             "|---|---|---|---|---|---|---|---|---|"]
    def line(label: str, seed: str, runs: list[dict[str, Any]]) -> str:
        """One table row: a run, or the mean of several (NaN within-size values left out)."""
        mean = lambda f: float(np.nanmean([f(x) for x in runs]))  # noqa: E731
        cells = [mean(lambda x: x["loss"]["tau"]), mean(lambda x: x["loss"]["within_size"]),
                 mean(lambda x: x["fused"]["tau"]), mean(lambda x: x["fused"]["within_size"])]
        passes = str(runs[0]["passes"]) if len(runs) == 1 else ""
        return (f"| {label} | {seed} | {passes} | {' | '.join(_f(c) for c in cells)} | "
                f"{mean(lambda x: x['fused']['pick_acc']):.2f} | {mean(lambda x: x['cpu_min']):.1f} |")

    for run in sorted(r["runs"], key=lambda x: (round_.methods.index(x["method"]), x["seed"])):
        lines.append(line(run["method"], str(run["seed"]), [run]))
    for m in round_.methods:
        mine = [x for x in r["runs"] if x["method"] == m]
        if mine:
            lines.append(line(f"**{m}**", f"mean of {len(mine)}", mine))
    return "\n".join(lines + fusion.paired_table(r["paired"])) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("round", type=int, choices=sorted(ROUNDS))
    parser.add_argument("--probe", nargs="+", choices=("probe", "fresh2"), default=["probe", "fresh2"])
    args = parser.parse_args(argv)
    round_ = ROUNDS[args.round]
    truth = ranking.read_truth(ranking.TRUTH)
    for probe in args.probe:
        result = judge(round_, probe, truth)
        (round_.folder / f"judge-{probe}.json").write_text(json.dumps(result, indent=1, default=float))
        (round_.folder / f"judge-{probe}.md").write_text(format_judge(round_, result))
        print(format_judge(round_, result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
