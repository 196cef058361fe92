"""How well do supernet scores rank architectures? (``nsas correlate``)

Reads two tables of architectures -- supernet scores and ground truth (for
example stand-alone accuracies) -- joins them on canonical architecture
strings and reports Kendall's tau-b, Spearman's rho, precision@k and the true
rank of the supernet's favourite, each correlation with a percentile bootstrap
95% confidence interval::

    nsas correlate scores.csv truth.jsonl --key acc --top-k 5 10 --bootstrap 1000

A table is a CSV file whose header has an ``arch`` column plus numeric
columns, or JSON (a list of objects with ``"arch"`` and numeric keys), or JSONL
(one such object per line). Either file may write an architecture in any form
its space parses; rows are matched by ``str(parse_arch(text))``.

All metrics are computed on values oriented so that higher is better (a
column where lower is better is negated first), so a positive correlation
always means the supernet agrees with the truth. The score and the truth each
have their own direction: ``--lower-is-better`` / ``--higher-is-better`` set
the score's, ``--truth-lower-is-better`` / ``--truth-higher-is-better`` the
truth's, and a side without a flag takes the direction its column's name
suggests (accuracy-like names: higher is better; loss, perplexity, error:
lower; any other name: higher, reported as assumed). A direction never
carries over from one side to the other; one given against its column's
name is used but warned about, and the report prints both.

``--key`` may name several score columns, or ``all`` of them (for example the
``acc``, ``loss`` and proxy columns of ``nsas rank``): one line each. Without
``--key``, the scores of a run's ``scores.csv`` (``nsas rank``'s default
output, beside the run's ``config.yaml``) are measured by what the run ranks
by (``rank_by``); any other table by ``acc``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nsas.errors import NsasError
from nsas.tables import ARCH, Table, metric_column, read_table  # noqa: F401  (importable from here too)
from nsas.tables import canonical_rows as _canonical
from nsas.tables import header_columns as _header

_SHOWN = 5  # how many unmatched architectures a report names


# ---------------------------------------------------------------- reading (nsas.tables; importable from here too)
# ---------------------------------------------------------------- joining
@dataclass(frozen=True)
class Joined:
    """Rows of two tables matched by canonical architecture string.

    Attributes:
        archs: canonical strings present in both tables, in the order of the first.
        scores: the first table's row of each, same order.
        truth: the second table's row of each, same order.
        only_scores: canonical strings found only in the first table.
        only_truth: canonical strings found only in the second table.
    """

    archs: list[str]
    scores: list[dict[str, float]]
    truth: list[dict[str, float]]
    only_scores: list[str]
    only_truth: list[str]


def join(scores: Mapping[str, dict[str, float]], truth: Mapping[str, dict[str, float]],
         space: str | None = None) -> Joined:
    """Match two tables (from :func:`read_table` or plain dicts) on canonical architectures.

    Args:
        scores: raw arch text -> values (supernet scores).
        truth: raw arch text -> values (ground truth).
        space: the search space of every arch; detected per string when ``None``.

    Raises:
        NsasError: an arch that does not parse, or one architecture written
            twice in the same table (in any two forms).
    """
    _, s = _canonical(scores, space, "scores")
    _, t = _canonical(truth, space, "truth")
    archs = [a for a in s if a in t]
    return Joined(
        archs=archs,
        scores=[s[a] for a in archs],
        truth=[t[a] for a in archs],
        only_scores=[a for a in s if a not in t],
        only_truth=[a for a in t if a not in s],
    )


# ---------------------------------------------------------------- metrics (nsas/rankstats.py; re-exported here)
from nsas.rankstats import (Interval, bootstrap_ci, kendall_tau, live_parameters,  # noqa: E402,F401
                            precision_at_k, spearman_rho, top_indices, top_truth_rank, within_groups_tau)


# ---------------------------------------------------------------- directions
_LOWER = ("loss", "ppl", "perplexity", "err", "nll", "xent", "regret", "latency")  # word prefixes
_HIGHER = ("acc", "top1", "top5", "auc", "f1", "map", "bleu")


def name_direction(name: str) -> bool | None:
    """Whether a column's name says lower is better: True (loss, ppl, perplexity, error, ...), False (acc,
    accuracy, top1, ...), or None when the name says neither (or both)."""
    words = [w for w in re.split(r"[^a-z0-9]+", name.lower()) if w]
    lower = any(w.startswith(_LOWER) or w == "ce" for w in words)
    higher = any(w.startswith(_HIGHER) for w in words)
    return None if lower == higher else lower


def _direction(column: str, given: bool | None, side: str, flags: tuple[str, str]) -> tuple[bool, str, str | None]:
    """``(lower_is_better, how, warning)`` of one side: the given direction, else the name's, else higher."""
    by_name = name_direction(column)
    if given is None:
        return (False, "assumed", None) if by_name is None else (by_name, "by its name", None)
    warning = None
    if by_name is not None and given != by_name:
        warning = (f"{flags[0] if given else flags[1]} given for the {side} column {column!r}, whose name says "
                   f"{'lower' if by_name else 'higher'} is better; the {side} is ranked as given "
                   f"({'lower' if given else 'higher'} is better)")
    return given, "given", warning


