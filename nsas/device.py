"""The device a run computes on (``--device``): one small function that search, rank, train and study share."""

from __future__ import annotations

import torch

from nsas import distributed
from nsas.config import check_device
from nsas.errors import NsasError


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available (``cuda:LOCAL_RANK`` under data parallelism).

    Raises:
        NsasError: an unknown device name, or CUDA asked for where there is none.
    """
    check_device(name)
    per_rank = distributed.device_for(name)
    if per_rank is not None:
        return per_rank
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise NsasError("--device cuda was asked for, but PyTorch sees no CUDA device")
    return torch.device(name)
