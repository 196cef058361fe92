"""The data behind nsas plot's figures, read from a run's metrics records (no figure code): probe series,
moving averages, Kendall tau over training, and the short forms of architectures that captions use.

``nsas.plot`` (one run) and ``nsas.plot_compare`` (several runs) both draw
from these; keeping them here, below both, means neither imports the other's
private names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nsas.errors import NsasError

Record = Mapping[str, Any]

__all__ = ["MIN_KENDALL_ARCHS", "KendallSeries", "ProbeSeries", "Record", "column", "kendall_series", "key_text",
           "moving_average", "probe_series", "short_arch"]


def column(records: Sequence[Record], key: str) -> np.ndarray:
    """``record[key]`` of each record as floats; NaN where missing or None."""
    return np.array([np.nan if r.get(key) is None else float(r[key]) for r in records], dtype=float)


@dataclass(frozen=True)
class ProbeSeries:
    """Inherited-weight scores of the probe architectures at each probe point.

    Attributes:
        steps: global step of each probe point, increasing.
        archs: the probe architectures (as written in the records), first-seen order.
        acc: shape (len(steps), len(archs)); NaN where an arch was not probed.
        loss: the same for the validation loss.
        truth: arch -> true value, where the records carry one (``--probe-from`` runs).
    """

    steps: np.ndarray
    archs: list[str]
    acc: np.ndarray
    loss: np.ndarray
    truth: dict[str, float] = field(default_factory=dict)


def probe_series(records: Iterable[Record]) -> ProbeSeries:
    """Collect the "probe" records of a run; a later record at the same step replaces an earlier one."""
    by_step: dict[int, dict[str, Record]] = {}
    archs: dict[str, None] = {}
    truth: dict[str, float] = {}
    for record in records:
        if record.get("kind") != "probe":
            continue
        row = by_step.setdefault(int(record["step"]), {})
        for probe in record.get("probe") or []:
            archs.setdefault(probe["arch"])
            row[probe["arch"]] = probe
            if isinstance(probe.get("truth"), (int, float)):
                truth[probe["arch"]] = float(probe["truth"])
    steps = sorted(by_step)
    acc = np.full((len(steps), len(archs)), np.nan)
    loss = np.full_like(acc, np.nan)
    for i, step in enumerate(steps):
        for j, arch in enumerate(archs):
            probe = by_step[step].get(arch, {})
            acc[i, j] = np.nan if probe.get("acc") is None else probe["acc"]
            loss[i, j] = np.nan if probe.get("loss") is None else probe["loss"]
    return ProbeSeries(np.array(steps, dtype=int), list(archs), acc, loss, truth)


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over the last ``window`` finite values (shorter windows at the start); NaN stays NaN."""
    values = np.asarray(values, dtype=float)
    ok = ~np.isnan(values)
    sums = np.cumsum(np.where(ok, values, 0.0))
    counts = np.cumsum(ok)
    sums[window:] = sums[window:] - sums[:-window]
    counts[window:] = counts[window:] - counts[:-window]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = sums / counts
    out[~ok] = np.nan
    return out


MIN_KENDALL_ARCHS = 3


@dataclass(frozen=True)
class KendallSeries:
    """Kendall tau-b between inherited accuracy and truth at each probe point.

    Attributes:
        steps: the probe points.
        tau: tau at each point; NaN where fewer than 3 archs were probed or a side is constant.
        count: how many architectures entered each tau.
        archs: the probe architectures that have a truth value.
        low: lower end of tau's 95% bootstrap interval at each point (NaN without bootstrap).
        high: its upper end.
    """

    steps: np.ndarray
    tau: np.ndarray
    count: np.ndarray
    archs: list[str]
    low: np.ndarray | None = None
    high: np.ndarray | None = None


