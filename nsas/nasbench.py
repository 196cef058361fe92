"""`nsas truth import`: NAS-Bench-201 / NATS-Bench ground truth as the truth CSV of `correlate` and `study`.

    nsas truth import NAS-Bench-201-v1_1-096897.pth --out truth.csv                    # cifar10 test accuracy
    nsas truth import NATS-tss-v1_0-3ffb9-simple/ --dataset cifar100 --out truth100.csv

The benchmarks' files are Python pickles, and unpickling a file can run any
code it names. This module never uses :mod:`pickle`'s default loader: a
restricted unpickler builds only plain containers (dict, list, tuple, set,
``collections.OrderedDict``), strings, bytes and numbers; NumPy scalars
(which NATS-Bench files hold) are decoded from their raw bytes for a short
list of numeric dtypes, and tensors (trained weights some result files may
carry) are replaced by None without reading them; all of this is done by
functions of this module, never by anything the file names. Any other
global (``os.system``, a class of the benchmark's own API) stops the import
with a one-line error before anything is called.

Files it reads:

- NAS-Bench-201 ``NAS-Bench-201-v1_*.pth`` (``torch.save`` of a dict, in the
  legacy stream format or the zip format): ``meta_archs`` (index -> canonical
  string) and ``arch2infos`` (index -> ``{"less": ..., "full": ...}``, the
  12- and 200-epoch training results).
- NATS-Bench topology ``NATS-tss-*-simple/`` folders: ``meta.pickle.pbz2``
  (``meta_archs``) and one ``<index>.pickle.pbz2`` per architecture
  (``{"12": ..., "200": ...}``), bz2-compressed pickles.

Each training result holds ``all_results`` keyed by ``(dataset, seed)``,
whose ``eval_acc1es`` maps ``"<split>@<epoch>"`` to an accuracy (%). The
imported value is the mean over seeds of the last epoch's accuracy on the
split that serves as the test set: ``ori-test`` for cifar10, ``x-test`` for
cifar100 and ImageNet16-120, ``x-valid`` for cifar10-valid.

Every row is checked before the CSV is written: an architecture that is not
a canonical NAS-Bench-201 string (``rm -rf /``, a spreadsheet formula, 42)
refuses the whole file (it is not the benchmark's); an accuracy that is not a
number (``'n/a'``) refuses it too, naming the file and the architecture; an
accuracy that is NaN, infinite or outside [0, 100] drops that architecture,
and the count dropped is printed (a benchmark may lack a result). A bz2 file
is decompressed with its output capped at :data:`MAX_DECOMPRESSED` bytes, so
a small file that would expand to gigabytes is refused with bounded memory;
a compressed ``data.pkl`` in a ``.pth`` zip that declares more than
:data:`MAX_RATIO` times its compressed size is refused before it is read.
``--out`` may not name the source (or a file of its folder).
"""

from __future__ import annotations

import argparse
import bz2
import collections
import csv
import io
import math
import pickle
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from nsas.atomic import check_not_an_input
from nsas.errors import ArchitectureError, NsasError, brief, shorten
from nsas.rundir import write_text_atomic

DATASETS = {"cifar10": "ori-test", "cifar10-valid": "x-valid", "cifar100": "x-test", "ImageNet16-120": "x-test"}
HPS = {"200": "full", "12": "less"}  # NATS-Bench key -> NAS-Bench-201 key of the same training budget
MAX_RATIO = 100  # a compressed zip member may declare at most this many times its compressed size
MAX_DECOMPRESSED = 256 << 20  # a NATS-Bench .pickle.pbz2 holds a few MB; more is refused while decompressing
_DTYPES = {"f8", "f4", "f2", "i8", "i4", "i2", "i1", "u8", "u4", "u2", "u1", "b1"}


class _DType:
    """Stand-in for ``numpy.dtype`` while unpickling: records the type code and byte order only."""

    def __init__(self, code: str, *_: Any) -> None:
        if code not in _DTYPES:
            raise NsasError(f"refusing NumPy dtype {code!r} (only plain numbers are read)")
        self.code, self.order = code, "<"

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        if isinstance(state, tuple) and len(state) > 1 and state[1] in ("<", ">", "|", "="):
            self.order = state[1]


