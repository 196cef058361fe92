"""Architecture files and truth tables: the true value of each architecture, and samples drawn from them.

:func:`read_arch_file` reads the architectures a file lists (one per line, or
the ``arch`` column of a table).

A truth table is any table :func:`nsas.tables.read_table` reads (CSV, JSON
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

import csv
import random
from collections.abc import Mapping, Sequence
from pathlib import Path

from nsas.tables import canonical_rows, metric_column, read_table, read_text
from nsas.errors import ArchitectureError, NsasError
from nsas.spaces.base import Architecture, SearchSpace

__all__ = ["metric_column", "read_arch_file", "read_truth", "stratified_sample"]


def read_arch_file(path: str | Path, space: SearchSpace) -> tuple[list[Architecture], int]:
    """Architectures listed in a file, parsed in ``space``; repeats dropped.

    A plain list holds one architecture per line (blank lines and ``#``
    comments ignored). A ``.csv``, ``.json`` or ``.jsonl`` file, or one whose
    first line is a CSV header with an ``arch`` column or starts JSON, is a
    table read by :func:`nsas.tables.read_table` (its ``arch`` column; the
    other columns are ignored; as there, a table may not repeat a row's exact
    ``arch`` text).

    Returns:
        The architectures in file order, each once (the first spelling of an
        architecture written twice, in any form, is kept), and how many
        entries were dropped as repeats.

    Raises:
        NsasError: unreadable file, no architectures, or an entry the space
            cannot parse (naming the file and line).
    """
    path = Path(path)
    text = read_text(path, "architecture file")
    entries = _table_entries(path) if _is_table(path, text) else _list_entries(text)
    if not entries:
        raise NsasError(f"{path}: no architectures (blank lines and '#' comments only)")
    archs: dict[Architecture, None] = {}
    for line, raw in entries:
        try:
            archs.setdefault(space.parse(raw), None)
        except ArchitectureError as err:
            raise ArchitectureError(f"{path} line {line}: not a {space.name} architecture: {err}") from None
    return list(archs), len(entries) - len(archs)


def _list_entries(text: str) -> list[tuple[int, str]]:
    """``(line number, text)`` of every non-blank, non-comment line."""
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()  # no architecture string contains '#'
        if line:
            entries.append((number, line))
    return entries


def _is_table(path: Path, text: str) -> bool:
    if path.suffix.lower() in (".csv", ".json", ".jsonl"):
        return True
    first = next((line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")), "")
    cells = next(csv.reader([first]), None) or []
    return first[:1] in ("[", "{") or "arch" in (cell.strip() for cell in cells)


def _table_entries(path: Path) -> list[tuple[int, str]]:
    table = read_table(path, keys=[])
    lines: dict[str, int] = getattr(table, "lines", {})
    return [(lines.get(raw, 0), raw) for raw in table]


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
    _, rows = canonical_rows(read_table(path, keys=[column]), space, str(path))
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
