"""The one way nsas writes a file: all of it, or not at all.

:func:`atomic_write` opens a temporary file in the target's directory (a
unique name, so concurrent writers never share one), hands it to the caller,
then flushes and fsyncs it, renames it over the target and fsyncs the
directory. If anything fails on the way (an exception, a full disk), the
temporary file is removed and the previous target is untouched; if the
process is killed (even ``kill -9``), the target is either the old file or the
new one, never a torn mix, and at most a ``.NAME.PID.*.tmp`` file is left over
(removed on the next start: :func:`remove_stale_temporaries`, and
:func:`nsas.rundir.run_directory` in a locked run directory).
The file gets the permissions of any file the user creates (``0666`` less the
umask, usually ``0644``), not the ``0600`` of :func:`tempfile.mkstemp`.

Append-only logs (``metrics.jsonl``, ``log.txt``) are the exception: they are
appended line by line, and a half-written last line is dropped when read.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any


TEMP_PATTERN = re.compile(r"^\..+\.(?:\d+\.)?[A-Za-z0-9_]{8}\.tmp(?:dir)?$")
"""Names of the temporaries of :func:`atomic_write` (``.NAME.PID.XXXXXXXX.tmp``; older nsas wrote no PID) and
:func:`atomic_output` (``.NAME.PID.XXXXXXXX.tmpdir``)."""


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.{os.getpid()}."


def _umask() -> int:
    """The process umask (read without a window where it is changed, where Linux allows)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb", **open_kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file that replaces ``path`` when the ``with`` block ends without error.

    Args:
        path: the file to (re)place; its directory must exist.
        mode: ``"wb"`` or ``"w"``.
        **open_kwargs: passed to :func:`open` (``encoding``, ``newline``).

    Yields:
        The open temporary file.

    Raises:
        OSError: naming ``path`` (a full disk reports no file name of its own).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.filename is None:
            raise OSError(err.errno, err.strerror or str(err), str(path)) from err
        raise
    fsync_dir(path.parent)


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """For writers that need a file name (``torch.onnx.export``, ``ScriptModule.save``): a fresh folder beside
    ``path`` to write ``path.name`` (and any sidecar files it names after itself, ``NAME.data``) into; when the
    block ends without error each file is fsynced and renamed into ``path``'s folder, ``path`` itself last, so a
    reader never finds the main file without its sidecars. On error the folder is removed and ``path`` untouched.

    Yields:
        The file to write (``<temporary folder>/<path.name>``).
    """
    path = Path(path)
    tmp_dir = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), suffix=".tmpdir", dir=path.parent))
    try:
        target = tmp_dir / path.name
        yield target
        if not target.is_file():
            raise OSError(errno.ENOENT, "the writer produced no file", str(path))
        names = sorted((p.name for p in tmp_dir.iterdir() if p.name != path.name), key=str) + [path.name]
        for name in names:
            fd = os.open(tmp_dir / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.chmod(tmp_dir / name, 0o666 & ~_umask())
        for name in names:
            os.replace(tmp_dir / name, path.parent / name)
    except OSError as err:
        if err.filename is None:
            raise OSError(err.errno, err.strerror or str(err), str(path)) from err
        raise
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    fsync_dir(path.parent)


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Delete what a killed :func:`atomic_write` or :func:`atomic_output` of ``path`` left beside it.

    Only temporaries whose writer (the PID in the name) no longer runs on this
    host are removed, so a concurrent writer of the same file keeps its own.
    """
    path = Path(path)
    prefix = f".{path.name}."
    removed = []
    try:
        candidates = [p for p in path.parent.iterdir() if p.name.startswith(prefix)]
    except OSError:
        return removed
    for tmp in candidates:
        rest = tmp.name[len(prefix):].split(".")
        if len(rest) != 3 or not rest[0].isdigit() or rest[2] not in ("tmp", "tmpdir") or _alive(int(rest[0])):
            continue
        with contextlib.suppress(OSError):
            if tmp.is_dir():
                shutil.rmtree(tmp)
            else:
                tmp.unlink()
            removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def write_text_atomic(path: str | Path, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8) through :func:`atomic_write`."""
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write(text)


def check_writable(path: str | Path) -> None:
    """Fail now, not after hours of work, if :func:`atomic_write` could not (re)place ``path``.

    Raises:
        OSError: ``path`` is a directory, its folder is missing, or nothing can be created there.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file name", str(path))
    if not path.parent.is_dir():
        raise FileNotFoundError(errno.ENOENT, "folder does not exist", str(path.parent))
    with tempfile.TemporaryFile(dir=path.parent):
        pass


def check_not_an_input(out: str | Path, inputs: Iterable[str | Path | None], *, flag: str = "--out") -> None:
    """Refuse to write ``out`` when it is one of the files a command reads (``nsas truth import X --out X``,
    ``nsas rank RUN --out RUN/checkpoint.pt``): the atomic rename would replace the input with the output.

    Raises:
        OSError: (EEXIST) naming ``out`` and the input it is.
    """
    out = Path(out)
    target = os.path.realpath(out)
    for given in inputs:
        if given is None:
            continue
        given = Path(given)
        try:
            same = os.path.realpath(given) == target or (out.exists() and given.exists() and os.path.samefile(out, given))
        except OSError:
            same = False
        if same:
            raise OSError(errno.EEXIST, f"{flag} names an input of this command ({given}); writing it would "
                                        "replace it: choose another file", str(out))


def fsync_dir(directory: str | Path) -> None:
    """Make a rename in ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
