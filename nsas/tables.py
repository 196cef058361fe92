"""Tables of architectures and numbers (CSV, JSON, JSONL): read them, refusing what is ambiguous or absurd.

A table is a CSV file whose header has an ``arch`` column plus numeric
columns, or JSON (a list of objects with ``"arch"`` and numeric keys), or JSONL
(one such object per line). :func:`read_table` reads one for ``nsas
correlate``, ``nsas rank --archs/--fit-on``, truth tables and plots.

What a hostile or broken file cannot do here:

- be ambiguous: a CSV header that names a column twice (``arch,acc,acc``, also
  ``acc`` and `` acc``, which are the same after stripping), and a JSON object
  that gives a key twice (``{"acc": 1, "acc": 2}``, anywhere in the file) are
  refused naming the duplicate (Python's ``csv`` and ``json`` keep one silently);
- nest without bound: JSON nested deeper than Python's decoder can go
  (about a thousand levels) is refused in one line, not a ``RecursionError``;
- be endless: a file (or a pipe, ``/dev/zero``) is read up to
  :data:`MAX_TABLE_BYTES` and refused past it, with memory bounded by that;
- hide huge numbers: an integer of more digits than Python converts, a field
  over the CSV field limit, NaN, all refused in one line naming file and line.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nsas.errors import ArchitectureError, NsasError, brief, shorten

ARCH = "arch"
MAX_TABLE_BYTES = 512 << 20  # 512 MiB: NAS-Bench-201's 15,625 rows are about 1.5 MB


class Table(dict[str, dict[str, float]]):
    """Rows keyed by the raw ``arch`` text; remembers where each row came from.

    Attributes:
        source: the file name (used in error messages).
        lines: raw arch text -> line number of its row in the file.
    """

    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source
        self.lines: dict[str, int] = {}

    def add(self, arch: Any, values: dict[str, float], line: int) -> None:
        """Add one row; reject a missing, non-string or repeated arch."""
        if not isinstance(arch, str) or not arch.strip():
            raise NsasError(f"{self.source} line {line}: {ARCH!r} must be a non-empty architecture string, "
                            f"got {brief(arch, 60)}")
        if arch in self:
            raise NsasError(f"{self.source} line {line}: architecture {brief(arch.strip(), 200)} already appears "
                            f"on line {self.lines[arch]}")
        self[arch] = values
        self.lines[arch] = line


def read_text(path: str | Path, what: str = "", limit: int | None = None) -> str:
    """The UTF-8 text of ``path`` (a leading BOM dropped), read up to ``limit`` bytes (:data:`MAX_TABLE_BYTES`).

    Raises:
        NsasError: unreadable, not UTF-8, or longer than the limit (read no further than that).
    """
    path = Path(path)
    limit = MAX_TABLE_BYTES if limit is None else limit
    name = f"{what} {path}".strip()
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as err:
        raise NsasError(f"cannot read {name}: {err.strerror or err}") from None
    if len(data) > limit:
        raise NsasError(f"{name} is larger than {limit:,} bytes; a table of architectures is far smaller "
                        "(is it the right file?)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise NsasError(f"cannot read {name}: not UTF-8 text (byte {err.start})") from None


def number(text: Any, source: str, line: int, column: str) -> float:
    """``text`` as a float, or an NsasError naming file, line and column.

    NaN is refused; an infinity is kept (a zero-cost proxy gives ``-inf`` to a cell whose output ignores its
    input: the worst score, which ranks like any other value).
    """
    if isinstance(text, bool):
        value = math.nan
    else:
        try:
            value = float(text)
        except (TypeError, ValueError, OverflowError):  # OverflowError: an int of 400 digits
            value = math.nan
    if math.isnan(value):
        shown = brief(text, 40)
        raise NsasError(f"{source} line {line}: column {column!r} has {shown}, not a number")
    return value


def _pick(header: Sequence[str], keys: Sequence[str] | None, source: str) -> list[str]:
    """The value columns to read: ``keys`` (each must exist) or every non-arch column."""
    available = [h for h in header if h != ARCH]
    if keys is None:
        return available
    for key in keys:
        if key not in available:
            shown = ", ".join(repr(a) if not a.strip() else a for a in available) or "(none)"
            raise NsasError(f"{source} line 1: no column {shorten(repr(key), 80)}; available: {shorten(shown, 300)}")
    return list(dict.fromkeys(keys))


def _read_csv(text: str, source: str, keys: Sequence[str] | None) -> Table:
    reader = csv.reader(text.splitlines())
    header = [h.strip() for h in next(reader, [])]
    if ARCH not in header:
        raise NsasError(f"{source} line 1: the header has no {ARCH!r} column "
                        f"(found: {shorten(', '.join(header), 200) or 'nothing'})")
    seen: set[str] = set()
    for name in header:
        if name in seen:
            what = f"column {brief(name, 60)}" if name else "an empty column name"
            raise NsasError(f"{source} line 1: the header gives {what} twice; which one is meant is ambiguous "
                            "(rename or remove one)")
        seen.add(name)
    columns = _pick(header, keys, source)
    where = {name: header.index(name) for name in [ARCH, *columns]}
    table = Table(source)
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue  # blank line
        if len(row) != len(header):
            raise NsasError(f"{source} line {line}: {len(row)} fields, but the header has {len(header)}")
        values = {c: number(row[where[c]], source, line, c) for c in columns}
        table.add(row[where[ARCH]], values, line)
    return table


class _DuplicateKey(Exception):
    pass


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` of the JSON decoder: a dict, refusing a key given twice."""
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise _DuplicateKey(key)
        obj[key] = value
    return obj


