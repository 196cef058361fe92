"""The figures of `nsas study`'s report (kendall_tau.png, picks.png, scatter.png), drawn from report.json's data.

Kept apart from nsas/study.py, which runs the stages; this module only reads the report dict.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from nsas.atomic import atomic_write


def write_figures(out_dir: Path, report: dict[str, Any]) -> list[str]:
    """tau per method and budget (bars with spread), and supernet-vs-truth scatter of seed 0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    groups = report["groups"]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(groups)), 3.6))
    labels = [f"{g['method']}\n({'equal compute' if g['budget'] == 'compute' else 'equal steps'})" for g in groups]
    colors = ["tab:blue" if g["budget"] == "steps" else "tab:orange" for g in groups]
    ax.bar(range(len(groups)), [g["tau_mean"] for g in groups], yerr=[g["tau_std"] for g in groups],
           color=colors, capsize=4)
    for i, g in enumerate(groups):
        ax.scatter([i] * len(g["kendall_tau"]), g["kendall_tau"], color="black", s=10, zorder=3)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xticks(range(len(groups)), labels, fontsize=8)
    ax.set_ylabel("Kendall tau (supernet vs truth)")
    ax.set_title("Ranking quality: mean ± std over seeds, dots = seeds", fontsize=10)
    fig.tight_layout()
    with atomic_write(out_dir / "kendall_tau.png") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)
    names.append("kendall_tau.png")

    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(groups)), 3.4))  # paper Figure 4: the picks
    ax.bar(range(len(groups)), [g["picks_truth_mean"] for g in groups], yerr=[g["picks_truth_std"] for g in groups],
           color=colors, capsize=4)
    ax.set_xticks(range(len(groups)), labels, fontsize=8)
    low = min((g["picks_truth_mean"] - (g["picks_truth_std"] or 0) for g in groups
               if not math.isnan(g["picks_truth_mean"])), default=0.0)
    ax.set_ylim(bottom=max(0.0, low - 5))
    ax.set_ylabel(f"true {report['truth_key']} of picks")
    ax.set_title("Each search's selected architecture: its true value (mean ± std over seeds)", fontsize=9)
    fig.tight_layout()
    with atomic_write(out_dir / "picks.png") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)
    names.append("picks.png")

    truth = [t[report["truth_key"]] for t in report["truth"]]
    runs = [r for r in report["runs"] if r["seed"] == 0 and r["budget"] == "steps"]
    fig, axes = plt.subplots(1, len(runs), figsize=(3.2 * len(runs), 3.2), squeeze=False)
    for ax, r in zip(axes[0], runs):
        ax.scatter(r["scores"], truth, s=14)
        ax.set_title(f"{r['method']} (seed 0)\ntau = {r['kendall_tau']:.2f}", fontsize=9)
        ax.set_xlabel("supernet score", fontsize=8)
        ax.set_ylabel(f"true {report['truth_key']}", fontsize=8)
    fig.tight_layout()
    with atomic_write(out_dir / "scatter.png") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)
    names.append("scatter.png")
    return names
