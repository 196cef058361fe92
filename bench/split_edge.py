"""The few-shot split edge, chosen on the ranking benchmark's tune half only.

Rule (results/ranking/round9/PREREGISTRATION.md): split on the NAS-Bench-201 edge whose operation explains
the largest share of the true accuracy's variance among the tune half's cells (eta squared of a one-way
grouping by the op on that edge). No supernet is trained for the choice; held-out cells are not read.

    python bench/split_edge.py > results/ranking/round9/split-edge.txt
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


def main() -> int:
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
