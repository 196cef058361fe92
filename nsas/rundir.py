"""Run directories: resolved config, log file, metrics.jsonl, JSON outputs.

Layout of a run directory (search and train alike)::

    config.yaml      the resolved config (defaults < YAML < flags)
    log.txt          everything the run printed, with timestamps
    metrics.jsonl    one JSON object per line, each with a "kind" and "step"
    checkpoint.pt    the latest checkpoint
    *.json           results (selected architectures, archive, ...)

Every file but the two logs is written whole or not at all (nsas/atomic.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import filelock
from tqdm import tqdm

from nsas import distributed
from nsas.atomic import TEMP_PATTERN, write_text_atomic
from nsas.errors import NsasError

LOGGER_NAME = "nsas"


def default_run_dir(prefix: str) -> Path:
    """``runs/<prefix>-<YYYYmmdd-HHMMSS>`` under the current directory."""
    return Path("runs") / f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}"


def progress_bar(total: int, initial: int, *, enabled: bool) -> tqdm:
    """The step progress bar of search and train (redrawn rarely when stderr is a log file, not a terminal)."""
    return tqdm(total=total, initial=initial, disable=not enabled, unit="step", dynamic_ncols=True, leave=False,
                mininterval=0.5 if sys.stderr.isatty() else 30.0)


class _TqdmHandler(logging.Handler):
    """Console handler that does not break progress bars: information (below WARNING) to stdout, so that
    ``nsas search > log`` keeps the per-epoch lines; warnings and errors to stderr (the bars stay there too)."""

    def emit(self, record: logging.LogRecord) -> None:
        stream = sys.stderr if record.levelno >= logging.WARNING else sys.stdout  # looked up now: redirections
        tqdm.write(self.format(record), file=stream)


class _LogFile(logging.FileHandler):
    """``log.txt``: a failed write (a full disk) stops the run with an error naming the file.

    (The standard handler prints a traceback to stderr and carries on without its log.)
    """

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        err = sys.exc_info()[1]
        if isinstance(err, OSError):
            raise OSError(err.errno, err.strerror, self.baseFilename) from err
        super().handleError(record)


def setup_logging(run_dir: Path | None, *, quiet: bool = False) -> logging.Logger:
    """The ``nsas`` logger writing to ``run_dir/log.txt`` and to the console."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        try:
            handler.close()
        except OSError:  # the previous run's log could not be flushed (a full disk): it already said so
            pass
    if not quiet:
        console = _TqdmHandler()
        console.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(console)
    if run_dir is not None:
        file_handler = _LogFile(run_dir / "log.txt")
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        logger.addHandler(file_handler)
    return logger


class MetricsWriter:
    """Appends JSON records to ``metrics.jsonl``; on resume drops records past the checkpoint."""

    def __init__(self, path: Path, *, resume_step: int | None = None, enabled: bool = True) -> None:
        self.path, self.enabled = path, enabled  # disabled on data-parallel ranks other than 0
        if not enabled:
            return
        if resume_step is not None and path.exists():
            keep = [r for r in _parse_records(path) if r.get("step", 0) <= resume_step]
            write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in keep))
        elif resume_step is None:
            write_text_atomic(path, "")

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        try:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as err:  # a full disk reports no file name: name it for the one-line error
            raise OSError(err.errno, err.strerror, str(self.path)) from err


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """All records of a run's metrics.jsonl."""
    path = Path(run_dir) / "metrics.jsonl"
    return _parse_records(path) if path.exists() else []