def _words(lower: bool) -> str:
    return "lower is better" if lower else "higher is better"


def _run_config(path: str | Path) -> dict[str, Any] | None:
    """The ``config.yaml`` beside a scores file (a run's ``scores.csv``), or None."""
    config = Path(path).parent / "config.yaml"
    if not config.is_file():
        return None
    try:
        from nsas.config import read_yaml

        values = read_yaml(config)
    except Exception:  # an unreadable or foreign config.yaml: no run to follow
        return None
    return values if isinstance(values, dict) and "space" in values else None


def run_key(path: str | Path, columns: Sequence[str]) -> str | None:
    """The score column a run ranks by, for a ``nsas rank`` CSV (``acc`` and ``loss``) beside its run's config.

    ``loss`` when the run's ``rank_by`` is loss or its space is a text space,
    ``acc`` when its ``rank_by`` is acc; None when ``path`` is not in a run
    directory or the table lacks the column.
    """
    if not {"acc", "loss"} <= set(columns):
        return None
    config = _run_config(path)
    if config is None:
        return None
    key = config.get("rank_by")
    try:
        from nsas.spaces import get_space

        if get_space(str(config["space"])).kind == "text":
            key = "loss"
    except Exception:  # a plug-in space not installed here: its rank_by still says
        pass
    return key if key in ("acc", "loss") and key in columns else None


def _truth_column(truth: Mapping[str, dict[str, float]] | Sequence[str], key: str | None) -> str:
    """The truth column when none is named: ``key`` if the truth has it, else ``acc``, else ``test_acc`` (what
    ``nsas truth import`` writes), else its only column."""
    columns = list(truth) if isinstance(truth, (list, tuple)) else list(next(iter(truth.values()), {}))
    for name in (key, "acc", "test_acc"):
        if name is not None and name in columns:
            return name
    if len(columns) == 1:
        return columns[0]
    source = getattr(truth, "source", "the truth")
    raise NsasError(f"{source}: several value columns ({', '.join(columns) or 'none'}); name the truth column "
                    "(--truth-key)")


# ---------------------------------------------------------------- report
def _column(rows: list[dict[str, float]], key: str, source: str) -> np.ndarray:
    missing = next((r for r in rows if key not in r), None)
    if missing is not None:
        raise NsasError(f"{source}: no key {key!r}; available: {', '.join(missing) or '(none)'}")
    return np.array([r[key] for r in rows], dtype=float)


def _nan_to_none(x: float) -> float | None:
    return None if math.isnan(x) else x


