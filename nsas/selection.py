"""Selection helpers shared by ``nsas search`` and ``nsas rank``: budgets and costs of architectures
(``max_params`` / ``max_macs``), and the fused score of scored architectures (``select_by: fused``)."""

from __future__ import annotations

import functools
import random
from typing import Any

import torch

from nsas.errors import NsasError
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


# ---- RandomNAS's candidates ---------------------------------------------------------------------------
def sample_within_budget(space: SearchSpace, rng: random.Random, max_params: int = 0, max_macs: int = 0,
                         tries: int = 1000) -> Architecture:
    """A random architecture of ``space`` within ``max_params`` / ``max_macs`` (any, without a budget)."""
    if not (max_params or max_macs):
        return space.sample(rng)
    for _ in range(tries):
        arch = space.sample(rng)
        if within_budget(arch_cost(space, arch), max_params, max_macs):
            return arch
    raise NsasError(f"no architecture within max_params {max_params} / max_macs {max_macs} among {tries} "
                    "random ones; relax the budget")


def candidate_rounds(cfg: Any, space: SearchSpace) -> list[list[Architecture]]:
    """RandomNAS selection's candidates: ``select_rounds`` lists of ``select_samples`` architectures.

    Drawn at random from the space, or from the architectures of ``select_from``, within ``max_params`` /
    ``max_macs``, with a generator seeded by the run's seed (the same candidates on every rank and resume).
    """
    from nsas.truth import read_arch_file

    budget = (cfg.max_params, cfg.max_macs)
    pool = read_arch_file(cfg.select_from, space)[0] if cfg.select_from else None
    if pool is not None and any(budget):
        pool = [a for a in pool if within_budget(arch_cost(space, a), *budget)]
        if not pool:
            raise NsasError(f"no architecture of {cfg.select_from} is within max_params {cfg.max_params} / "
                            f"max_macs {cfg.max_macs}")
    rng = random.Random(f"select-{cfg.seed}")
    if pool is None:
        return [[sample_within_budget(space, rng, *budget) for _ in range(cfg.select_samples)]
                for _ in range(cfg.select_rounds)]
    return [rng.sample(pool, min(cfg.select_samples, len(pool))) for _ in range(cfg.select_rounds)]


# ---- fused selection (select_by: fused) -------------------------------------------------------------
SUPERNET_COLUMNS = ("acc", "loss")  # the columns the supernet scores; every other weighted column is a proxy
# The pipeline round 8 of the ranking benchmark chose on its tune half (results/ranking/round8/pipeline.json):
# z-scored validation loss, live parameter count and jacov, weighted 0.05 / 0.05 / 0.90.
DEFAULT_FUSE_WEIGHTS = "loss=0.05,params=0.05,jacov=0.90"


def fused_rows(space: SearchSpace, rows: list[dict[str, Any]], weights: str, *, method: str = "z",
               batch: Any = None, options: dict[str, Any] | None = None, seed: int = 0,
               device: str | torch.device = "cpu") -> list[dict[str, Any]]:
    """``rows`` (the supernet's scores: ``arch``, ``acc``, ``loss``) with each proxy the weights name and ``score``.

    ``score`` is the fusion (:func:`nsas.fusion.fuse`, higher is better) of the weighted columns over
    these rows; the proxies are computed on each architecture's stand-alone network
    (:func:`nsas.proxies.score_proxies` with ``batch`` and ``options``).
    """
    from nsas.fusion import fuse, parse_weights
    from nsas.proxies import score_proxies

    w = parse_weights(weights)
    names = proxy_names_of(weights)
    if names:
        scored = score_proxies(space, [row["arch"] for row in rows], names, batch, seed=seed, options=options,
                               device=device)
        rows = [{**row, **{n: p[n] for n in names}} for row, p in zip(rows, scored, strict=True)]
    values = fuse(rows, w, method=method)
    return [{**row, "score": float(v)} for row, v in zip(rows, values, strict=True)]


def proxy_names_of(weights: str) -> list[str]:
    """The proxies a weights string needs (every weighted column but the supernet's acc and loss)."""
    from nsas.fusion import parse_weights

    return [c for c in parse_weights(weights) if c not in SUPERNET_COLUMNS]


def fuse_for_run(cfg: Any, space: SearchSpace, rows: list[dict[str, Any]], *, num_classes: int,
                 device: str | torch.device = "cpu") -> list[dict[str, Any]]:
    """``rows`` fused as the search run of config ``cfg`` fuses them (``select_by: fused``; ``nsas rank RUN``).

    The proxies of ``cfg.fuse_weights`` run on each architecture's stand-alone network at the supernet's
    size (built-in spaces: ``channels``, ``cells``, ``num_classes``; a space of one's own: as it builds
    them) on one fixed batch of ``cfg.proxy_batch_size`` training images of the run's data set, seeded
    by ``cfg.seed``. The training random streams are left untouched.
    """
    from nsas.proxies import proxy_batch

    batch = None
    if [n for n in proxy_names_of(cfg.fuse_weights) if n != "params"]:
        batch = proxy_batch(cfg.dataset, cfg.proxy_batch_size, seed=cfg.seed, data_dir=cfg.data_dir)
    options: dict[str, Any] = {}
    if space.name in BUILT_IN_IMAGE_SPACES:
        options = {"channels": cfg.channels, "cells": cfg.cells, "num_classes": num_classes}
    device = torch.device(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        return fused_rows(space, rows, cfg.fuse_weights, method=cfg.fuse_method, batch=batch, options=options,
                          seed=cfg.seed, device=device)


BUILT_IN_IMAGE_SPACES = ("nb201", "darts", "darts-chain")  # sized by channels and cells
