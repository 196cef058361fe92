"""Data parallelism with torch.distributed: one process per device, started by torchrun.

    torchrun --nproc-per-node 4 -m nsas search --space nb201 --dataset cifar10 --out runs/s
    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 \\
        -m nsas train ARCH --out runs/t

Without torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK) everything here
is a no-op for one process: ``world_size() == 1``, ``is_main()`` is true and
the collectives return their input.

What is split and what is replicated:

- weights: the network is wrapped in DistributedDataParallel
  (:func:`wrap`); gradients are averaged over the ranks;
- data: every rank builds the same global batch (batches are a pure function
  of ``(seed, epoch, index)``) and takes its contiguous slice (:func:`shard`);
- everything else (architecture sampling, archive, GDAS alphas, evaluation)
  runs identically on every rank from the same seeds; only rank 0 writes files.

Collectives time out after ``NSAS_DIST_TIMEOUT`` seconds (default 600), so a
rank that dies makes the others fail with an error instead of waiting forever.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import math
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from nsas.errors import NsasError

DEFAULT_TIMEOUT_S = 600.0
_local_depth = 0  # > 0 inside local(): this process works alone although a group exists


def launched() -> bool:
    """True when torchrun's environment asks for more than one process."""
    return "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    """True when collectives span several processes (a group exists and :func:`local` is not in force)."""
    return _local_depth == 0 and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0")) if active() else 0


def is_main() -> bool:
    """Rank 0: the process that writes run files."""
    return rank() == 0


def timeout_seconds() -> float:
    value = os.environ.get("NSAS_DIST_TIMEOUT", str(DEFAULT_TIMEOUT_S))
    try:
        seconds = float(value)
    except ValueError:
        raise NsasError(f"NSAS_DIST_TIMEOUT must be a number of seconds, got {value!r}") from None
    if not 0 < seconds < math.inf:
        raise NsasError(f"NSAS_DIST_TIMEOUT must be a positive, finite number of seconds, got {value!r}")
    return seconds


def init(timeout: float | None = None) -> bool:
    """Join the process group that torchrun's environment describes; returns whether one was joined.

    Backend: gloo for CPU tensors, and NCCL for CUDA tensors when the node
    has a GPU for this rank (each rank then uses ``cuda:LOCAL_RANK``).

    Args:
        timeout: seconds before a collective gives up (default ``NSAS_DIST_TIMEOUT`` or 600).
    """
    if not launched() or dist.is_initialized():
        return dist.is_initialized()
    seconds = timeout_seconds() if timeout is None else timeout
    backend = "gloo"
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available() and local < torch.cuda.device_count():
        torch.cuda.set_device(local)
        backend = "cpu:gloo,cuda:nccl"
    try:
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=seconds))
    except (RuntimeError, ValueError) as err:
        raise NsasError(f"cannot join the process group (rank {os.environ.get('RANK')} of "
                        f"{os.environ.get('WORLD_SIZE')}): {_first_line(err)}") from None
    return True


def shutdown(*, failed: bool = False) -> None:
    """Leave the process group; after a failure, abort it so pending collectives do not block."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    if failed:
        abort = getattr(dist.distributed_c10d, "_abort_process_group", None)
        if abort is not None:
            with contextlib.suppress(Exception):
                abort()
                return
    with contextlib.suppress(Exception):
        dist.destroy_process_group()


@contextlib.contextmanager
def session() -> Iterator[None]:
    """Init from the environment for the block; shut down on exit, aborting the group on errors.

    An error on one rank is reported with its rank; a collective that fails
    because another rank stopped (or timed out) becomes an :class:`NsasError`.
    """
    joined = init()
    try:
        yield
    except NsasError as err:
        if joined:
            shutdown(failed=True)
            raise type(err)(f"rank {dist_rank_label()}: {err}") from None
        raise
    except KeyboardInterrupt:
        if joined:
            shutdown(failed=True)
        raise
    except Exception as err:
        if not joined:
            raise
        shutdown(failed=True)
        if _is_collective_error(err):
            raise NsasError(f"rank {dist_rank_label()}: a collective operation failed: another rank stopped "
                            f"or did not answer within {timeout_seconds():.0f}s (NSAS_DIST_TIMEOUT); see "
                            f"that rank's error ({_first_line(err)[:200]})") from None
        sys.stderr.write(f"nsas: rank {dist_rank_label()} failed:\n")
        raise
    else:
        if joined:
            shutdown()


def dist_rank_label() -> str:
    return f"{os.environ.get('RANK', '0')}/{os.environ.get('WORLD_SIZE', '1')}"


def _is_collective_error(err: BaseException) -> bool:
    backend_error = getattr(dist, "DistBackendError", ())
    if backend_error and isinstance(err, backend_error):
        return True
    text = str(err).lower()
    return isinstance(err, RuntimeError) and any(
        s in text for s in ("gloo", "nccl", "connection closed", "connection reset", "timed out", "timeout"))


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


@contextlib.contextmanager
def local() -> Iterator[None]:
    """Inside the block this process works alone (world size 1), e.g. one shard of a study."""
    global _local_depth
    _local_depth += 1
    try:
        yield
    finally:
        _local_depth -= 1


# ---- devices, models, data --------------------------------------------------
def device_for(name: str) -> torch.device | None:
    """``cuda:LOCAL_RANK`` for ``auto``/``cuda`` when several processes share a node's GPUs; else None."""
    if launched() and dist.is_initialized() and name in ("auto", "cuda") and torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise NsasError(f"local rank {local} has no GPU of its own ({torch.cuda.device_count()} on this node); "
                            "start at most one process per GPU (--nproc-per-node) or pass --device cpu")
        return torch.device(f"cuda:{local}")  # also inside local()
    return None