def correlate(scores: Mapping[str, dict[str, float]] | str | Path, truth: Mapping[str, dict[str, float]] | str | Path,
              *,
              key: str | None = None, truth_key: str | None = None, lower_is_better: bool | None = None,
              truth_lower_is_better: bool | None = None, space: str | None = None,
              top_k: Sequence[int] = (5, 10), bootstrap: int = 1000, seed: int = 0,
              confidence: float = 0.95, baseline: bool = False) -> dict[str, Any]:
    """Ranking quality of ``scores`` against ``truth``, as a JSON-ready dict.

    Args:
        scores: supernet scores (from :func:`read_table` or a plain dict), or a table file to read.
        truth: ground truth, same shape, or a table file to read (for example
            the ``arch,test_acc`` CSV of ``nsas truth import``).
        key: the score column (default: for a run's ``scores.csv``, what the
            run ranks by, see :func:`run_key`; else ``acc``).
        truth_key: the truth column (default: ``key`` if the truth has it,
            else ``acc``, else ``test_acc``, else the truth's only column).
        lower_is_better: smaller scores are better; ``None``: as the score
            column's name says (:func:`name_direction`; higher if it says
            neither). Never applies to the truth.
        truth_lower_is_better: the same for the truth, from the truth column's name when ``None``.
        space: search space of the arch strings (detected when ``None``).
        top_k: the k of each precision@k; a k above the number joined is
            skipped and listed under ``"skipped_top_k"``.
        bootstrap: number of resamples (0: no intervals).
        seed: seed of the resamples.
        confidence: coverage of the intervals.
        baseline: also rank by :func:`live_parameters` (no training) and
            measure the scores among architectures of equal size
            (:func:`within_groups_tau`); adds ``"baseline"``.

    Returns:
        ``{"n", "key", "truth_key", "lower_is_better", "truth_lower_is_better",
        "directions": {"score", "truth"} (each "given", "by its name" or
        "assumed"), "warnings", "metrics": {name: {"value", "ci", "skipped"}},
        "top_arch", "top_truth_rank", "only_in_scores", "only_in_truth", ...}``;
        undefined values are ``None``. A direction given against its column's
        name is also issued as a :class:`UserWarning`. With ``baseline``:
        ``"baseline": {"metrics": {"kendall_tau", "spearman_rho"} of the
        parameter count, "within_equal_parameters": {"value", "ci",
        "skipped", "pairs"} of the scores}``.

    Raises:
        NsasError: bad arguments, bad tables, or fewer than 3 architectures joined.
    """
    result = _correlate(scores, truth, key=key, truth_key=truth_key, lower_is_better=lower_is_better,
                        truth_lower_is_better=truth_lower_is_better, space=space, top_k=top_k,
                        bootstrap=bootstrap, seed=seed, confidence=confidence, baseline=baseline)
    for message in result["warnings"]:
        warnings.warn(message, UserWarning, stacklevel=2)
    return result


def _load(scores: Any, truth: Any, key: str | None, truth_key: str | None) -> tuple[Any, Any, str, str]:
    """Both tables read (files: only the columns used) and both columns resolved."""
    if isinstance(scores, (str, Path)):
        if key is None:
            key = run_key(scores, _header(scores)) or "acc"
        scores = read_table(scores, keys=[key])
    key = "acc" if key is None else key
    if isinstance(truth, (str, Path)):
        if truth_key is None:
            try:
                truth_key = _truth_column(_header(truth), key)
            except NsasError as err:
                raise NsasError(f"{truth}: {str(err).split(': ', 1)[1]}") from None
        truth = read_table(truth, keys=[truth_key])
    elif truth_key is None:
        truth_key = _truth_column(truth, key)
    return scores, truth, key, truth_key


