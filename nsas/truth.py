"""Truth tables: the true value of each architecture, and samples drawn from them.

A truth table is any table :func:`nsas.correlate.read_table` reads (CSV, JSON
or JSONL; an ``arch`` column and numbers): NAS-Bench-201's published test
accuracies (``arch,test_acc``), the ``truth.csv`` of a study, scores of
another run. Its metric is the column the caller names; without one, the
preferred column (``acc``) when the table has it, else its only column.

:func:`stratified_sample` draws a seeded sample that covers the whole range
of the metric: the architectures sorted by value are cut into ``count``
strata of (nearly) equal size and one is drawn from each, so a sample of 100
holds one of each percentile.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from pathlib import Path

from nsas.correlate import _canonical, metric_column, read_table
from nsas.errors import NsasError

__all__ = ["metric_column", "read_truth", "stratified_sample"]


def read_truth(path: str | Path, key: str | None = None, *, space: str | None = None,
               preferred: str = "acc") -> tuple[str, dict[str, float]]:
    """The metric column of a truth table and its values by canonical architecture string.

    Args:
        path: the table.
        key: its value column (``None``: see :func:`metric_column`).
        space: the search space of the architectures (``None``: detected per string).
        preferred: the column chosen when present and ``key`` is ``None``.

    Returns:
        ``(column, {canonical arch: value})``, in file order.

    Raises:
        NsasError: unreadable table, unknown column, an architecture that
            does not parse or appears twice.
    """
    column = metric_column(path, key, preferred=preferred)
    _, rows = _canonical(read_table(path, keys=[column]), space, str(path))
    return column, {arch: row[column] for arch, row in rows.items()}


def stratified_sample(values: Mapping[str, float], count: int, *, seed: int | str = 0,
                      exclude: Sequence[str] = ()) -> list[str]:
    """``count`` architectures of ``values``, one from each of ``count`` equal-size strata of the sorted values.

    Args:
        values: architecture -> value.
        count: sample size; all architectures (sorted by value) when it is at least their number.
        seed: seeds the draw inside each stratum.
        exclude: architectures never drawn.

    Returns:
        The sample, from the lowest value to the highest.
    """
    if count < 1:
        raise NsasError(f"a sample needs at least 1 architecture, got {count}")
    skip = set(exclude)
    ordered = sorted((a for a in values if a not in skip), key=lambda a: (values[a], a))
    if count >= len(ordered):
        return ordered
    rng = random.Random(f"stratified-{seed}")
    bounds = [len(ordered) * i // count for i in range(count + 1)]
    return [ordered[rng.randrange(lo, hi)] for lo, hi in zip(bounds, bounds[1:])]
