"""The data behind nsas plot's figures, read from a run's metrics records (no figure code).

``nsas.plot`` (one run) and ``nsas.plot_compare`` (several runs) both draw
from these; keeping them here, below both, means neither imports the other's
private names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Record = Mapping[str, Any]

__all__ = ["ProbeSeries", "Record", "column", "moving_average", "probe_series"]


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