def kendall_series(series: ProbeSeries, truth: Mapping[str, float], *, lower_is_better: bool = False,
                   bootstrap: int = 0, seed: int = 0, rank_by: str = "acc") -> KendallSeries:
    """Kendall tau over training of the probes' inherited accuracy against ``truth`` (paper Fig. 3).

    With ``rank_by="loss"`` (a run's ``rank_by``) the probes' score is minus their validation loss, as the
    search's own ``probe_tau`` computes it.

    Args:
        series: from :func:`probe_series`.
        truth: arch (as written in ``series.archs``) -> true value; probes without one are left out.
        lower_is_better: the truth is a loss or perplexity (it is negated so
            that a positive tau means the supernet agrees with the truth).
        bootstrap: resamples of the probe architectures for a 95% interval
            at each point (:func:`nsas.rankstats.bootstrap_ci`; 0: none).
        seed: seed of the resamples.
        rank_by: ``acc`` or ``loss``: which inherited score ranks the probes.

    Raises:
        ValueError: fewer than 3 probe architectures have a truth value.
    """
    from nsas.rankstats import bootstrap_ci, kendall_tau

    cols = [j for j, a in enumerate(series.archs) if a in truth]
    if len(cols) < MIN_KENDALL_ARCHS:
        raise ValueError(f"{len(cols)} probe architecture(s) have a truth value; need at least {MIN_KENDALL_ARCHS}")
    sign = -1.0 if lower_is_better else 1.0
    t = np.array([sign * truth[series.archs[j]] for j in cols], dtype=float)
    taus, counts, bands = [], [], []
    scores = -series.loss if rank_by == "loss" else series.acc
    for row in scores[:, cols]:
        ok = ~np.isnan(row)
        counts.append(int(ok.sum()))
        enough = ok.sum() >= MIN_KENDALL_ARCHS
        taus.append(kendall_tau(row[ok], t[ok]) if enough else np.nan)
        if bootstrap and enough:
            ci = bootstrap_ci(kendall_tau, row[ok], t[ok], resamples=bootstrap, seed=seed)
            bands.append((ci.low, ci.high))
        else:
            bands.append((np.nan, np.nan))
    low, high = (np.array(b, dtype=float) for b in zip(*bands)) if bootstrap else (None, None)
    return KendallSeries(series.steps.copy(), np.array(taus, dtype=float), np.array(counts, dtype=int),
                         [series.archs[j] for j in cols], low, high)


# ---- captions: architectures in short
# Short op names for legends and captions (edges of cell diagrams use the full names).
_ABBREV = {
    "none": "-", "skip_connect": "skip", "nor_conv_1x1": "c1", "nor_conv_3x3": "c3", "avg_pool_3x3": "avg3",
    "max_pool_3x3": "max3", "sep_conv_3x3": "sep3", "sep_conv_5x5": "sep5", "dil_conv_3x3": "dil3",
    "dil_conv_5x5": "dil5", "sigmoid": "sigm", "identity": "id",
}


def short_arch(text: str, space: str | None = None) -> str:
    """A compact one-line form of an architecture for captions (``c3 | skip c1 | - avg3 c3``)."""
    from nsas.spaces import parse_arch  # imports torch: only when a caption is drawn

    try:
        arch = parse_arch(text, space)
    except NsasError:
        return text if len(text) <= 60 else text[:57] + "..."
    ab = lambda op: _ABBREV.get(op, op)  # noqa: E731
    if arch.space == "nb201":
        nodes = [arch.ops[j * (j - 1) // 2: j * (j + 1) // 2] for j in range(1, 4)]
        return " | ".join(" ".join(ab(op) for op in node) for node in nodes)
    if arch.space.startswith("darts") and hasattr(arch, "normal"):
        cells = [" | ".join(" ".join(f"{ab(op)}~{i}" for op, i in node) for node in getattr(arch, c))
                 for c in ("normal", "reduce")]
        return f"N: {cells[0]}   R: {cells[1]}"
    if arch.space == "darts-rnn":
        return " ".join(f"{ab(op)}~{j}" for op, j in arch.recurrent)
    return str(arch)


_READING = {  # how to read short_arch's form, per space
    "nb201": "nodes 1 | 2 | 3, each the ops on its edges from nodes 0..j-1",
    "darts": "N: normal, R: reduction cell; nodes 0 | 1 | 2 | 3; op~k reads input k (0, 1: previous cells)",
    "darts-chain": "N: normal, R: reduction cell; nodes 0 | 1 | 2 | 3; op~k reads input k (0, 1: previous cells)",
    "darts-rnn": "nodes 1..8; op~k applies op to node k",
}


def key_text(text: str, space: str | None) -> str:
    """How to read the short forms in ``text``, and the short op names they use."""
    words = set(text.replace("~", " ").split())
    used = [f"{short}: {op}" for op, short in _ABBREV.items() if short in words]
    reading = _READING.get(space or "", "")
    return "; ".join(part for part in (reading, ", ".join(used)) if part)