def wrap(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` in DistributedDataParallel when several processes train it; else ``module`` itself.

    ``find_unused_parameters=True``: a single-path step uses a subset of the
    supernet's weights. Buffers (stand-alone BatchNorm running statistics;
    search networks have none) are broadcast from rank 0 at every forward.
    """
    if not active():
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=True)


def unwrap(module: nn.Module) -> nn.Module:
    """The network inside a DistributedDataParallel wrapper."""
    from torch.nn.parallel import DistributedDataParallel

    return module.module if isinstance(module, DistributedDataParallel) else module


def pass_context(module: nn.Module, *, sync: bool) -> contextlib.AbstractContextManager:
    """``module.no_sync()`` for a backward pass that only accumulates locally; the synchronising one gets none.

    Under ``no_sync`` DDP records which parameters received gradients; the
    next synchronised backward all-reduces those too, even when its own
    forward did not use them (tests/test_distributed.py checks this).
    """
    if sync or not hasattr(module, "no_sync"):
        return contextlib.nullcontext()
    return module.no_sync()


def shard(batch: Sequence[torch.Tensor], index: int, count: int, *, dim: int = 0) -> tuple[torch.Tensor, ...]:
    """Contiguous slice ``index`` of ``count`` equal slices of every tensor of ``batch`` along ``dim``."""
    if count == 1:
        return tuple(batch)
    size = batch[0].size(dim)
    if size % count:
        raise NsasError(f"a batch of {size} cannot be split into {count} equal parts (processes x micro-batches); "
                        f"choose a batch size divisible by {count}")
    part = size // count
    return tuple(t.narrow(dim, index * part, part) for t in batch)


# ---- collectives --------------------------------------------------------------
def barrier(group: Any = None) -> None:
    """Wait for every rank (in ``group``, default all)."""
    if active():
        dist.barrier(group=group)


def waiting_group() -> Any:
    """A gloo group for waits between long stages (timeout ``NSAS_DIST_STAGE_TIMEOUT`` s, default 7 days).

    The default group's timeout (``NSAS_DIST_TIMEOUT``) bounds each step's
    collectives; a rank that waits for another one's hours-long search needs
    a longer one. A rank that exits still closes its connections, which
    stops the waiting ranks at once.
    """
    if not active():
        return None
    value = os.environ.get("NSAS_DIST_STAGE_TIMEOUT", str(7 * 24 * 3600))
    try:
        seconds = float(value)
    except ValueError:
        raise NsasError(f"NSAS_DIST_STAGE_TIMEOUT must be a number of seconds, got {value!r}") from None
    return dist.new_group(backend="gloo", timeout=datetime.timedelta(seconds=seconds))


@contextlib.contextmanager
def local_rank_zero_first() -> Iterator[None]:
    """Run the block on local rank 0 first, then on the node's other ranks.

    For data preparation (download, extract, decode, cache): the other ranks
    wait at a barrier, then find the data ready. A no-op in one process.
    """
    if not active():
        yield
        return
    if local_rank() != 0:
        barrier()
    yield
    if local_rank() == 0:
        barrier()


def broadcast_object(value: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``value`` on every rank."""
    if not active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_object(value: Any) -> list[Any]:
    """Every rank's ``value``, in rank order."""
    if not active():
        return [value]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, value)
    return out


def all_reduce_mean(tensors: Sequence[torch.Tensor]) -> None:
    """Average ``tensors`` in place over the ranks (one collective for all of them)."""
    if not active() or not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for t in tensors:
        t.copy_(flat[offset:offset + t.numel()].view_as(t))
        offset += t.numel()


def mean_floats(values: Sequence[float], device: torch.device | str = "cpu") -> list[float]:
    """The mean over the ranks of each of ``values``."""
    if not active():
        return list(values)
    t = torch.tensor(list(values), dtype=torch.float64, device=device)
    all_reduce_mean([t])
    return t.tolist()


def all_gather_tensor(t: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """The ranks' (same-shaped) tensors concatenated along ``dim``, on every rank."""
    if not active():
        return t
    parts = [torch.empty_like(t) for _ in range(world_size())]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts, dim=dim)


def check_consistent(what: str, fingerprint: Any) -> None:
    """Raise :class:`NsasError` naming the ranks whose ``fingerprint`` differs from rank 0's.

    Args:
        what: where the check runs (for the message), e.g. "step 200".
        fingerprint: any picklable summary of state that must be equal on every rank.
    """
    if not active():
        return
    digest = hashlib.sha256(repr(fingerprint).encode()).hexdigest()[:16]
    digests = all_gather_object(digest)
    bad = [r for r, d in enumerate(digests) if d != digests[0]]
    if bad:
        raise NsasError(f"ranks disagree at {what}: rank(s) {', '.join(map(str, bad))} differ from rank 0 "
                        f"(state digests {', '.join(f'{r}={d}' for r, d in enumerate(digests))}); the processes "
                        "diverged (different code, data or nondeterministic kernels)")


def weight_checksum(module: nn.Module) -> float:
    """A cheap checksum of the weights: sum over parameters of (index + 1) * sum(p), in float64."""
    with torch.no_grad():
        total = torch.zeros((), dtype=torch.float64)
        for i, p in enumerate(unwrap(module).parameters()):
            total += (i + 1) * p.detach().double().sum().cpu()
    return float(total)
