"""`nsas plot`: figures of a search run -- forgetting curves, losses, Kendall tau, cells.

    nsas plot runs/search-nb201-random-nsas-... [--truth truth.csv] [--out DIR] [--dpi 120]
    nsas plot RUN1 RUN2 ... [--out DIR]      # several runs overlaid: compare.png (nsas/plot_compare.py)

writes into ``RUN_DIR/plots/`` (or ``--out``) and prints the path of each file:

    forgetting.png  inherited-weight accuracy of the probe architectures over training (paper Fig. 1)
    losses.png      current vs. archive loss, archive diversity, learning rate / GDAS temperature
    kendall.png     Kendall tau between the probes' inherited score (the run's rank_by) and --truth (paper Fig. 3),
                    with 95% bootstrap bands; without --truth, against the truth a
                    ``nsas search --probe-from`` run logged with its probes
    cells.png       the cells of the best selected architecture (paper Fig. 5); skipped, with a
                    note, for a space without a cell diagram (a ChoiceSpace, a plug-in)

``nsas.plot(run_dirs, ...)`` (:func:`plot`) is the command as a function: it
returns a :class:`PlotResult` (the PNGs written, the notes on skipped figures).
Every figure has a function that takes data (records, series, an
architecture), not paths, and returns a matplotlib ``Figure``, so other
commands (``nsas study``) can draw the same figures. Figures are rendered on
the Agg canvas; pyplot and its global backend are never touched, so nothing
here needs a display.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from nsas.atomic import atomic_write
from nsas.cell_diagram import agg_figure as _figure
from nsas.cell_diagram import plot_cells
from nsas.config import read_yaml
from nsas.correlate import join, metric_column, name_direction, read_table
from nsas.errors import NsasError
from nsas.plot_data import (MIN_KENDALL_ARCHS, KendallSeries, ProbeSeries, Record, kendall_series,  # noqa: F401
                            moving_average, probe_series)
from nsas.plot_data import column as _column
from nsas.plot_data import key_text as _key
from nsas.plot_data import short_arch  # noqa: F401 (importable from here too)
from nsas.rundir import read_metrics

MAX_NAMED_PROBES = 26  # more probes are drawn unnamed, under their mean
BOOTSTRAP = 500  # resamples of the probe set behind kendall.png's 95% band

def _step_ticks() -> MaxNLocator:
    """Whole-number ticks at 1, 2, 5 x 10^k (steps)."""
    return MaxNLocator(integer=True, steps=[1, 2, 5, 10])


# ---------------------------------------------------------------- figures
def plot_forgetting(series: ProbeSeries, *, space: str | None = None, title: str | None = None) -> Figure:
    """Paper Fig. 1: inherited-weight validation accuracy of each probe architecture over training.

    Up to :data:`MAX_NAMED_PROBES` probes are named in a legend and a caption;
    a larger probe set is drawn as thin lines under its mean.
    """
    many = len(series.archs) > MAX_NAMED_PROBES
    names = [chr(ord("A") + j) if j < 26 else f"P{j + 1}" for j in range(len(series.archs))]
    caption = [] if many else [f"{n}: {short_arch(a, space)}" for n, a in zip(names, series.archs)]
    if caption:
        caption.append(_key(" ".join(caption), space))
    fig = _figure(9.0, 4.2 + 0.16 * len(caption))
    ax = fig.add_subplot()
    for j, name in enumerate(names):
        ok = ~np.isnan(series.acc[:, j])
        if many:
            ax.plot(series.steps[ok], series.acc[ok, j], color="0.6", lw=0.5, alpha=0.5)
        else:
            ax.plot(series.steps[ok], series.acc[ok, j], marker="o", markersize=3, lw=1.4, label=name)
    if many:
        ax.plot(series.steps, np.nanmean(series.acc, axis=1), color="C0", lw=2.0, marker="o", markersize=3,
                label="mean")
    ax.set_xlabel("step")
    ax.xaxis.set_major_locator(_step_ticks())
    ax.set_ylabel("validation accuracy (%), inherited weights")
    ax.set_title(title or f"Forgetting: probe architectures over supernet training ({len(names)} probes)")
    ax.grid(alpha=0.3)
    ax.legend(title=None if many else "probe", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    if caption:
        fig.supxlabel("\n".join(caption), fontsize=7, family="monospace", x=0.01, ha="left", multialignment="left")
    return fig


def plot_losses(records: Sequence[Record], *, window: int | None = None, title: str | None = None) -> Figure:
    """Current-architecture loss vs. mean archive loss, archive diversity, and lr / GDAS temperature.

    Args:
        records: the "step" records of a run (others are ignored).
        window: moving-average length in records (default: a tenth of them, 1..50).
        title: figure title.
    """
    steps = [r for r in records if r.get("kind", "step") == "step"]
    x = _column(steps, "step")
    loss, archive = _column(steps, "loss"), _column(steps, "archive_loss")
    diversity, lr, tau = _column(steps, "archive_diversity"), _column(steps, "lr"), _column(steps, "tau")
    present = lambda v: bool(np.isfinite(v).any())  # noqa: E731
    panels = ["loss"] + ["diversity"] * present(diversity) + ["schedule"] * (present(lr) or present(tau))
    window = window or max(1, min(50, len(steps) // 10))
    marker = "o" if len(steps) < 30 else None
    fig = _figure(8.5, 0.6 + 2.3 * len(panels))
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    fig.suptitle(title or "Supernet training")
    ax = axes[0]
    for values, color, label in ((loss, "C0", "current architecture"), (archive, "C1", "archive (mean)")):
        if present(values):
            if window > 1:
                ax.plot(x, values, color=color, alpha=0.25, lw=0.8)
            ax.plot(x, moving_average(values, window), color=color, lw=1.8, marker=marker, markersize=3,
                    label=label)
    ax.set_ylabel("cross-entropy")
    ax.set_title(f"loss (faint: raw; solid: moving average over {window} records)" if window > 1
                 else "loss (every logged step)", fontsize=9)
    ax.legend(frameon=False)
    for ax, panel in zip(axes[1:], panels[1:]):
        if panel == "diversity":
            ax.plot(x, diversity, color="C2", lw=1.6, marker=marker, markersize=3)
            ax.set_ylabel("mean pairwise\ndistance")
            ax.set_title("archive diversity", fontsize=9)
            ax.set_ylim(0, max(1.0, float(np.nanmax(diversity))) * 1.05)
        else:
            _schedule_panel(ax, x, lr, tau, marker)
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("step")
    axes[-1].xaxis.set_major_locator(_step_ticks())
    return fig


def _schedule_panel(ax: Any, x: np.ndarray, lr: np.ndarray, tau: np.ndarray, marker: str | None) -> None:
    """Learning rate (left axis) and, for GDAS, the Gumbel-softmax temperature (right axis)."""
    handles = []
    if np.isfinite(lr).any():
        handles += ax.plot(x, lr, color="C3", lw=1.6, marker=marker, markersize=3, label="learning rate")
        ax.set_ylabel("learning rate")
    if np.isfinite(tau).any():
        twin = ax.twinx() if handles else ax
        handles += twin.plot(x, tau, color="C4", lw=1.6, ls="--", marker=marker, markersize=3,
                             label="GDAS temperature")
        twin.set_ylabel("temperature")
    ax.set_title("schedule", fontsize=9)
    ax.legend(handles=handles, frameon=False, loc="best")


FEW_PROBES = 5  # below this many probes, tau can take so few values that kendall.png says so


def tau_values(n: int) -> int:
    """How many values Kendall tau can take on ``n`` untied items: ``n (n - 1) / 2 + 1``."""
    return n * (n - 1) // 2 + 1


def plot_kendall(ks: KendallSeries, *, title: str | None = None, truth_name: str = "truth",
                 rank_by: str = "acc") -> Figure:
    """Paper Fig. 3: Kendall tau between the probes' inherited score and their truth, over training.

    ``rank_by`` names the score as the run ranks (``acc``: inherited
    accuracy; ``loss``: inherited validation loss, lower ranked higher).
    Fewer than :data:`FEW_PROBES` probes are flagged on the figure: tau then
    takes only a handful of values.
    """
    fig = _figure(8.0, 4.2)
    ax = fig.add_subplot()
    ax.axhline(0.0, color="0.5", lw=0.8)
    ax.plot(ks.steps, ks.tau, color="C0", marker="o", markersize=4, lw=1.6)
    if ks.low is not None:
        ax.fill_between(ks.steps, ks.low, ks.high, color="C0", alpha=0.2, lw=0, label="95% bootstrap interval")
        ax.legend(loc="lower right", frameon=False)
    last = np.flatnonzero(np.isfinite(ks.tau))
    if len(last):
        i = last[-1]
        ax.annotate(f"{ks.tau[i]:+.3f}", (ks.steps[i], ks.tau[i]), textcoords="offset points", xytext=(0, 8),
                    ha="center", fontsize=9)
    n = len(ks.archs)
    if n < FEW_PROBES:
        ax.text(0.01, 0.02, f"only {n} probes: τ can take just {tau_values(n)} values (steps of "
                f"{2 / (n * (n - 1) // 2):.2f}); read it as a rough sign", transform=ax.transAxes, fontsize=8,
                color="C3", va="bottom", bbox={"facecolor": "white", "alpha": 0.85, "lw": 0})
    ax.set_ylim(-1.05, 1.05)
    ax.set_xlabel("step")
    ax.set_ylabel("Kendall τ")
    ax.xaxis.set_major_locator(_step_ticks())
    score = "inherited validation loss (lower first)" if rank_by == "loss" else "inherited accuracy"
    ax.set_title(title or f"Kendall τ over training: probes ranked by {score}\n"
                 f"against {truth_name}, {n} probe architectures", fontsize=10)
    ax.grid(alpha=0.3)
    return fig


# ---------------------------------------------------------------- a run directory
def _truth_values(archs: list[str], truth: str | Path, key: str, space: str) -> dict[str, float]:
    """Probe arch -> truth value, matched on canonical architecture strings."""
    if not archs:
        return {}
    table = read_table(truth, keys=[key])
    joined = join({a: {} for a in archs}, table, space)
    from nsas.spaces import parse_arch

    canonical = {str(parse_arch(a, space)): a for a in archs}
    return {canonical[c]: row[key] for c, row in zip(joined.archs, joined.truth)}


def _note_to_stderr(message: str) -> None:
    sys.stderr.write(f"nsas plot: {message}\n")


def plot_run(run_dir: str | Path, *, truth: str | Path | None = None, truth_key: str | None = None,
             truth_lower_is_better: bool | None = None, out_dir: str | Path | None = None, dpi: int = 120,
             note: Callable[[str], None] = _note_to_stderr) -> list[Path]:
    """Draw every figure a search run's files allow; a figure without data is skipped with a note.

    Args:
        run_dir: the search run directory (config.yaml, metrics.jsonl, selected.json).
        truth: CSV/JSON/JSONL table of true values per architecture (for
            kendall.png); without it, the truth a ``--probe-from`` search
            wrote into its probe records, if any.
        truth_key: the column of ``truth`` to use (default: ``acc`` if
            present, else the table's only column).
        truth_lower_is_better: the truth column is a loss or perplexity (``None``: as its name says,
            :func:`nsas.correlate.name_direction`; higher is better when it says neither).
        out_dir: where the PNGs go (default ``run_dir/plots``).
        dpi: resolution of the PNGs.
        note: receives one line per skipped figure (default: printed to stderr).

    Returns:
        The paths written, in the order forgetting, losses, kendall, cells.

    Raises:
        NsasError: ``run_dir`` is not a search run, a file in it is corrupt,
            the truth table cannot be read, or there is nothing to draw.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise NsasError(f"{run_dir} is not a directory")
    if not (run_dir / "config.yaml").is_file():
        raise NsasError(f"{run_dir} is not a search run directory (no config.yaml)")
    config = read_yaml(run_dir / "config.yaml")
    space = config.get("space")
    if not isinstance(space, str):
        raise NsasError(f"{run_dir / 'config.yaml'} names no search space: not a search run directory")
    if dpi < 10:
        raise NsasError(f"--dpi must be at least 10, got {dpi}")
    records = read_metrics(run_dir)
    out = Path(out_dir) if out_dir is not None else run_dir / "plots"
    name = f"{space} / {config.get('strategy', '?')} / {config.get('loss', '?')}"
    figures: list[tuple[str, Figure]] = []
    rank_by = "loss" if config.get("rank_by") == "loss" or _is_text(space) else "acc"  # as the search's probe_tau
    series = probe_series(records)
    if len(series.steps):
        figures.append(("forgetting.png", plot_forgetting(series, space=space)))
    else:
        note("skipped forgetting.png: metrics.jsonl has no probe records yet")
    if any(r.get("kind") == "step" for r in records):
        figures.append(("losses.png", plot_losses(records, title=f"Supernet training: {name}")))
    else:
        note("skipped losses.png: metrics.jsonl has no step records yet")
    if truth is not None:
        key = metric_column(truth, truth_key)
        values = _truth_values(series.archs, truth, key, space)
        lower = bool(name_direction(key)) if truth_lower_is_better is None else truth_lower_is_better
        figures += _kendall_figure(series, values, f"{Path(truth).name} ({key})", f"a {key!r} value in {truth}",
                                   str(truth), lower, note, rank_by)
    elif series.truth:
        figures += _kendall_figure(series, series.truth, "the probe truth", "a truth value in the probe records",
                                   "the probe records", False, note, rank_by)
    figures += _cells_figure(run_dir, space, note)
    if not figures:
        raise NsasError(f"nothing to plot in {run_dir} yet: no metrics records and no selected.json")
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for filename, fig in figures:
        with atomic_write(out / filename) as f:
            fig.savefig(f, format="png", dpi=dpi)
        paths.append(out / filename)
    return paths


def _is_text(space: str) -> bool:
    """Whether ``space`` is a text space (ranked by loss); False for one not registered in this process."""
    from nsas.spaces import get_space
    try:
        return get_space(space).kind == "text"
    except Exception:  # noqa: BLE001 - a plug-in space absent here: plot as an image space
        return False


def _kendall_figure(series: ProbeSeries, values: Mapping[str, float], name: str, what: str, where: str,
                    lower: bool, note: Callable[[str], None], rank_by: str = "acc") -> list[tuple[str, Figure]]:
    if len(values) < MIN_KENDALL_ARCHS:
        note(f"skipped kendall.png: {len(values)} of {len(series.archs)} probe architectures have "
             f"{what}; Kendall tau needs at least {MIN_KENDALL_ARCHS}")
        return []
    if len(values) < len(series.archs):
        note(f"kendall.png: {len(series.archs) - len(values)} probe architecture(s) have no truth in {where}")
    if len(values) < FEW_PROBES:
        note(f"kendall.png: tau from only {len(values)} probe architectures can take just "
             f"{tau_values(len(values))} values; a larger probe set (probe_count) measures it")
    ks = kendall_series(series, values, lower_is_better=lower, bootstrap=BOOTSTRAP, rank_by=rank_by)
    return [("kendall.png", plot_kendall(ks, truth_name=name, rank_by=rank_by))]


def _cells_figure(run_dir: Path, space: str, note: Callable[[str], None]) -> list[tuple[str, Figure]]:
    path = run_dir / "selected.json"
    if not path.exists():
        note("skipped cells.png: no selected.json (the search has not finished)")
        return []
    try:
        selected = json.loads(path.read_text())
        best = selected[0]
        text = best["arch"]
    except (json.JSONDecodeError, IndexError, KeyError, TypeError):
        raise NsasError(f"{path} is not a list of selected architectures with an 'arch' each") from None
    from nsas.cell_diagram import cell_graphs
    from nsas.spaces import get_space

    try:
        arch = get_space(space).parse(text)
        cell_graphs(arch)  # a space with no cell diagram (a ChoiceSpace, a plug-in) raises here
    except NsasError as err:
        note(f"skipped cells.png: {str(err).splitlines()[0]}")
        return []
    score = "  ".join(f"{k} {best[k]:.3g}" for k in ("acc", "loss") if isinstance(best.get(k), (int, float)))
    title = f"Selected architecture ({space}){': inherited ' + score if score else ''}"
    return [("cells.png", plot_cells(arch, title=title))]


# ---------------------------------------------------------------- the command as a function
@dataclass(frozen=True)
class PlotResult:
    """What :func:`plot` drew.

    Attributes:
        paths: the PNG files written (one run: forgetting, losses, kendall, cells, those its files allow;
            several runs: compare.png).
        notes: one line per figure skipped or caveat (what ``nsas plot`` prints to stderr).
    """

    paths: list[Path]
    notes: list[str]


def plot(run_dirs: str | Path | Sequence[str | Path], *, truth: str | Path | None = None,
         truth_key: str | None = None, truth_lower_is_better: bool | None = None, out: str | Path | None = None,
         dpi: int = 120, note: Callable[[str], None] | None = None) -> PlotResult:
    """`nsas plot`: the figures of one search run (:func:`plot_run`), or several runs overlaid in compare.png.

    ``nsas.plot(...)`` calls this. The arguments are :func:`plot_run`'s (``out``:
    its ``out_dir``; several runs: default ``./plots-compare``, and no ``truth``);
    ``note`` also receives each note (default: they are only collected).

    Raises:
        NsasError: as :func:`plot_run`; ``truth`` given with several runs.
    """
    dirs = [run_dirs] if isinstance(run_dirs, (str, Path)) else list(run_dirs)
    if not dirs:
        raise NsasError("give at least one search run directory")
    notes: list[str] = []

    def collect(message: str) -> None:
        notes.append(message)
        if note is not None:
            note(message)

    if len(dirs) > 1:
        if truth is not None:
            raise NsasError("--truth applies to one run; compare several runs without it")
        from nsas.plot_compare import compare_runs

        return PlotResult([compare_runs(dirs, out, dpi=dpi)], notes)
    paths = plot_run(dirs[0], truth=truth, truth_key=truth_key, truth_lower_is_better=truth_lower_is_better,
                     out_dir=out, dpi=dpi, note=collect)
    return PlotResult(paths, notes)


# ---------------------------------------------------------------- CLI
def configure(parser: argparse.ArgumentParser) -> None:
    """Flags of ``nsas plot``."""
    parser.add_argument("run_dirs", metavar="RUN_DIR", nargs="+",
                        help="a search run directory (from nsas search); several: overlay them in compare.png")
    parser.add_argument("--truth", metavar="FILE", default=None,
                        help="CSV/JSON/JSONL of true accuracies per architecture: adds kendall.png")
    parser.add_argument("--truth-key", default=None, metavar="KEY",
                        help="truth column (default: acc if present, else the table's only column)")
    side = parser.add_mutually_exclusive_group()
    side.add_argument("--truth-lower-is-better", dest="truth_lower_is_better", action="store_const", const=True,
                      default=None, help="smaller truth values are better (default: by the truth column's name: "
                                         "loss, ppl, error lower; acc and any other name higher)")
    side.add_argument("--truth-higher-is-better", dest="truth_lower_is_better", action="store_const", const=False,
                      help="larger truth values are better")
    parser.add_argument("--out", metavar="DIR", default=None, help="output folder (default: RUN_DIR/plots)")
    parser.add_argument("--dpi", type=int, default=120, help="resolution of the PNGs (default: 120)")


def run(args: argparse.Namespace) -> int:
    """``nsas plot``: :func:`plot`, printing each figure's path (notes go to stderr)."""
    result = plot(args.run_dirs, truth=args.truth, truth_key=args.truth_key,
                  truth_lower_is_better=args.truth_lower_is_better, out=args.out, dpi=args.dpi,
                  note=_note_to_stderr)
    for path in result.paths:
        print(path)
    return 0


import nsas as _nsas  # noqa: E402

_nsas._make_callable(__name__)  # nsas.plot(...) calls plot() above
