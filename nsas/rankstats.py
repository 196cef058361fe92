"""Rank statistics of scores against a truth: Kendall tau-b, Spearman rho, precision@k, the true rank of the
favourite, concordance within groups (same size), percentile bootstrap intervals, and the live parameter
count that every ranking is compared with.

Every function takes two aligned sequences, higher is better in both (``nsas correlate`` orients the
columns first). ``nsas correlate`` (the command, :mod:`nsas.correlate`), the search's probes, studies,
plots and the benchmarks use these.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats


def _quiet(fn: Callable[[np.ndarray, np.ndarray], Any], x: Sequence[float], y: Sequence[float]) -> float:
    """``fn(x, y).statistic`` as a float; NaN (no warning) where it is undefined."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(fn(np.asarray(x, dtype=float), np.asarray(y, dtype=float)).statistic)


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b (ties in either sequence handled); NaN if either is constant."""
    return _quiet(stats.kendalltau, x, y)


def spearman_rho(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (ties get average ranks); NaN if either is constant."""
    return _quiet(stats.spearmanr, x, y)


def top_indices(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest values; ties go to the earlier position."""
    return np.argsort(-values, kind="stable")[:k]


def precision_at_k(score: Sequence[float], truth: Sequence[float], k: int) -> float:
    """``|top_k(score) ∩ top_k(truth)| / k``, higher values being better in both.

    Ties at the k-th place are broken by position (earlier entries first) in
    both rankings, so copies of one architecture are treated alike.

    Raises:
        ValueError: ``k`` is not in ``1..len(score)``.
    """
    s, t = np.asarray(score, dtype=float), np.asarray(truth, dtype=float)
    if not 1 <= k <= len(s):
        raise ValueError(f"k={k} must be between 1 and the number of architectures ({len(s)})")
    return len(np.intersect1d(top_indices(s, k), top_indices(t, k))) / k


def top_truth_rank(score: Sequence[float], truth: Sequence[float]) -> int:
    """True rank (1 = best) of the highest-scored entry: 1 + how many have strictly better truth."""
    s, t = np.asarray(score, dtype=float), np.asarray(truth, dtype=float)
    best = int(top_indices(s, 1)[0])
    return 1 + int(np.sum(t > t[best]))


def within_groups_tau(score: Sequence[float], truth: Sequence[float], groups: Sequence[float]) -> float:
    """Kendall's concordance among pairs that share a group: ``(C - D) / (C + D)``.

    Only pairs of entries with equal ``groups`` value count; a pair tied in
    score or in truth is neither concordant nor discordant (Goodman and
    Kruskal's gamma within groups). With groups = parameter counts it says
    how well the scores order architectures of the same size, which a
    parameter count cannot. NaN when no pair counts.
    """
    s, t, g = (np.asarray(v, dtype=float) for v in (score, truth, groups))
    concordant = discordant = 0
    for value in np.unique(g):
        members = g == value
        if members.sum() < 2:
            continue
        with np.errstate(invalid="ignore"):  # -inf - -inf is NaN: a tie, counted as neither
            sign = np.sign(s[members][:, None] - s[members][None, :]) * np.sign(t[members][:, None] - t[members][None, :])
        concordant += int((sign > 0).sum()) // 2  # each pair appears twice in the square
        discordant += int((sign < 0).sum()) // 2
    pairs = concordant + discordant
    return (concordant - discordant) / pairs if pairs else math.nan


def live_parameters(archs: Sequence[str], space: str | None = None) -> np.ndarray:
    """Parameters of each architecture's stand-alone network, counting only operations that reach its output.

    A training-free baseline: on NAS-Bench-201 the count alone ranks the
    public half at Kendall tau 0.65 (``SearchSpace.live_arch``,
    ``SearchSpace.parameter_count``; nb201 in closed form, other spaces by
    building the network on the meta device, about 0.1 s each).
    """
    from nsas.spaces import get_space, parse_arch

    counts = []
    for text in archs:
        arch = parse_arch(text, space)
        sp = get_space(arch.space)
        counts.append(sp.parameter_count(sp.live_arch(arch)))
    return np.array(counts, dtype=float)


@dataclass(frozen=True)
class Interval:
    """A bootstrap confidence interval.

    Attributes:
        low: lower percentile (NaN when every resample was degenerate).
        high: upper percentile.
        skipped: resamples on which the metric was undefined (NaN), left out.
    """

    low: float
    high: float
    skipped: int


def bootstrap_ci(metric: Callable[[np.ndarray, np.ndarray], float], score: Sequence[float],
                 truth: Sequence[float], *, resamples: int = 1000, seed: int = 0,
                 confidence: float = 0.95) -> Interval:
    """Percentile bootstrap interval of ``metric(score, truth)``.

    Architectures (pairs) are resampled with replacement; resamples on which
    ``metric`` is NaN (for example all scores equal) are skipped and counted.
    The same ``seed`` draws the same resamples for every metric.
    """
    s, t = np.asarray(score, dtype=float), np.asarray(truth, dtype=float)
    rng = np.random.default_rng(seed)
    values = np.array([metric(s[i], t[i]) for i in rng.integers(0, len(s), size=(resamples, len(s)))])
    values = values[~np.isnan(values)]
    skipped = resamples - len(values)
    if not len(values):
        return Interval(math.nan, math.nan, skipped)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(values, [alpha, 1 - alpha])
    return Interval(float(low), float(high), skipped)