def _scalar(dtype: Any, raw: bytes = b"") -> float | int | bool:
    """A NumPy scalar rebuilt as a Python number from its dtype and raw bytes."""
    if not isinstance(dtype, _DType) or not isinstance(raw, bytes):
        raise NsasError("refusing a NumPy scalar that is not a plain number")
    order = "<" if dtype.order in ("|", "=") and sys.byteorder == "little" else dtype.order
    return np.frombuffer(raw, dtype=np.dtype(order + dtype.code if dtype.code[0] != "b" else "?"))[0].item()


class _Skipped:
    """Stand-in for a tensor storage class named in a torch file; tensors are not read."""


def _skip_tensor(*_: Any) -> None:
    """Stand-in for torch's tensor rebuilders: a tensor becomes None."""
    return None


# (module, name) -> what the unpickler builds in its place; nothing else is allowed.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set, ("builtins", "frozenset"): frozenset,
    ("builtins", "dict"): dict, ("builtins", "list"): list, ("builtins", "tuple"): tuple,
    ("builtins", "int"): int, ("builtins", "float"): float, ("builtins", "complex"): complex,
    ("__builtin__", "set"): set,
    ("numpy", "dtype"): _DType, ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy._core.multiarray", "scalar"): _scalar,
    ("torch._utils", "_rebuild_tensor_v2"): _skip_tensor, ("torch._utils", "_rebuild_tensor"): _skip_tensor,
    ("torch._utils", "_rebuild_parameter"): _skip_tensor,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that builds only plain containers and numbers (see the module docstring)."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name.endswith("Storage"):
            return _Skipped
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise NsasError(f"refusing to load {module}.{name}: the file is not plain data "
                            "(only containers and numbers are read, nothing is executed)") from None

    def persistent_load(self, pid: Any) -> Any:
        return None  # a tensor's storage: not read (its tensor becomes None)


def restricted_loads(data: bytes) -> Any:
    """One pickled object from ``data``, built by :class:`RestrictedUnpickler`."""
    try:
        return RestrictedUnpickler(io.BytesIO(data)).load()
    except NsasError:
        raise
    except Exception as err:  # a truncated or malformed stream: pickle raises many kinds
        raise NsasError(f"not a readable pickle: {type(err).__name__}: {str(err)[:120]}") from None


def load_torch_file(path: Path) -> Any:
    """The object a ``torch.save`` file holds, read with the restricted unpickler (no torch involved).

    Zip format (torch >= 1.6): the object is ``<name>/data.pkl`` in the archive. Legacy format: a
    stream of pickles (magic number, protocol version, system info, then the object).
    """
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            if not names:
                raise NsasError(f"{path} is a zip file without data.pkl: not a torch.save file")
            info = archive.getinfo(names[0])  # zipfile reads no more than the size a member declares
            if info.compress_type != zipfile.ZIP_STORED and info.file_size > max(MAX_RATIO * info.compress_size,
                                                                                   1 << 20):
                raise NsasError(f"{path}: its {names[0]} would expand {info.compress_size:,} bytes to "
                                f"{info.file_size:,}; torch.save stores it uncompressed (refused unread)")
            try:
                return restricted_loads(archive.read(names[0]))
            except (zipfile.BadZipFile, OSError, EOFError) as err:
                raise NsasError(f"{path}: cannot read {names[0]} ({err})") from None
    with open(path, "rb") as stream:
        unpickler = RestrictedUnpickler(stream)
        try:
            magic = unpickler.load()
            if magic != 0x1950A86A20F9469CFC6C:  # torch's legacy magic number: else a plain pickle
                return magic
            unpickler.load()  # protocol version
            unpickler.load()  # system info
            return unpickler.load()
        except NsasError:
            raise
        except Exception as err:
            raise NsasError(f"{path} is not a readable pickle: {type(err).__name__}: {str(err)[:120]}") from None


def load_bz2_pickle(path: Path) -> Any:
    """A NATS-Bench ``.pickle.pbz2`` file (a bz2-compressed pickle), read with the restricted unpickler."""
    return restricted_loads(bz2_bytes(path))


