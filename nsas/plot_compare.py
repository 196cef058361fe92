"""`nsas plot RUN1 RUN2 ...`: several search runs overlaid on one set of figures (e.g. ce vs nsas).

    nsas plot runs/search-nb201-random-ce-... runs/search-nb201-random-nsas-... --out plots-ce-vs-nsas

writes ``compare.png`` into ``--out`` (default ``./plots-compare``):

    loss         current-architecture loss (moving average)
    probe        mean inherited-weight accuracy of each run's probe architectures (forgetting)
    diversity    archive diversity (runs with an archive)

every panel against single-path passes, the cost measure, on one shared axis: runs of different
strategies or losses take different numbers of steps for the same compute.

Each run is one colour, labelled with its folder name and strategy / loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from nsas.atomic import atomic_write
from nsas.cell_diagram import agg_figure
from nsas.config import read_yaml
from nsas.errors import NsasError
from nsas.plot_data import column as _column
from nsas.plot_data import moving_average, probe_series
from nsas.rundir import read_metrics


def _label(run_dir: Path) -> str:
    config = read_yaml(run_dir / "config.yaml") if (run_dir / "config.yaml").is_file() else {}
    return f"{run_dir.name} ({config.get('strategy', '?')} / {config.get('loss', '?')})"


def probe_passes(records: Sequence[dict], steps: Sequence[int]) -> np.ndarray:
    """Single-path passes at each probe step: the probe record's own ``passes``, else interpolated from the
    step records (NaN where neither tells)."""
    own: dict[int, float] = {}
    for r in records:
        if r.get("kind") == "probe" and isinstance(r.get("passes"), (int, float)):
            own[int(r["step"])] = float(r["passes"])
    known = sorted((float(r["step"]), float(r["passes"])) for r in records
                   if r.get("kind") == "step" and isinstance(r.get("passes"), (int, float)))
    out = []
    for step in steps:
        if int(step) in own:
            out.append(own[int(step)])
        elif known:
            x, y = zip(*known)
            out.append(float(np.interp(step, x, y)) if x[0] <= step <= x[-1] else np.nan)
        else:
            out.append(np.nan)
    return np.array(out, dtype=float)


def plot_compare(runs: Sequence[tuple[str, Sequence[dict]]], *, window: int | None = None) -> Figure:
    """One figure of three panels, one line per run, all against single-path passes.

    Args:
        runs: (label, metrics records) per run.
        window: moving-average length of the loss in records (default: a tenth of the longest run, 1..50).
    """
    fig = agg_figure(8.5, 8.0)
    loss_ax, probe_ax, div_ax = fig.subplots(3, 1, squeeze=True, sharex=True)
    fig.suptitle("Search runs compared")
    longest = max((sum(r.get("kind") == "step" for r in records) for _, records in runs), default=1)
    window = window or max(1, min(50, longest // 10))
    for i, (label, records) in enumerate(runs):
        color = f"C{i % 10}"
        steps = [r for r in records if r.get("kind") == "step"]
        if steps:
            loss_ax.plot(_column(steps, "passes"), moving_average(_column(steps, "loss"), window), color=color,
                         lw=1.6, label=label)
            diversity = _column(steps, "archive_diversity")
            if np.isfinite(diversity).any():
                div_ax.plot(_column(steps, "passes"), diversity, color=color, lw=1.6, label=label)
        series = probe_series(records)
        if len(series.steps):
            with np.errstate(invalid="ignore"):
                mean = np.nanmean(series.acc, axis=1)
            probe_ax.plot(probe_passes(records, series.steps), mean, color=color, lw=1.6, marker="o", markersize=3,
                          label=label)
    loss_ax.set(ylabel="cross-entropy", title=f"current-architecture loss (moving average over {window} records)")
    probe_ax.set(ylabel="accuracy (%)", title="probe architectures: mean inherited-weight accuracy")
    div_ax.set(xlabel="single-path passes (the compute spent)", ylabel="mean pairwise distance",
               title="archive diversity")
    for ax in (loss_ax, probe_ax, div_ax):
        ax.title.set_fontsize(9)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(frameon=False, fontsize=8)
    return fig


def compare_runs(run_dirs: Sequence[str | Path], out_dir: str | Path | None = None, *, dpi: int = 120) -> Path:
    """Draw :func:`plot_compare` for ``run_dirs`` into ``out_dir/compare.png``; returns its path.

    Raises:
        NsasError: a folder is not a search run, or no run has metrics yet.
    """
    runs = []
    for run_dir in map(Path, run_dirs):
        if not (run_dir / "config.yaml").is_file():
            raise NsasError(f"{run_dir} is not a search run directory (no config.yaml)")
        runs.append((_label(run_dir), read_metrics(run_dir)))
    if not any(records for _, records in runs):
        raise NsasError("nothing to compare: none of the runs has metrics records yet")
    if dpi < 10:
        raise NsasError(f"--dpi must be at least 10, got {dpi}")
    out = Path(out_dir) if out_dir is not None else Path("plots-compare")
    out.mkdir(parents=True, exist_ok=True)
    path = out / "compare.png"
    with atomic_write(path) as f:  # never a torn figure
        plot_compare(runs).savefig(f, format="png", dpi=dpi)
    return path
