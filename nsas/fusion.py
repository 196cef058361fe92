"""Rank fusion: several score columns (supernet acc/loss, zero-cost proxies) combined into one score.

    w = parse_weights("count=0.5,loss=0.5")                       # given
    score = fuse(rows, w, method="rank")                          # higher is better
    fw = fit_weights(rows, truth, ["params", "loss", "jacov"])    # fitted: max Kendall tau on these cells
    fw.save("weights.json"); FusionWeights.load("weights.json")

Each column gets a direction: ``loss`` and ``ppl`` are lower-is-better (so
they enter negated), everything else (``acc``, every proxy) higher-is-better;
``lower_is_better=`` overrides. ``method="rank"`` sums the weighted per-column
ranks (average ranks for ties, scaled to [0, 1]); ``method="z"`` sums the
weighted standardised scores ((v - mean) / std; infinite values are first
clipped to the column's finite range). ``count`` is read as ``params``.

Fitting searches the simplex of non-negative weights summing to 1 for the
highest Kendall tau-b between the fused score and the truth column on the
given cells: every point of a grid of step ``step`` when there are few
columns, else a deterministic coordinate search (moving weight between two
columns, halving the move until it is below ``step / 8``). Weights judged on
cells must not have been fitted on them: fit on a tune half, judge elsewhere.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from nsas.errors import NsasError

METHODS = ("rank", "z")
LOWER_IS_BETTER = frozenset({"loss", "ppl"})
ALIASES = {"count": "params"}
_GRID_LIMIT = 5000  # grid points before fitting switches to the coordinate search


class FusionError(NsasError):
    """Fusion weights or columns that are malformed, missing or inconsistent."""


def column_name(name: str) -> str:
    """A column's name with its alias resolved (``count`` -> ``params``)."""
    name = name.strip()
    return ALIASES.get(name, name)


def parse_weights(text: str) -> dict[str, float]:
    """``"count=0.5,loss=0.5"`` -> ``{"params": 0.5, "loss": 0.5}`` (non-negative, not all zero)."""
    out: dict[str, float] = {}
    for item in (i.strip() for i in str(text).split(",")):
        if not item:
            continue
        name, sep, value = item.partition("=")
        name = column_name(name)
        try:
            weight = float(value)
        except ValueError:
            weight = math.nan
        if not sep or not name or not math.isfinite(weight) or weight < 0:
            raise FusionError(f"weight {item!r}: expected COLUMN=NUMBER with a number >= 0, e.g. count=0.5,loss=0.5")
        if name in out:
            raise FusionError(f"weight for {name!r} given twice in {text!r}")
        out[name] = weight
    if not out or not any(out.values()):
        raise FusionError(f"no positive weight in {text!r}; e.g. count=0.5,loss=0.5")
    return out


def direction(column: str, lower_is_better: Sequence[str] | None = None) -> float:
    """+1 for a higher-is-better column, -1 for a lower-is-better one (loss, ppl, or those named)."""
    lower = LOWER_IS_BETTER if lower_is_better is None else {column_name(c) for c in lower_is_better}
    return -1.0 if column in lower else 1.0


def _values(rows: Sequence[Mapping[str, Any]], column: str) -> np.ndarray:
    try:
        values = np.array([float(r[column]) for r in rows], dtype=float)
    except KeyError:
        available = ", ".join(k for k in (rows[0] if rows else {}) if k != "arch") or "(none)"
        raise FusionError(f"no column {column!r} to fuse; available: {available}") from None
    except (TypeError, ValueError):
        raise FusionError(f"column {column!r} holds a value that is not a number") from None
    if np.isnan(values).any():
        raise FusionError(f"column {column!r} has {int(np.isnan(values).sum())} NaN values: cannot fuse it")
    return values


def transformed(values: np.ndarray, method: str) -> np.ndarray:
    """One column (already oriented higher-is-better) as fusion sums it: ranks in [0, 1], or z scores."""
    if method == "rank":
        ranks = stats.rankdata(values, method="average")
        return (ranks - 1) / max(len(values) - 1, 1)
    if method == "z":
        finite = values[np.isfinite(values)]
        if not len(finite):
            return np.zeros_like(values)
        v = np.clip(values, finite.min(), finite.max())
        std = v.std()
        return (v - v.mean()) / std if std > 0 else np.zeros_like(v)
    raise FusionError(f"unknown fusion method {method!r}; choose one of {', '.join(METHODS)}")