def bz2_bytes(path: Path, limit: int | None = None) -> bytes:
    """The decompressed content of a bz2 file (all its streams), refused once it passes ``limit`` bytes.

    Memory stays within ``limit`` plus one block, however much the file would expand to.
    """
    limit = MAX_DECOMPRESSED if limit is None else limit
    out: list[bytes] = []  # pieces, joined at the end (a growing bytearray would copy itself as it grows)
    size = 0
    try:
        with open(path, "rb") as f:
            decompressor, pending = bz2.BZ2Decompressor(), b""
            while True:
                if decompressor.eof:  # a file may hold several streams back to back
                    pending = decompressor.unused_data + pending
                    if not pending:
                        pending = f.read(1 << 20)
                        if not pending:
                            break
                    decompressor = bz2.BZ2Decompressor()
                if decompressor.needs_input and not pending:
                    pending = f.read(1 << 20)
                    if not pending:
                        raise NsasError(f"cannot read {path} as bz2: the compressed stream ends early")
                out.append(decompressor.decompress(pending, max_length=min(limit + 1 - size, 1 << 22)))
                size += len(out[-1])
                pending = b""
                if size > limit:
                    raise NsasError(f"{path} decompresses to more than {limit:,} bytes; a NATS-Bench file is far "
                                    "smaller (refused before it filled memory)")
    except OSError as err:
        raise NsasError(f"cannot read {path} as bz2: {err.strerror or err}") from None
    except ValueError as err:
        raise NsasError(f"cannot read {path} as bz2: {err}") from None
    return b"".join(out)


def final_accuracy(results: dict[str, Any], dataset: str, split: str | None = None) -> float | None:
    """Mean over seeds of the last epoch's accuracy on ``split`` in one training result (None: absent)."""
    split = split or DATASETS[dataset]
    accs = []
    for (name, _seed), run in sorted(results.get("all_results", {}).items()):
        if name != dataset:
            continue
        epochs = run["epochs"]
        value = run["eval_acc1es"].get(f"{split}@{epochs - 1}")
        if value is not None:
            try:
                accs.append(float(value))
            except (TypeError, ValueError, OverflowError):
                raise NsasError(f"accuracy {brief(value, 40)} ({name}, seed {brief(_seed, 20)}, "
                                f"{split}@{epochs - 1}) is not a number") from None
    return sum(accs) / len(accs) if accs else None


def _rows_from(meta_archs: list[str], infos: Any, dataset: str, split: str | None, epochs: str) -> list[tuple[str, float]]:
    """(arch, accuracy) for every architecture with a result; ``infos`` yields (index, {budget: result})."""
    rows = []
    for index, by_budget in infos:
        result = by_budget.get(epochs) or by_budget.get(HPS.get(epochs, epochs))
        if not isinstance(result, dict):
            continue
        try:
            acc = final_accuracy(result, dataset, split)
        except NsasError as err:
            raise NsasError(f"architecture {brief(index, 20)}: {err}") from None
        if acc is not None:
            rows.append((meta_archs[index], acc))
    return rows


def checked_rows(rows: list[tuple[Any, float]], source: Path) -> tuple[list[tuple[str, float]], dict[str, int]]:
    """The rows whose architecture is a canonical NAS-Bench-201 string and whose accuracy is in [0, 100].

    Returns:
        The rows kept, and how many were dropped for each reason (``{"not finite": n, "outside [0, 100]": m}``).

    Raises:
        NsasError: an architecture that is not a canonical nb201 string (the file is not the benchmark's).
    """
    from nsas.spaces import get_space

    space = get_space("nb201")
    bad: list[Any] = []
    for arch, _ in rows:
        try:
            ok = isinstance(arch, str) and len(arch) < 1000 and str(space.parse(arch)) == arch
        except ArchitectureError:
            ok = False
        if not ok:
            bad.append(arch)
    if bad:
        raise NsasError(f"{source}: {len(bad):,} of its {len(rows):,} architectures are not canonical NAS-Bench-201 "
                        f"strings (first: {brief(bad[0], 60)}); refusing the file")
    kept, dropped = [], {"NaN or infinite": 0, "outside [0, 100]": 0}
    for arch, acc in rows:
        if not math.isfinite(acc):
            dropped["NaN or infinite"] += 1
        elif not 0 <= acc <= 100:
            dropped["outside [0, 100]"] += 1
        else:
            kept.append((arch, acc))
    return kept, {k: v for k, v in dropped.items() if v}


