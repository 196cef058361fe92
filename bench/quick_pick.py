"""How good is the quick preset's pick? Its true NAS-Bench-201 accuracy, per seed.

Runs the no-argument search (the quick preset: nb201, RandomNAS with
function sampling and plain ce at lr 0.1 for 40 epochs, a small supernet,
the embedded cifar10-mini data set) once per seed, or that search with the
`nsas search` flags given after ``--``, with
selection drawing its candidates from a NAS-Bench-201 truth table
(``--select-from``) so that every pick has a known stand-alone accuracy,
and reports the pick's true accuracy against the space's median (90.7%).

    python bench/quick_pick.py --truth ../shared/data/nb201/cifar10-test-acc.public.csv --seeds 0 1 2 \
        --out results/quick-pick

Writes ``quick_pick.json`` and ``quick_pick.md`` in ``--out`` (one run
directory per seed beside them).
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

MEDIAN = 90.7  # NAS-Bench-201 CIFAR-10 test accuracy, median over the space


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--truth", type=Path, required=True, help="truth table arch,test_acc")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("extra", nargs="*", help="more `nsas search` flags (after --)")
    args = parser.parse_args(argv)
    with open(args.truth, newline="") as f:
        truth = {row["arch"]: float(row["test_acc"]) for row in csv.DictReader(f)}
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in args.seeds:
        run = args.out / f"seed{seed}"
        cmd = [sys.executable, "-m", "nsas", "search", "--seed", str(seed), "--select-from", str(args.truth),
               "--out", str(run), "--quiet", *args.extra]
        start, ran = time.time(), not (run / "selected.json").exists()
        if ran:
            subprocess.run(cmd, check=True)
        selected = json.loads((run / "selected.json").read_text())
        train_s = json.loads((run / "summary.json").read_text()).get("train_seconds")
        pick = selected[0]["arch"]
        rows.append({"seed": seed, "pick": pick, "inherited_acc": selected[0]["acc"], "true_acc": truth[pick],
                     "above_median": truth[pick] > MEDIAN,
                     "wall_s": round(time.time() - start) if ran else None,  # None: the run was made earlier
                     "train_s": None if train_s is None else round(train_s),
                     "command": " ".join(cmd[1:])})
        print(f"seed {seed}: {truth[pick]:.2f}% ({'above' if truth[pick] > MEDIAN else 'below'} the median)  "
              f"{pick}", flush=True)
    (args.out / "quick_pick.json").write_text(json.dumps(rows, indent=1))
    print(write_markdown(rows, args.out / "quick_pick.md"))
    return 0


def write_markdown(rows: list[dict], path: Path) -> str:
    """The per-seed table as markdown (pipes in the cell strings escaped), written to ``path``."""
    lines = ["| seed | pick | true acc | above median 90.7 | wall s | training s |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['seed']} | `{r['pick'].replace('|', chr(92) + '|')}` | {r['true_acc']:.2f} | "
              f"{r['above_median']} | {'earlier run' if r['wall_s'] is None else r['wall_s']} | "
              f"{'' if r.get('train_s') is None else r['train_s']} |" for r in rows]
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    return text


if __name__ == "__main__":
    sys.exit(main())