_DECODER = json.JSONDecoder(object_pairs_hook=_unique_object)


def _decode(text: str, pos: int, source: str, line: int) -> tuple[Any, int]:
    """One JSON value of ``text`` at ``pos`` and where it ends; every failure one line naming ``line``."""
    try:
        return _DECODER.raw_decode(text, pos)
    except _DuplicateKey as err:
        raise NsasError(f"{source} line {line}: an object gives the key {brief(str(err.args[0]), 60)} twice; "
                        "which value is meant is ambiguous (remove one)") from None
    except json.JSONDecodeError as err:
        raise NsasError(f"{source} line {line}: not valid JSON ({err.msg})") from None
    except RecursionError:  # Python's decoder recurses once per level
        raise NsasError(f"{source} line {line}: JSON nested too deeply (thousands of levels); a table is a list "
                        "of flat objects") from None
    except ValueError as err:  # an integer of more digits than Python converts
        raise NsasError(f"{source} line {line}: {str(err).split(';')[0][:120]}") from None


def _json_items(text: str, source: str) -> list[tuple[int, Any]]:
    """``(line, object)`` pairs of a JSON array, or of JSONL (one value per line)."""
    start = len(text) - len(text.lstrip())
    if not text.startswith("[", start):
        items = []
        for number_, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    value, end = _decode(line, len(line) - len(line.lstrip()), source, number_)
                except NsasError as err:
                    if "not valid JSON" in str(err):
                        raise NsasError(f"{err}; expected a JSON list of objects or one object per line") from None
                    raise
                if line[end:].strip():
                    raise NsasError(f"{source} line {number_}: not valid JSON (extra data after the value); "
                                    "expected a JSON list of objects or one object per line")
                items.append((number_, value))
        return items
    items, pos = [], start + 1
    line, counted = 1, 0  # the line of `pos`, counted incrementally (linear in the file's size)

    def line_at(p: int) -> int:
        nonlocal line, counted
        line += text.count("\n", counted, p)
        counted = p
        return line

    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if text.startswith("]", pos) and not items:
            return items
        try:
            value, end = _DECODER.raw_decode(text, pos)
        except json.JSONDecodeError as err:
            raise NsasError(f"{source} line {err.lineno}: not valid JSON ({err.msg})") from None
        except (_DuplicateKey, RecursionError, ValueError):
            _decode(text, pos, source, line_at(pos))  # raises the one-line error
            raise
        items.append((line_at(pos), value))
        pos = end
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if text.startswith("]", pos):
            return items
        if not text.startswith(",", pos):
            raise NsasError(f"{source} line {line_at(pos)}: not valid JSON (expected ',' or ']' after a list item)")
        pos += 1


