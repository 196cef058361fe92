"""Parameters and multiply-adds of a network (what ``nsas inspect`` prints; budgets and spaces use them too)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(model: nn.Module) -> int:
    """Parameters of the network, excluding an auxiliary head (as the DARTS code counts)."""
    return sum(p.numel() for name, p in model.named_parameters() if "auxiliary" not in name)


def count_macs(model: nn.Module, kind: str, *, image_size: int = 32, tokens: int = 8,
               device: str | torch.device = "cpu") -> int:
    """Multiply-accumulates of one forward pass: per 32x32 image, or per token for text."""
    model.eval()
    if kind == "text":
        x = torch.zeros(tokens, 1, dtype=torch.long, device=device)
    else:
        x = torch.zeros(1, 3, image_size, image_size, device=device)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    macs = counter.get_total_flops() // 2  # the counter reports 2 FLOPs per multiply-add
    return macs // tokens if kind == "text" else macs
