"""``--threads N`` of the commands that compute (search, train): the size of torch's CPU thread pool.

Without the flag torch keeps its own default: the number of cores, or
``OMP_NUM_THREADS`` when that is set in the environment (``OMP_NUM_THREADS=1
nsas search ...`` is the same as ``--threads 1``). On a machine whose cores
other work shares, fewer threads can be faster: the quick search measured 2-3x
faster with one thread than with torch's default on a loaded 2-core machine
(as issue 23 reported it; not re-measured here), while on an idle machine the
default uses every core. Results reproduce exactly only at
the same thread count on the same CPU (summation order changes with the split).
"""

from __future__ import annotations

import argparse

from nsas.errors import NsasError

HELP = ("CPU threads of torch's intra-op pool (default: torch's own, the number of cores, or OMP_NUM_THREADS "
        "when set). On cores shared with other work fewer can be faster (1 thread was reported 2-3x faster on a "
        "loaded 2-core machine); runs reproduce exactly only at one thread count and CPU")


def add_threads_flag(parser: argparse.ArgumentParser) -> None:
    """Add ``--threads N`` to a command's parser."""
    parser.add_argument("--threads", type=int, default=None, metavar="N", help=HELP)


def apply_threads(threads: int | None) -> None:
    """Set torch's CPU thread pool to ``threads`` (``None``: leave it as it is).

    Raises:
        NsasError: ``threads`` is below 1.
    """
    if threads is None:
        return
    if threads < 1:
        raise NsasError(f"--threads must be at least 1, got {threads}")
    import torch

    torch.set_num_threads(threads)
