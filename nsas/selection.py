"""Budgets and costs of architectures (``max_params`` / ``max_macs``), shared by search selection and ``rank``."""

from __future__ import annotations

import functools

import torch

from nsas.spaces import get_space
from nsas.spaces.base import Architecture, SearchSpace
from nsas.spaces.counting import count_macs, count_parameters


def within_budget(cost: tuple[int, int], max_params: int | None, max_macs: int | None) -> bool:
    """Whether (params, macs) fits the budget (None or 0: no limit)."""
    return (not max_params or cost[0] <= max_params) and (not max_macs or cost[1] <= max_macs)


@functools.lru_cache(maxsize=65536)
def _cost(space: str, arch: str) -> tuple[int, int]:
    sp = get_space(space)
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        model = sp.build_network(sp.parse(arch))
    return count_parameters(model), count_macs(model, sp.kind, device="meta")


def arch_cost(space: SearchSpace, arch: Architecture) -> tuple[int, int]:
    """Parameters and multiply-adds of ``arch``'s stand-alone network at the space's default size.

    The same numbers as ``nsas inspect ARCH`` without size options (darts: 36
    channels, 20 cells; nb201: 16 channels, 5 cells per stage; 10 classes),
    cached per architecture. About half a second per architecture on one CPU
    core (the multiply-add counter traces every operation).
    """
    return _cost(space.name, str(arch))
