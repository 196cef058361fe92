"""The few-shot split edge, chosen on the ranking benchmark's tune half only.

Rule (results/ranking/round9/PREREGISTRATION.md): split on the NAS-Bench-201 edge whose operation explains
the largest share of the true accuracy's variance among the tune half's cells (eta squared of a one-way
grouping by the op on that edge). No supernet is trained for the choice; held-out cells are not read.

    python bench/split_edge.py > results/ranking/round9/split-edge.txt

``measure`` checks the rule by training: one few-shot ``ce-functions`` supernet per edge and one plain
supernet, seed 10, 7,800 passes each, all on the tune half (``bench/ranking.py run --split tune``, the
commands in results/ranking/split-edges/README.md), scored on the tune probe by the loss alone, within
equal live size, and fused with round 8's frozen pipeline (z scores of loss, params, jacov at 0.05,
0.05, 0.90); held-out cells are still not read.

    python bench/split_edge.py measure > results/ranking/split-edges/measured.md
"""

from __future__ import annotations

import statistics
import sys
from collections import defaultdict

import ranking

from nsas.spaces import get_space
from nsas.spaces.nb201 import EDGES


def eta_squared(values: dict[str, float], edge: int) -> tuple[float, dict[str, float]]:
    """Share of the variance of ``values`` (arch -> accuracy) explained by the op on ``edge``, and each op's mean."""
    space = get_space("nb201")
    groups: dict[str, list[float]] = defaultdict(list)
    for arch, value in values.items():
        groups[space.parse(arch).ops[edge]].append(value)
    mean = statistics.fmean(values.values())
    between = sum(len(g) * (statistics.fmean(g) - mean) ** 2 for g in groups.values())
    total = sum((v - mean) ** 2 for v in values.values())
    return between / total, {op: statistics.fmean(g) for op, g in sorted(groups.items())}


def measure() -> int:
    import json

    import numpy as np

    import fusion
    from nsas.fusion import fuse
    from nsas.rankstats import live_parameters

    truth = ranking.read_truth(ranking.TRUTH)
    tune = {a: v for a, v in truth.items() if ranking.half_of(a) == "tune"}
    cells = fusion.probes(truth)["tune"]
    t, size = np.array([truth[a] for a in cells]), live_parameters(cells, "nb201")
    proxies, _ = fusion.read_proxies(fusion.RESULTS / "round8" / "proxies.csv")
    weights = json.loads((fusion.RESULTS / "round8" / "pipeline.json").read_text())["pipeline"]["weights"]["ce-functions"]
    root = fusion.RESULTS / "split-edges"
    runs = [(f"edge {e} ({EDGES[e][0]}<-{EDGES[e][1]})", eta_squared(tune, e)[0], root / f"edge-{e}" / "jobs" /
             "ce-functions-fewshot-compute-s10.json") for e in range(len(EDGES))]
    runs.append(("one supernet (no split)", None, root / "one" / "jobs" / "ce-functions-compute-s10.json"))
    print("Few-shot split edge measured on the tune half's probe (200 cells), ce-functions, seed 10, 7,800 passes; "
          "'fused': round 8's frozen pipeline (z: loss 0.05, params 0.05, jacov 0.90); 'vs one': minus the one "
          "supernet of the same seed and passes, with a 95% bootstrap interval over the probe's cells.\n")
    print("| split | rule's eta^2 | tau by loss [95% CI] | vs one | within-size (loss) | tau fused [95% CI] | vs one "
          "| within-size (fused) | pick's true acc (fused) | CPU-min |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    vectors = {}
    for name, eta, path in runs[::-1]:  # the one supernet first: every split is paired with it
        if not path.is_file():
            continue
        job = json.loads(path.read_text())
        rows = fusion.rows_of(cells, proxies, {a: (v[0], v[1]) for a, v in job["scores"].items()})
        vectors[name] = (fusion.oriented(rows, "loss"), fuse(rows, weights, method="z"),
                         (job["train_s"] + job["score_s"]) / 60)
    one = vectors.get(runs[-1][0])
    for name, eta, _ in runs:
        if name not in vectors:
            print(f"| {name} | {'-' if eta is None else f'{eta:.3f}'} | not run | | | | | | | |")
            continue
        loss, fused, minutes = vectors[name]
        lo, fu = fusion.judge_vector(loss, t, size), fusion.judge_vector(fused, t, size)

        def versus(mine: np.ndarray, k: int) -> str:
            if one is None or eta is None:
                return "-"
            d = fusion.paired([mine], [one[k]], t, size)
            return f"{d['tau']:+.3f} [{d['tau_ci'][0]:+.2f}, {d['tau_ci'][1]:+.2f}]"

        print(f"| {name} | {'-' if eta is None else f'{eta:.3f}'} | {lo['tau']:.3f} [{lo['tau_ci'][0]:.2f}, "
              f"{lo['tau_ci'][1]:.2f}] | {versus(loss, 0)} | {lo['within_size']:.3f} | {fu['tau']:.3f} "
              f"[{fu['tau_ci'][0]:.2f}, {fu['tau_ci'][1]:.2f}] | {versus(fused, 1)} | {fu['within_size']:.3f} | "
              f"{fu['pick_acc']:.2f} | {minutes:.1f} |")
    return 0


def main() -> int:
    if sys.argv[1:] == ["measure"]:
        return measure()
    truth = ranking.read_truth(ranking.TRUTH)
    tune = {a: v for a, v in truth.items() if ranking.half_of(a) == "tune"}
    print(f"tune half: {len(tune)} cells of {len(truth)}")
    rows = [(edge, *eta_squared(tune, edge)) for edge in range(len(EDGES))]
    for edge, eta, means in rows:
        j, i = EDGES[edge]
        print(f"edge {edge} ({j}<-{i}): eta^2 {eta:.3f}; mean accuracy by op: "
              + ", ".join(f"{op} {m:.1f}" for op, m in means.items()))
    best = max(rows, key=lambda r: r[1])[0]
    print(f"chosen: edge {best}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