def _correlate(scores: Any, truth: Any, *, key: str | None, truth_key: str | None, lower_is_better: bool | None,
               truth_lower_is_better: bool | None, space: str | None, top_k: Sequence[int], bootstrap: int,
               seed: int, confidence: float, baseline: bool, joined: Joined | None = None) -> dict[str, Any]:
    """:func:`correlate` without issuing its warnings (the CLI prints them as notes)."""
    scores, truth, key, truth_key = _load(scores, truth, key, truth_key)
    lower, score_how, score_warning = _direction(key, lower_is_better, "score",
                                                 ("--lower-is-better", "--higher-is-better"))
    truth_lower, truth_how, truth_warning = _direction(truth_key, truth_lower_is_better, "truth",
                                                       ("--truth-lower-is-better", "--truth-higher-is-better"))
    if bootstrap < 0:
        raise NsasError(f"--bootstrap must be 0 or more, got {bootstrap}")
    if any(k < 1 for k in top_k):
        raise NsasError(f"--top-k values must be 1 or more, got {' '.join(map(str, top_k))}")
    if not 0 < confidence < 1:
        raise NsasError(f"confidence must be between 0 and 1, got {confidence}")
    if space is not None:
        from nsas.spaces import get_space

        get_space(space)  # an unknown name fails here, not on the first row
    s_name, t_name = getattr(scores, "source", "scores"), getattr(truth, "source", "truth")
    joined = join(scores, truth, space) if joined is None else joined
    n = len(joined.archs)
    if n < 3:
        raise NsasError(f"only {n} architecture(s) appear in both {s_name} and {t_name}; need at least 3 "
                        f"({len(joined.only_scores)} only in {s_name}, {len(joined.only_truth)} only in {t_name})")
    s = _column(joined.scores, key, s_name) * (-1 if lower else 1)
    t = _column(joined.truth, truth_key, t_name) * (-1 if truth_lower else 1)

    metrics: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
        "kendall_tau": kendall_tau, "spearman_rho": spearman_rho}
    ks = list(dict.fromkeys(top_k))
    for k in (k for k in ks if k <= n):
        metrics[f"precision@{k}"] = lambda a, b, k=k: precision_at_k(a, b, k)

    def measure(fn: Callable[[np.ndarray, np.ndarray], float], x: np.ndarray) -> dict[str, Any]:
        entry: dict[str, Any] = {"value": _nan_to_none(fn(x, t)), "ci": None, "skipped": 0}
        if bootstrap:
            ci = bootstrap_ci(fn, x, t, resamples=bootstrap, seed=seed, confidence=confidence)
            entry["ci"] = None if math.isnan(ci.low) else [ci.low, ci.high]
            entry["skipped"] = ci.skipped
        return entry

    report = {name: measure(fn, s) for name, fn in metrics.items()}
    extra: dict[str, Any] = {}
    if baseline:
        try:
            size = live_parameters(joined.archs, space)
        except NsasError:
            raise
        except Exception as err:  # a plug-in space whose network cannot be built without options
            raise NsasError(f"--baseline: cannot count the parameters of these architectures ({err})") from None
        # Resample (score, size) rows together: the metric gets both columns.
        within = measure(lambda rows, truth: within_groups_tau(rows[:, 0], truth, rows[:, 1]),
                         np.column_stack([s, size]))
        same = size[:, None] == size[None, :]
        within["pairs"] = int((same.sum() - n) // 2)
        extra["baseline"] = {
            "name": "live parameters",
            "metrics": {"kendall_tau": measure(kendall_tau, size), "spearman_rho": measure(spearman_rho, size)},
            "within_equal_parameters": within,
        }
    best = int(top_indices(s, 1)[0])
    return {
        "n": n,
        "key": key, "truth_key": truth_key,
        "lower_is_better": lower, "truth_lower_is_better": truth_lower,
        "directions": {"score": score_how, "truth": truth_how},
        "warnings": [w for w in (score_warning, truth_warning) if w],
        "metrics": report,
        "skipped_top_k": [k for k in ks if k > n],
        "top_arch": joined.archs[best],
        "top_truth_rank": top_truth_rank(s, t),
        "bootstrap": {"resamples": bootstrap, "seed": seed, "confidence": confidence},
        "only_in_scores": {"count": len(joined.only_scores), "first": joined.only_scores[:_SHOWN]},
        "only_in_truth": {"count": len(joined.only_truth), "first": joined.only_truth[:_SHOWN]},
        **extra,
    }


def score_columns(scores: Mapping[str, dict[str, float]] | str | Path) -> list[str]:
    """Every value column of a scores table or file, in its order (what ``--key all`` measures)."""
    if isinstance(scores, (str, Path)):
        return _header(scores)
    return list(next(iter(scores.values()), {}))


def correlate_columns(scores: Mapping[str, dict[str, float]] | str | Path,
                      truth: Mapping[str, dict[str, float]] | str | Path, keys: Sequence[str] | str = "all",
                      **options: Any) -> dict[str, dict[str, Any]]:
    """:func:`correlate` of each score column in ``keys`` (``"all"``: every column) against one truth column.

    Each column takes its own direction from its name (``lower_is_better``
    cannot be given: one direction for several columns would be wrong for
    some). ``options`` are :func:`correlate`'s other keywords.

    Returns:
        ``{column: correlate result}``, in the order of ``keys``.
    """
    if options.get("lower_is_better") is not None:
        raise NsasError("--lower-is-better/--higher-is-better set one score column's direction; with several "
                        "--key columns each takes the direction its name says")
    options.pop("lower_is_better", None)
    columns = score_columns(scores) if keys == "all" else list(dict.fromkeys([keys] if isinstance(keys, str) else keys))
    if not columns:
        raise NsasError(f"{getattr(scores, 'source', scores)}: no score columns")
    if isinstance(scores, (str, Path)):
        scores = read_table(scores, keys=columns)
    else:
        for column in columns:
            _column(list(scores.values()), column, "scores")
    truth_key = options.pop("truth_key", None)
    _, truth, _, truth_key = _load(scores, truth, columns[0] if len(columns) == 1 else None, truth_key)
    joined = join(scores, truth, options.get("space"))
    results = {}
    for column in columns:
        results[column] = _correlate(scores, truth, key=column, truth_key=truth_key, lower_is_better=None,
                                     joined=joined, **{"truth_lower_is_better": None, "space": None,
                                                       "top_k": (5, 10), "bootstrap": 1000, "seed": 0,
                                                       "confidence": 0.95, "baseline": False, **options})
    for message in dict.fromkeys(w for r in results.values() for w in r["warnings"]):
        warnings.warn(message, UserWarning, stacklevel=2)
    return results


def format_columns(results: Mapping[str, dict[str, Any]]) -> str:
    """One line per score column of a :func:`correlate_columns` result."""
    first = next(iter(results.values()))
    pct = round(100 * first["bootstrap"]["confidence"])
    ks = [name for name in first["metrics"] if name.startswith("precision@")]
    rows = [("score column", "direction", "kendall tau", f"{pct}% CI", "spearman rho", *ks, "top-1 truth rank")]
    for column, r in results.items():
        m = r["metrics"]
        how = "" if r["directions"]["score"] == "given" else f" ({r['directions']['score'].replace('its ', '')})"
        rows.append((column, ("lower" if r["lower_is_better"] else "higher") + how, *_cells(m["kendall_tau"]),
                     _cells(m["spearman_rho"])[0], *(_cells(m[k])[0] for k in ks),
                     f"{r['top_truth_rank']} of {r['n']}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.insert(0, _truth_line(first) + f"; n = {first['n']}")
    return "\n".join(lines)


def _side(result: dict[str, Any], side: str) -> str:
    lower = result["lower_is_better" if side == "score" else "truth_lower_is_better"]
    return f"{_words(lower)}, {result['directions'][side]}"


def _truth_line(result: dict[str, Any]) -> str:
    return f"truth: {result['truth_key']} ({_side(result, 'truth')})"


def _cells(m: dict[str, Any]) -> tuple[str, str]:
    value = "undefined" if m["value"] is None else f"{m['value']:.4f}"
    return value, "-" if m["ci"] is None else f"[{m['ci'][0]:.4f}, {m['ci'][1]:.4f}]"


def format_report(result: dict[str, Any]) -> str:
    """The human-readable table of a :func:`correlate` result."""
    n = result["n"]
    pct = round(100 * result["bootstrap"]["confidence"])
    rows = [("metric", "value", f"{pct}% CI", "n")]
    for name, m in result["metrics"].items():
        rows.append((name.replace("_", " "), *_cells(m), str(n)))
    rows.append(("truth rank of top-1", f"{result['top_truth_rank']} of {n}", "-", str(n)))
    if "baseline" in result:
        base = result["baseline"]
        for name, m in base["metrics"].items():
            rows.append((f"{name.replace('_', ' ')} of live parameters", *_cells(m), str(n)))
        within = base["within_equal_parameters"]
        rows.append(("kendall tau within equal parameters", *_cells(within), f"{within['pairs']} pairs"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    boot = result["bootstrap"]
    if boot["resamples"]:
        note = f"bootstrap: {boot['resamples']} resamples of architectures, seed {boot['seed']}"
        skipped = [f"{name} {m['skipped']}" for name, m in result["metrics"].items() if m["skipped"]]
        if skipped:
            note += "; degenerate resamples skipped: " + ", ".join(skipped)
        lines.append(note)
    lines.append(f"top-1 by score: {result['top_arch']}")
    lines.insert(0, f"score: {result['key']} ({_side(result, 'score')}); {_truth_line(result)}")
    return "\n".join(lines)


# ---------------------------------------------------------------- CLI
def configure(parser: argparse.ArgumentParser) -> None:
    """Flags of ``nsas correlate``."""
    parser.add_argument("scores", metavar="SCORES", help="CSV/JSON/JSONL of supernet scores: an 'arch' column plus numbers")
    parser.add_argument("truth", metavar="TRUTH", help="CSV/JSON/JSONL of ground truth, same shape")
    parser.add_argument("--key", default=None, action="append", metavar="KEY",
                        help="score column; several (--key acc --key loss, or --key acc,loss) or 'all' (every "
                             "column, e.g. nsas rank's acc, loss and proxy columns) give one line each (default: "
                             "for a run's scores.csv the column the run ranks by, its rank_by; else acc)")
    parser.add_argument("--truth-key", default=None, metavar="KEY",
                        help="truth column (default: --key if the truth has it, else acc, else test_acc, else its only column)")
    side = parser.add_mutually_exclusive_group()
    side.add_argument("--lower-is-better", dest="lower_is_better", action="store_const", const=True, default=None,
                      help="smaller scores are better (the score only, never the truth; default: by the score "
                           "column's name: loss, ppl, error lower; acc and any other name higher)")
    side.add_argument("--higher-is-better", dest="lower_is_better", action="store_const", const=False,
                      help="larger scores are better")
    side = parser.add_mutually_exclusive_group()
    side.add_argument("--truth-lower-is-better", dest="truth_lower_is_better", action="store_const",
                      const=True, default=None,
                      help="smaller truth values are better (default: by the truth column's name, as for the score)")
    side.add_argument("--truth-higher-is-better", dest="truth_lower_is_better", action="store_const",
                      const=False, help="larger truth values are better")
    parser.add_argument("--space", default=None, help="search space of the arch strings (default: detected)")
    parser.add_argument("--top-k", type=int, nargs="+", default=[5, 10], metavar="K", help="k of precision@k (default: 5 10)")
    parser.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples (default: 1000; 0: none)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default: 0)")
    parser.add_argument("--baseline", action="store_true",
                        help="also rank by the live parameter count (no training) and measure the scores "
                             "among architectures of equal size")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _note_unmatched(result: dict[str, Any], here: str, there: str, field: str) -> None:
    only = result[field]
    if only["count"]:
        more = ", ..." if only["count"] > len(only["first"]) else ""
        sys.stderr.write(f"nsas: note: {only['count']} architecture(s) only in {here}, not in {there}: "
                         f"{', '.join(only['first'])}{more}\n")


def run(args: argparse.Namespace) -> int:
    """``nsas correlate``: read, join, measure, print."""
    keys = list(dict.fromkeys(k.strip() for given in args.key or [] for k in given.split(",") if k.strip()))
    if "all" in keys and len(keys) > 1:
        raise NsasError("--key all measures every score column; give it alone")
    if not keys:
        followed = run_key(args.scores, _header(args.scores))
        keys = [followed or "acc"]
        if followed:
            sys.stderr.write(f"nsas: note: --key {followed}: the run ranks by {followed} (its config.yaml); "
                             "--key names another column\n")
    options = dict(truth_key=args.truth_key, truth_lower_is_better=args.truth_lower_is_better, space=args.space,
                   top_k=args.top_k, bootstrap=args.bootstrap, seed=args.seed, baseline=args.baseline)
    if keys == ["all"] or len(keys) > 1:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            results = correlate_columns(args.scores, args.truth, "all" if keys == ["all"] else keys,
                                        lower_is_better=args.lower_is_better, **options)
        for w in caught:
            sys.stderr.write(f"nsas: warning: {w.message}\n")
        first = {"scores": args.scores, "truth": args.truth, **next(iter(results.values()))}
        _notes(first, args)
        print(json.dumps({"scores": args.scores, "truth": args.truth, "columns": results}, indent=2)
              if args.json else format_columns(results))
        return 0
    result = _correlate(args.scores, args.truth, key=keys[0], lower_is_better=args.lower_is_better,
                        confidence=0.95, **options)
    result = {"scores": args.scores, "truth": args.truth, **result}
    for message in result["warnings"]:
        sys.stderr.write(f"nsas: warning: {message}\n")
    _notes(result, args)
    print(json.dumps(result, indent=2) if args.json else format_report(result))
    return 0


def _notes(result: dict[str, Any], args: argparse.Namespace) -> None:
    _note_unmatched(result, args.scores, args.truth, "only_in_scores")
    _note_unmatched(result, args.truth, args.scores, "only_in_truth")
    if result["skipped_top_k"]:
        sys.stderr.write(f"nsas: note: precision@k skipped for k > {result['n']} joined: "
                         f"{' '.join(map(str, result['skipped_top_k']))}\n")


import nsas as _nsas  # noqa: E402

_nsas._make_callable(__name__)  # nsas.correlate(...) calls correlate() above