def _read_json(text: str, source: str, keys: Sequence[str] | None) -> Table:
    table = Table(source)
    for line, obj in _json_items(text, source):
        if not isinstance(obj, dict):
            raise NsasError(f"{source} line {line}: expected an object with {ARCH!r}, got {type(obj).__name__}")
        if ARCH not in obj:
            raise NsasError(f"{source} line {line}: object has no {ARCH!r} key "
                            f"(found: {shorten(', '.join(obj), 200) or 'nothing'})")
        header = list(obj)
        if keys is not None and any(k not in obj for k in keys):
            missing = next(k for k in keys if k not in obj)
            available = ", ".join(h for h in header if h != ARCH) or "(none)"
            raise NsasError(f"{source} line {line}: no key {shorten(repr(missing), 80)}; available: {shorten(available, 200)}")
        columns = [h for h in header if h != ARCH] if keys is None else list(dict.fromkeys(keys))
        table.add(obj[ARCH], {c: number(obj[c], source, line, c) for c in columns}, line)
    return table


def read_table(path: str | Path, keys: Sequence[str] | None = None) -> Table:
    """Read a CSV, JSON or JSONL table of architectures and numbers.

    The format follows the suffix (``.csv``, ``.json``, ``.jsonl``); any other
    suffix is sniffed (``[`` or ``{`` first means JSON/JSONL, else CSV).

    Args:
        path: the file.
        keys: the value columns to read (each must exist; others are
            ignored). ``None`` reads every column, all of which must be numeric.

    Returns:
        A :class:`Table` (a dict): raw arch text -> {column: value}.

    Raises:
        NsasError: unreadable or oversized file, no ``arch`` column, a column
            or key given twice, JSON nested too deeply, unknown key,
            non-numeric value or repeated arch, naming the file and line.
    """
    path = Path(path)
    text = read_text(path)
    suffix = path.suffix.lower()
    is_json = suffix in (".json", ".jsonl") or (suffix != ".csv" and text.lstrip()[:1] in ("[", "{"))
    try:
        table = (_read_json if is_json else _read_csv)(text, str(path), keys)
    except csv.Error as err:  # e.g. a field over csv.field_size_limit() (128 KiB)
        raise NsasError(f"{path}: not a readable CSV table ({err})") from None
    if not table:
        raise NsasError(f"{path}: no rows")
    return table


def header_columns(path: str | Path) -> list[str]:
    """The value columns of a table file (its header's for CSV, its first row's for JSON)."""
    path = Path(path)
    text = read_text(path)
    if path.suffix.lower() == ".csv" or text.lstrip()[:1] not in ("[", "{"):
        return [h.strip() for h in next(csv.reader(text.splitlines()[:1]), []) if h.strip() != ARCH]
    items = _json_items(text, str(path))
    first = items[0][1] if items else {}
    return [k for k in first if k != ARCH] if isinstance(first, dict) else []


def metric_column(path: str | Path, key: str | None = None, *, preferred: str = "acc") -> str:
    """The value column of the table at ``path``: ``key`` (it must exist), else ``preferred``, else the only one."""
    if key is not None:
        read_table(path, keys=[key])  # raises, naming the file, if the column is missing
        return key
    table = read_table(path, keys=None)
    columns = list(next(iter(table.values())))
    if preferred in columns:
        return preferred
    if len(columns) == 1:
        return columns[0]
    raise NsasError(f"{path}: several value columns ({', '.join(columns)}); name the truth column (--truth-key)")


def canonical_rows(table: Mapping[str, dict[str, float]], space: str | None, default: str) -> tuple[str, dict[str, dict[str, float]]]:
    """Re-key ``table`` by canonical architecture strings; reject unparseable and repeated archs.

    Returns:
        ``(source name, {canonical arch: row})`` in the table's order.
    """
    from nsas.spaces import parse_arch  # imports torch: only when needed

    source = getattr(table, "source", default)
    lines: dict[str, int] = getattr(table, "lines", {})
    out: dict[str, dict[str, float]] = {}
    first: dict[str, str] = {}
    for raw, row in table.items():
        where = f"{source} line {lines[raw]}" if raw in lines else source
        try:
            canon = str(parse_arch(raw.strip(), space))
        except ArchitectureError as err:
            raise NsasError(f"{where}: {err}") from None
        if canon in out:
            seen = f"line {lines[first[canon]]}" if first[canon] in lines else repr(first[canon].strip())
            raise NsasError(f"{where}: architecture {canon} appears twice in {source} (also {seen})")
        out[canon], first[canon] = row, raw
    return source, out
