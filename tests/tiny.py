"""Tiny supernets and batches of every space, for fast tests of the method."""

from __future__ import annotations

import torch

from nsas.spaces import get_space

TINY = {
    "nb201": dict(channels=4, cells=1, num_classes=5),
    "darts": dict(channels=4, cells=3, num_classes=5),
    "darts-chain": dict(channels=4, cells=3, num_classes=5),
    "darts-rnn": dict(vocab=30, hidden=8, dropout=0.0, dropouth=0.0, dropoutx=0.0, dropouti=0.0, dropoute=0.0),
}


def tiny_supernet(space: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return get_space(space).build_supernet(**TINY[space])


def tiny_batch(space: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    if get_space(space).kind == "text":
        tokens = torch.randint(0, 30, (6, 3), generator=g)
        return tokens[:-1], tokens[1:]
    return torch.randn(6, 3, 16, 16, generator=g), torch.randint(0, 5, (6,), generator=g)
