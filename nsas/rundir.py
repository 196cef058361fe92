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

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from nsas.atomic import write_text_atomic
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
    """Console handler that does not break progress bars."""

    def emit(self, record: logging.LogRecord) -> None:
        tqdm.write(self.format(record), file=sys.stderr)


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