def _parse_records(path: Path) -> list[dict[str, Any]]:
    """JSON objects, one a line, of ``path``; a half-written last line (a run killed mid-write) is dropped.

    Raises:
        NsasError: a line that is not JSON (but the last), or JSON that is not an object.
    """
    try:
        lines = [line for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    except OSError as err:
        raise NsasError(f"cannot read {path}: {err.strerror}") from None
    records = []
    for i, line in enumerate(lines):
        try:
            record = json.loads(line)
        except ValueError:
            if i == len(lines) - 1:  # a run killed while appending leaves a half-written last line
                break
            raise NsasError(f"{path} line {i + 1}: not valid JSON") from None
        if not isinstance(record, dict):
            raise NsasError(f"{path} line {i + 1}: a metrics record must be a JSON object, got {line.strip()[:40]}")
        records.append(record)
    return records


def write_json(path: str | Path, data: Any) -> None:
    """Write JSON atomically (indented, for people to read)."""
    write_text_atomic(Path(path), json.dumps(data, indent=2) + "\n")




# ---- one writer per run directory --------------------------------------------------------------
LOCK_NAME = ".nsas-run.lock"  # held (flock) for the whole life of a run; the kernel frees it when the process dies
HOLDER_NAME = ".nsas-run.json"  # who holds it: pid, host, start time, command (removed when the run ends)
RESULT_FILES = ("checkpoint.pt", "selected.json", "archive.json", "summary.json", "result.json", "scores.csv",
                "metrics.jsonl")
"""Files that make a folder hold a run's results (``metrics.jsonl`` only when it holds a record)."""


def run_results(run_dir: str | Path) -> list[str]:
    """The names of :data:`RESULT_FILES` that ``run_dir`` holds (an empty ``metrics.jsonl`` does not count)."""
    run_dir = Path(run_dir)
    found = []
    for name in RESULT_FILES:
        path = run_dir / name
        try:
            if path.is_file() and (name != "metrics.jsonl" or path.stat().st_size > 0):
                found.append(name)
        except OSError:
            continue
    return found


def resume_dir(out: str | None, force: bool = False) -> Path:
    """``--resume``'s run directory: ``--out``, checked to hold a run to continue (:func:`check_new_run`)."""
    if not out:
        raise NsasError("--resume needs --out RUN_DIR (the run to continue)")
    check_new_run(out, resume=True, force=force)
    return Path(out)


def check_new_run(run_dir: str | Path, *, resume: bool = False, force: bool = False) -> None:
    """Refuse a run that would overwrite another's results, or a resume with nothing to resume.

    A fresh run (``resume`` false) needs a folder without results (:func:`run_results`)
    unless ``force``; a resume needs a ``checkpoint.pt``. What the folder holds decides,
    not the checkpoint alone: a finished run whose checkpoint was deleted is still refused.

    Raises:
        NsasError: naming the folder, what it holds and the flag that would proceed.
    """
    run_dir = Path(run_dir)
    if resume and force:
        raise NsasError("--force starts a run over and --resume continues it: give one of them")
    if resume:
        if not (run_dir / "checkpoint.pt").is_file():
            held = run_results(run_dir)
            raise NsasError(f"{_quote(run_dir)} holds no checkpoint.pt to resume from"
                            + (f" (it holds {', '.join(held)}; --force starts over, deleting them)" if held else ""))
        return
    held = run_results(run_dir)
    if held and not force:
        if "checkpoint.pt" in held:
            raise NsasError(f"{_quote(run_dir)} already holds a run ({', '.join(held)}); pass --resume to continue it, "
                            "--force to start over (deleting its results) or choose another --out")
        raise NsasError(f"{_quote(run_dir)} holds an earlier run's results ({', '.join(held)}); pass --force to "
                        "replace them or choose another --out")


def _quote(path: Path, limit: int = 200) -> str:
    text = str(path)
    return text if len(text) <= limit else text[: limit // 2] + "..." + text[-limit // 2:]


def _host() -> str:
    return socket.gethostname()


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (a process of another user counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def read_holder(run_dir: str | Path) -> dict[str, Any] | None:
    """The holder record of ``run_dir``'s lock (None if there is none or it is unreadable)."""
    try:
        holder = json.loads((Path(run_dir) / HOLDER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def _describe(holder: dict[str, Any] | None) -> str:
    if holder is None:
        return "holder unknown"
    return (f"pid {str(holder.get('pid'))[:20]} on {str(holder.get('host'))[:80]}, "
            f"started {str(holder.get('started'))[:40]}")


def _stale(holder: dict[str, Any] | None) -> bool:
    """A holder record of a process of this host that no longer runs."""
    if holder is None or holder.get("host") != _host():
        return False
    try:
        return not pid_alive(int(holder.get("pid")))
    except (TypeError, ValueError):
        return False


def _holder_record() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": _host(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "command": " ".join(sys.argv)[:300]}


class _SoftLock:
    """The lock where the file system has no ``flock`` (some network file systems): the holder file itself,
    created exclusively; a holder of this host that no longer runs (``kill -9``) is taken over."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / HOLDER_NAME

    def acquire(self) -> dict[str, Any] | None:
        """Take the lock; returns a stale holder taken over (or None). Raises filelock.Timeout when held."""
        record = json.dumps(_holder_record())
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = read_holder(self.path.parent)
                if not _stale(holder):
                    raise filelock.Timeout(str(self.path)) from None
                aside = self.path.with_name(f"{HOLDER_NAME}.{os.getpid()}.stale")
                try:  # one of several takers wins the rename; the others retry the exclusive create
                    os.replace(self.path, aside)
                except FileNotFoundError:
                    continue
                if read_holder_file(aside) != holder:  # not the stale record we judged: put it back, refuse
                    with contextlib.suppress(OSError):
                        os.link(aside, self.path)
                    with contextlib.suppress(OSError):
                        os.unlink(aside)
                    raise filelock.Timeout(str(self.path)) from None
                with contextlib.suppress(OSError):
                    os.unlink(aside)
                self.taken_over = holder
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(record + "\n")
                f.flush()
                os.fsync(f.fileno())
            return getattr(self, "taken_over", None)
        raise filelock.Timeout(str(self.path))

    def release(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.path)


def read_holder_file(path: Path) -> dict[str, Any] | None:
    try:
        holder = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


@contextlib.contextmanager
def run_directory(run_dir: str | Path, *, resume: bool = False, force: bool = False) -> Iterator[Path]:
    """Own ``run_dir`` for the ``with`` block: one writer, no silent overwrite, leftovers of a kill cleaned.

    On rank 0 (the process that writes run files; every process outside torchrun):

    1. make the folder and take its lock (:data:`LOCK_NAME`, an ``flock`` the kernel
       releases when the holder dies, even by ``kill -9``), writing the holder's pid,
       host and start time to :data:`HOLDER_NAME`; a second process is refused in one
       line naming the holder; a holder record of a dead process is reported as taken over;
    2. check what the folder holds (:func:`check_new_run`): a fresh run never replaces
       an earlier run's results unless ``force`` (which deletes them, and the old log);
       a resume needs a checkpoint;
    3. remove temporary files a kill inside an atomic write left (``.NAME.*.tmp``): no
       other process writes here while the lock is held.

    Under torchrun the verdict is broadcast, so every rank fails with rank 0's error.

    Raises:
        NsasError: the folder is in use, holds another run's results, or has nothing to resume.
    """
    run_dir = Path(run_dir)
    lock: Any = None
    error: str | None = None
    if distributed.is_main():
        try:
            lock = _take(run_dir, resume=resume, force=force)
        except NsasError as err:
            error = str(err)
        except OSError as err:
            error = f"{err.strerror or err}: {err.filename or run_dir}"
    error = distributed.broadcast_object(error)
    if error is not None:
        raise NsasError(error)
    try:
        yield run_dir
    finally:
        if lock is not None:
            if not isinstance(lock, _SoftLock):  # the record first: whoever takes the lock next writes its own
                with contextlib.suppress(OSError):
                    os.unlink(run_dir / HOLDER_NAME)
            lock.release()


def _take(run_dir: Path, *, resume: bool, force: bool) -> Any:
    """Steps 1-3 of :func:`run_directory`; returns the held lock."""
    if resume:
        check_new_run(run_dir, resume=True)  # before making a folder that is not there
    run_dir.mkdir(parents=True, exist_ok=True)
    lock: Any = filelock.FileLock(str(run_dir / LOCK_NAME), timeout=0, thread_local=False, fallback_to_soft=False)
    try:
        try:
            lock.acquire()
            previous = read_holder(run_dir)  # a record left by a holder that died (the flock died with it)
        except NotImplementedError:  # no flock on this file system
            lock = _SoftLock(run_dir)
            previous = lock.acquire()
    except filelock.Timeout:
        raise NsasError(f"{_quote(run_dir)} is in use by another nsas run ({_describe(read_holder(run_dir))}); "
                        "wait for it to end or choose another --out") from None
    try:
        if previous is not None and _stale(previous):
            sys.stderr.write(f"nsas: warning: {_quote(run_dir)} was locked by a run that no longer runs "
                             f"({_describe(previous)}); taking it over\n")
        if not isinstance(lock, _SoftLock):
            holder = _holder_record()
            write_text_atomic(run_dir / HOLDER_NAME, json.dumps(holder) + "\n")
        check_new_run(run_dir, resume=resume, force=force)
        if force and not resume:
            for name in (*run_results(run_dir), "metrics.jsonl", "log.txt"):
                with contextlib.suppress(FileNotFoundError):
                    (run_dir / name).unlink()
        remove_temporaries(run_dir)
    except BaseException:
        lock.release()
        raise
    return lock


def remove_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files of :func:`~nsas.atomic.atomic_write` in ``folder`` (not its subfolders).

    Only call it where no other process writes (a locked run directory): a
    temporary file there is what a kill inside a write left behind.
    """
    removed = []
    for path in Path(folder).glob(".*.tmp*"):
        if not TEMP_PATTERN.match(path.name):
            continue
        with contextlib.suppress(OSError):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
    return removed


def resume_values(args: Any, run_dir: Path, fields: set[str], free: tuple[str, ...],
                  blockers: tuple[str, ...]) -> dict[str, Any]:
    """The values of ``run_dir/config.yaml`` for ``--resume``, with the flags of ``free`` applied.

    A resume continues with the run's recorded config: a flag of any other config key in ``fields``, or
    any of ``blockers`` (``"config"``, ``"preset"``, ``"recipe"``: the option names, set in ``args``),
    is a one-line error that says which keys may be given.
    """
    from nsas.config import flag_name, read_yaml

    given = sorted(k for k in vars(args) if k in fields and k not in free)
    blocked = [b for b in blockers if getattr(args, b, None)]
    if given or blocked:
        flag = f"--{blocked[0]}" if blocked else flag_name(given[0])
        allowed = ", ".join(flag_name(k) for k in free)
        raise NsasError(f"--resume continues with the run's own config.yaml; {flag} cannot change it "
                        f"(only {allowed} may be given)")
    values = read_yaml(run_dir / "config.yaml")
    for key in free:
        if getattr(args, key, None) is not None:
            values[key] = getattr(args, key)
    return values
