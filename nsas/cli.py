"""The `nsas` command: a table of subcommands, each a module with two functions.

Each module listed in :data:`SUBCOMMANDS` defines ``configure(parser)`` (add
its flags) and ``run(args) -> int`` (do the work). Modules are imported only
when their subcommand runs, so ``nsas --help`` is instant. Every
:class:`~nsas.errors.NsasError`, file-system error (:class:`OSError`, naming
the path) and :class:`MemoryError` becomes one line on stderr and exit status
2; docs/RELIABILITY.md lists the faults and bad inputs this covers. Any other
exception (a bug) is one ``nsas: internal error`` line naming the file its full
traceback was written to (``NSAS_ERROR_DIR``, else the temporary folder), exit
status 1: never a bare traceback.

Under torchrun (``torchrun --nproc-per-node N -m nsas COMMAND ...``) each
process joins the group first (nsas/distributed.py); only rank 0 prints, and
an error names the rank it happened on.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import os
import re
import sys

from nsas import __version__
from nsas.errors import NsasError

# name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "search": ("nsas.search", "train a supernet (RandomNAS/GDAS, with or without NSAS) and select architectures"),
    "inspect": ("nsas.inspection", "print an architecture's canonical string, parameters and multiply-adds"),
    "rank": ("nsas.rank", "score architectures with a trained supernet's inherited weights"),
    "train": ("nsas.train", "train one architecture stand-alone from scratch"),
    "export": ("nsas.export", "write the stand-alone network of an architecture or run (state dict, TorchScript, ...)"),
    "correlate": ("nsas.correlate", "rank correlation between supernet scores and ground truth"),
    "plot": ("nsas.plot", "draw forgetting curves, losses, diversity and cells of a search run (or overlay runs)"),
    "study": ("nsas.study", "run searches and ground-truth training, and report ranking quality"),
    "truth": ("nsas.nasbench", "import NAS-Bench-201/NATS-Bench ground truth as a truth CSV (no pickled code runs)"),
}


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors in one line with exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        if message.startswith("unrecognized arguments:"):
            snake = [w for w in message.split()[2:] if w.startswith("--") and "_" in w]
            if snake:  # a YAML key typed as a flag
                message += f" (flags use dashes: {snake[0].split('=')[0].replace('_', '-')})"
        if re.match(r"argument --(space|strategy|loss|dataset): invalid choice", message):
            from nsas.registry import CLI_HINT  # a space registered in a script is unknown here: say how

            message += f"; {CLI_HINT}"
        from nsas.errors import shorten  # argparse quotes what it was given: a 100 KB value stays one short line

        sys.stderr.write(f"{self.prog}: error: {shorten(message, 600)}\n")
        raise SystemExit(2)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser; ``only`` configures just that subcommand (imports one module)."""
    parser = _Parser(
        prog="nsas",
        description="One-shot neural architecture search that does not forget (NSAS).",
    )
    parser.add_argument("--version", action="version", version=f"nsas {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == only:
            importlib.import_module(module).configure(p)
    return parser


def describe_os_error(err: OSError) -> str:
    """One line for a file-system error: what went wrong and the path(s) it concerns."""
    what = err.strerror or str(err) or type(err).__name__
    paths = [str(p) for p in (err.filename, err.filename2) if p is not None]
    return f"{what}: {' -> '.join(paths)}" if paths else f"{what} ({type(err).__name__})"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `nsas` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    try:
        parser = build_parser(only=command)
        try:
            args = parser.parse_args(argv)
        except SystemExit as exit_:  # --help, --version and usage errors (already printed)
            return int(exit_.code or 0)
        if args.command is None:
            parser.print_help()
            return 0
        module = importlib.import_module(SUBCOMMANDS[args.command][0])
        from nsas import distributed

        with distributed.session():  # under torchrun: join the group; leave it (abort on errors) at the end
            quiet = distributed.active() and not distributed.is_main()
            with contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext():
                return int(module.run(args) or 0)
    except NsasError as err:
        sys.stderr.write(f"nsas: error: {err}\n")
        return 2
    except OSError as err:  # a full disk, a read-only or missing folder, a path that is a file ...
        sys.stderr.write(f"nsas: error: {describe_os_error(err)}\n")
        return 2
    except MemoryError:
        sys.stderr.write("nsas: error: out of memory; use a smaller batch size, data set or supernet\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("nsas: interrupted\n")
        return 130
    except Exception as err:  # the last resort: a bug, not the user's input; one line and where the details are
        where = log_traceback(err)
        what = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err).strip() else ''}"
        sys.stderr.write(f"nsas: internal error: {what[:300]} (full traceback in {where}; please report it)\n")
        return 1


def log_traceback(err: BaseException) -> str:
    """Write ``err``'s full traceback to a new file (``NSAS_ERROR_DIR``, else the temporary folder); its path."""
    import tempfile
    import time
    import traceback

    text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    folder = os.environ.get("NSAS_ERROR_DIR") or tempfile.gettempdir()
    try:
        fd, path = tempfile.mkstemp(prefix=f"nsas-error-{time.strftime('%Y%m%d-%H%M%S')}-", suffix=".txt",
                                    dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(f"nsas {__version__}: {' '.join(sys.argv)}\n{text}")
    except OSError as log_err:
        frame = traceback.extract_tb(err.__traceback__)[-1:] or [None]
        at = f"{frame[0].filename}:{frame[0].lineno}" if frame[0] else "unknown place"
        return f"nowhere: {folder} is not writable ({log_err.strerror}); raised at {at}"
    return path
