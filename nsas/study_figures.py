"""`nsas study`'s report as people read it: the figures (kendall_tau.png, picks.png, scatter.png) and report.md.

Kept apart from nsas/study.py, which runs the stages; this module only reads the report dict (and the config).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from nsas.atomic import atomic_write


def _save(fig: Any, path: Path, names: list[str]) -> None:
    """Write ``fig`` as PNG atomically and note its name (figures are plain ``Figure`` objects: no pyplot)."""
    fig.tight_layout()
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=110)
    names.append(path.name)


def write_figures(out_dir: Path, report: dict[str, Any]) -> list[str]:
    """tau per method and budget (bars with spread), and supernet-vs-truth scatter of seed 0.

    Built on ``matplotlib.figure.Figure`` (the Agg canvas), as ``nsas.plot`` does: pyplot's global state and
    backend are never touched.
    """
    from matplotlib.figure import Figure

    def subplots(*grid: int, **kwargs: Any) -> Any:
        fig = Figure(figsize=kwargs.pop("figsize"))
        return fig, fig.subplots(*grid, **kwargs)

    names: list[str] = []
    groups = report["groups"]
    fig, ax = subplots(figsize=(max(5.0, 1.3 * len(groups)), 3.6))
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
    _save(fig, out_dir / "kendall_tau.png", names)

    fig, ax = subplots(figsize=(max(5.0, 1.3 * len(groups)), 3.4))  # paper Figure 4: the picks
    ax.bar(range(len(groups)), [g["picks_truth_mean"] for g in groups], yerr=[g["picks_truth_std"] for g in groups],
           color=colors, capsize=4)
    ax.set_xticks(range(len(groups)), labels, fontsize=8)
    low = min((g["picks_truth_mean"] - (g["picks_truth_std"] or 0) for g in groups
               if not math.isnan(g["picks_truth_mean"])), default=0.0)
    ax.set_ylim(bottom=max(0.0, low - 5))
    ax.set_ylabel(f"true {report['truth_key']} of picks")
    ax.set_title("Each search's selected architecture: its true value (mean ± std over seeds)", fontsize=9)
    _save(fig, out_dir / "picks.png", names)

    truth = [t[report["truth_key"]] for t in report["truth"]]
    runs = [r for r in report["runs"] if r["seed"] == 0 and r["budget"] == "steps"]
    fig, axes = subplots(1, len(runs), figsize=(3.2 * len(runs), 3.2), squeeze=False)
    for ax, r in zip(axes[0], runs):
        ax.scatter(r["scores"], truth, s=14)
        ax.set_title(f"{r['method']} (seed 0)\ntau = {r['kendall_tau']:.2f}", fontsize=9)
        ax.set_xlabel("supernet score", fontsize=8)
        ax.set_ylabel(f"true {report['truth_key']}", fontsize=8)
    _save(fig, out_dir / "scatter.png", names)
    return names


def fmt(x: float, digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def render_markdown(cfg: Any, report: dict[str, Any], figures: list[str]) -> str:
    """The human-readable report (``cfg``: the study's :class:`~nsas.study.StudyConfig`)."""
    key = report["truth_key"]
    lines = [
        f"# Ranking study: {cfg.space} on {cfg.dataset}", "",
        f"Methods {', '.join(cfg.methods)}; {cfg.seeds} seed{'s' if cfg.seeds != 1 else ''}; {len(report['archs'])} ground-truth "
        + (f"architectures sampled from the truth table `{Path(cfg.truth).name}` (stratified over {key})"
           if cfg.truth else f"architectures trained stand-alone with the `{cfg.truth_recipe}` recipe "
           f"(overrides: {cfg.train or 'none'})")
        + f"; searches of {cfg.search_epochs} epochs "
        f"(overrides: {cfg.search or 'none'}); supernet scores on {cfg.score_batches} validation batches.", "",
        f"Ground truth {key}: {fmt(report['truth_range'][0], 2)} to {fmt(report['truth_range'][1], 2)}; "
        f"{report['truth_seconds'] / 60:.1f} min of stand-alone training.", "",
        "| method | budget | Kendall tau per seed | tau mean ± std | Spearman rho mean ± std | tau within equal size | "
        f"picks' true {key} | steps | passes | search s |",
        "|---|---|---|---|---|---|---|---:|---:|---:|",
    ]
    base = report["live_parameters"]
    lines.append(f"| live parameter count (no training) | - | | {fmt(base['kendall_tau'])} | "
                 f"{fmt(base['spearman_rho'])} | | | 0 | 0 | 0 |")
    for g in report["groups"]:
        taus = ", ".join(fmt(t, 2) for t in g["kendall_tau"])
        lines.append(
            f"| {g['method']} | {'equal compute' if g['budget'] == 'compute' else 'equal steps'} | {taus} | "
            f"{fmt(g['tau_mean'])} ± {fmt(g['tau_std'])} | {fmt(g['rho_mean'])} ± {fmt(g['rho_std'])} | "
            f"{fmt(g['tau_within_size_mean'])} | "
            f"{fmt(g['picks_truth_mean'], 2)} ± {fmt(g['picks_truth_std'], 2)} | {g['steps_mean']:.0f} | "
            f"{g['passes_mean']:.0f} | {g['search_seconds_mean']:.0f} |")
    lines += ["", "Passes are single-path forward/backward passes (the cost measure: an NSAS step with M "
              "archive members costs 1 + M). Equal compute gives each cheaper method more epochs so that its "
              "passes match the costliest method's. The first row ranks by each architecture's live parameter "
              "count (the parameters of the operations that reach the output; no training): the yardstick a "
              "supernet must beat. 'tau within equal size' is the concordance (C - D) / (C + D) of the scores "
              "over pairs of architectures with the same live parameter count (n/a when no pair has).", ""]
    lines += [f"![{name}]({name})" for name in figures]
    lines += ["", "## Ground-truth architectures", "", f"| # | architecture | {key} | parameters |", "|---:|---|---:|---:|"]
    for i, t in enumerate(report["truth"]):
        lines.append(f"| {i} | `{t['arch']}` | {fmt(t[key], 2)} | {t['parameters'] or ''} |")
    return "\n".join(lines) + "\n"