def import_truth(source: str | Path, *, dataset: str = "cifar10", split: str | None = None,
                 epochs: str = "200") -> list[tuple[str, float]]:
    """(architecture, accuracy %) pairs from a NAS-Bench-201 ``.pth`` file or a NATS-Bench ``-simple`` folder.

    Args:
        source: the benchmark file or folder.
        dataset: cifar10, cifar10-valid, cifar100 or ImageNet16-120.
        split: the evaluation split (default: the test split of ``dataset``, see :data:`DATASETS`).
        epochs: the training budget, "200" or "12".
    """
    source = Path(source)
    if dataset not in DATASETS:
        raise NsasError(f"unknown benchmark data set {dataset!r}; choose one of {', '.join(DATASETS)}")
    if source.is_dir():
        meta_file = source / "meta.pickle.pbz2"
        if not meta_file.is_file():
            raise NsasError(f"{source} has no meta.pickle.pbz2: not a NATS-Bench '-simple' folder")
        meta_archs = load_bz2_pickle(meta_file)["meta_archs"]
        files = sorted(p for p in source.glob("*.pickle.pbz2") if p.name.split(".")[0].isdigit())
        infos = ((int(p.name.split(".")[0]), load_bz2_pickle(p)) for p in files)
    elif source.is_file():
        data = load_torch_file(source)
        if not isinstance(data, dict) or not {"meta_archs", "arch2infos"} <= set(data):
            raise NsasError(f"{source} does not hold NAS-Bench-201's meta_archs and arch2infos")
        meta_archs, infos = data["meta_archs"], sorted(data["arch2infos"].items())
    else:
        raise NsasError(f"{source} does not exist")
    try:
        rows = _rows_from(meta_archs, infos, dataset, split, str(epochs))
    except (KeyError, TypeError, AttributeError, IndexError) as err:
        raise NsasError(f"{source}: unexpected result layout ({type(err).__name__}: {shorten(str(err), 120)})") from None
    except NsasError as err:
        raise NsasError(f"{source}: {err}") from None
    if not rows:
        raise NsasError(f"{source} holds no {epochs}-epoch results on {dataset}")
    return rows


def write_truth_csv(path: str | Path, rows: list[tuple[str, float]], key: str = "test_acc") -> None:
    """The truth table `nsas correlate` and `nsas study` read: ``arch,<key>``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["arch", key])
    writer.writerows((arch, f"{acc:.4f}") for arch, acc in rows)
    write_text_atomic(Path(path), out.getvalue())


# ---- command line ----------------------------------------------------------
def configure(parser: argparse.ArgumentParser) -> None:
    """`nsas truth import`."""
    sub = parser.add_subparsers(dest="truth_command", metavar="ACTION", required=True)
    imp = sub.add_parser("import", help="convert NAS-Bench-201/NATS-Bench results into a truth CSV",
                         description="Read a NAS-Bench-201 .pth file or a NATS-Bench topology '-simple' folder "
                                     "without running pickled code, and write arch,test_acc rows (the mean "
                                     "over seeds of the last epoch's test accuracy, in percent).")
    imp.add_argument("source", metavar="SOURCE", help="NAS-Bench-201-v1_*.pth, or a NATS-tss-*-simple folder")
    imp.add_argument("--dataset", choices=tuple(DATASETS), default="cifar10", help="benchmark data set (default: cifar10)")
    imp.add_argument("--split", default=None,
                     help="evaluation split, e.g. x-valid (default: ori-test for cifar10, x-test for cifar100 and "
                          "ImageNet16-120, x-valid for cifar10-valid)")
    imp.add_argument("--epochs", choices=("200", "12"), default="200", help="training budget (default: 200)")
    imp.add_argument("--out", metavar="FILE.csv", required=True, help="the truth CSV to write")


def run(args: argparse.Namespace) -> int:
    """`nsas truth import`."""
    source = Path(args.source)
    inputs = [source, *(source.glob("*.pickle.pbz2") if source.is_dir() else ())]
    try:
        check_not_an_input(args.out, inputs)
    except OSError as err:
        raise NsasError(f"--out {args.out}: {err.strerror}") from None
    rows, dropped = checked_rows(import_truth(source, dataset=args.dataset, split=args.split, epochs=args.epochs),
                                 source)
    if dropped:
        reasons = ", ".join(f"{n:,} {why}" for why, n in dropped.items())
        sys.stderr.write(f"nsas: warning: dropped {sum(dropped.values()):,} of {len(rows) + sum(dropped.values()):,} "
                         f"architectures of {source} whose accuracy is not a percentage ({reasons})\n")
    if not rows:
        raise NsasError(f"{source}: no architecture has a usable accuracy")
    write_truth_csv(args.out, rows)
    print(f"{len(rows)} architectures ({args.dataset}, {args.epochs} epochs) -> {args.out}")
    return 0