def _matrix(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], method: str,
            lower_is_better: Sequence[str] | None) -> np.ndarray:
    """(cells, columns): each column oriented and transformed."""
    return np.stack([transformed(direction(c, lower_is_better) * _values(rows, c), method) for c in columns], axis=1)


def fuse(rows: Sequence[Mapping[str, Any]], weights: Mapping[str, float], *, method: str = "rank",
         lower_is_better: Sequence[str] | None = None) -> np.ndarray:
    """The fused score of each row (higher is better): the weighted sum of its transformed columns.

    Args:
        rows: one dict per cell with every weighted column.
        weights: column -> non-negative weight (``count`` means ``params``).
        method: ``"rank"`` (average ranks, ties shared) or ``"z"`` (standardised values).
        lower_is_better: the columns where lower is better (default: loss, ppl).
    """
    weights = {column_name(c): float(w) for c, w in weights.items()}
    if not weights or any(w < 0 or not math.isfinite(w) for w in weights.values()) or not any(weights.values()):
        raise FusionError(f"fusion weights must be non-negative and not all zero, got {weights}")
    if not rows:
        return np.zeros(0)
    columns = list(weights)
    return _matrix(rows, columns, method, lower_is_better) @ np.array([weights[c] for c in columns])


def kendall(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b (scipy.stats.kendalltau); NaN when undefined."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(stats.kendalltau(x, y).statistic)


@dataclass
class FusionWeights:
    """Fusion weights and where they came from (saved as JSON, reloadable).

    Attributes:
        weights: column -> weight (summing to 1 when fitted).
        method: ``"rank"`` or ``"z"``.
        lower_is_better: the lower-is-better columns among ``weights``.
        fitted_on: for fitted weights: ``truth`` (file name or label), ``truth_key``, ``cells``,
            ``columns``, ``tau`` (Kendall tau-b on those cells), ``search`` ("grid" or "coordinate"), ``step``.
    """

    weights: dict[str, float]
    method: str = "rank"
    lower_is_better: list[str] = field(default_factory=list)
    fitted_on: dict[str, Any] | None = None

    def fuse(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """The fused score of ``rows`` with these weights."""
        return fuse(rows, self.weights, method=self.method, lower_is_better=self.lower_is_better)

    def to_json(self) -> dict[str, Any]:
        return {"format": "nsas-fusion-weights", "version": 1, **asdict(self)}

    def save(self, path: str | Path) -> Path:
        """Write the JSON atomically; returns the path."""
        from nsas.rundir import write_text_atomic

        path = Path(path)
        try:
            write_text_atomic(path, json.dumps(self.to_json(), indent=2) + "\n")
        except OSError as err:
            raise FusionError(f"cannot write {path}: {err.strerror}") from None
        return path

    @classmethod
    def load(cls, path: str | Path) -> FusionWeights:
        """Read weights saved by :meth:`save`."""
        path = Path(path)
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except OSError as err:
            raise FusionError(f"cannot read fusion weights {path}: {err.strerror}") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise FusionError(f"{path}: not a JSON file of fusion weights ({err})") from None
        if not isinstance(obj, dict) or obj.get("format") != "nsas-fusion-weights" or not isinstance(
                obj.get("weights"), dict):
            raise FusionError(f"{path}: not a fusion weights file (expected format 'nsas-fusion-weights')")
        try:
            weights = {column_name(str(c)): float(w) for c, w in obj["weights"].items()}
        except (TypeError, ValueError):
            raise FusionError(f"{path}: a weight is not a number") from None
        method = obj.get("method", "rank")
        if method not in METHODS:
            raise FusionError(f"{path}: unknown fusion method {method!r}; choose one of {', '.join(METHODS)}")
        if not weights or any(w < 0 or not math.isfinite(w) for w in weights.values()) or not any(weights.values()):
            raise FusionError(f"{path}: fusion weights must be non-negative and not all zero")
        lower = obj.get("lower_is_better", [])
        if not isinstance(lower, list):
            raise FusionError(f"{path}: lower_is_better must be a list of column names")
        return cls(weights=weights, method=method, lower_is_better=[str(c) for c in lower],
                   fitted_on=obj.get("fitted_on"))


def _simplex_grid(k: int, steps: int) -> list[np.ndarray]:
    """Every weight vector of k non-negative multiples of 1/steps summing to 1, in a fixed order."""
    points = []
    for cuts in itertools.combinations(range(steps + k - 1), k - 1):  # stars and bars
        bounds = (-1, *cuts, steps + k - 1)
        points.append(np.array([bounds[i + 1] - bounds[i] - 1 for i in range(k)], dtype=float) / steps)
    return points


def fit_weights(rows: Sequence[Mapping[str, Any]], truth: Sequence[float], columns: Sequence[str], *,
                method: str = "rank", step: float = 0.05, lower_is_better: Sequence[str] | None = None,
                truth_name: str = "truth", truth_key: str = "acc") -> FusionWeights:
    """Weights on the simplex that maximise Kendall tau-b between the fused score and ``truth``.

    Args:
        rows: the cells' score rows (each with every column).
        truth: the true value of each row (higher is better), same order.
        columns: the columns to weigh (``count`` means ``params``).
        method: ``"rank"`` or ``"z"``.
        step: the grid step (a grid when it has at most 5,000 points, else a coordinate search).
        lower_is_better: the lower-is-better columns (default: loss, ppl).
        truth_name, truth_key: recorded in ``fitted_on`` (the truth file's name and column).

    Ties are broken deterministically: the first best point in the search order wins.
    """
    columns = list(dict.fromkeys(column_name(c) for c in columns))
    if not columns:
        raise FusionError("fitting needs at least one column")
    if method not in METHODS:
        raise FusionError(f"unknown fusion method {method!r}; choose one of {', '.join(METHODS)}")
    if not 0 < step <= 1:
        raise FusionError(f"the fitting step must be in (0, 1], got {step}")
    t = np.asarray(truth, dtype=float)
    if len(t) != len(rows):
        raise FusionError(f"{len(rows)} rows but {len(t)} truth values")
    if len(rows) < 3:
        raise FusionError(f"fitting fusion weights needs at least 3 cells with a truth value, got {len(rows)}")
    if np.isnan(t).any():
        raise FusionError("the truth column has NaN values")
    lower = sorted(c for c in columns if direction(c, lower_is_better) < 0)
    m = _matrix(rows, columns, method, lower_is_better)

    def tau(w: np.ndarray) -> float:
        value = kendall(m @ w, t)
        return -math.inf if math.isnan(value) else value

    steps = max(1, round(1 / step))
    k = len(columns)
    if math.comb(steps + k - 1, k - 1) <= _GRID_LIMIT:
        search = "grid"
        best_w, best = None, -math.inf
        for w in _simplex_grid(k, steps):
            value = tau(w)
            if value > best:
                best_w, best = w, value
    else:
        search = "coordinate"
        starts = [np.full(k, 1 / k)] + [np.eye(k)[i] for i in range(k)]
        best_w, best = max(((w, tau(w)) for w in starts), key=lambda p: p[1])  # first best on ties
        delta = 0.25
        while delta >= step / 8:
            improved = False
            for i, j in itertools.permutations(range(k), 2):  # move weight from column j to column i
                move = min(delta, best_w[j])
                if move <= 0:
                    continue
                w = best_w.copy()
                w[i] += move
                w[j] -= move
                value = tau(w)
                if value > best + 1e-12:
                    best_w, best, improved = w, value, True
            if not improved:
                delta /= 2
    weights = {c: round(float(v), 6) for c, v in zip(columns, best_w)}
    return FusionWeights(weights=weights, method=method, lower_is_better=lower, fitted_on={
        "truth": truth_name, "truth_key": truth_key, "cells": len(rows), "columns": columns,
        "method": method, "tau": None if best == -math.inf else round(best, 6), "search": search, "step": step})


__all__ = ["FusionError", "FusionWeights", "METHODS", "column_name", "direction", "fit_weights", "fuse", "kendall",
           "parse_weights", "transformed"]
