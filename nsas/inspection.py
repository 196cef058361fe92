"""`nsas inspect`: canonical string, parameters and multiply-adds of a stand-alone network.

    nsas inspect "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    nsas inspect @genotype.txt --space darts --channels 36 --cells 20
"""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nsas.errors import NsasError
from nsas.spaces import detect_space, get_space, space_names
from nsas.spaces.base import Architecture, SearchSpace


def read_arch_argument(text: str) -> str:
    """An architecture argument, or the contents of the file named after ``@``."""
    if not text.startswith("@"):
        return text
    path = Path(text[1:])
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as err:
        raise NsasError(f"cannot read architecture file {path}: {err.strerror}") from None
    except UnicodeDecodeError as err:
        raise NsasError(f"architecture file {path} is not UTF-8 text (byte {err.start})") from None


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


def inspect_arch(arch: Architecture | str, space: str | None = None, **options: Any) -> dict[str, Any]:
    """Canonical string, parameter count and MACs of ``arch``'s stand-alone network."""
    if isinstance(arch, str):
        space = space or detect_space(arch)
        arch = get_space(space).parse(arch)
    sp = get_space(space or arch.space)
    model = sp.build_network(arch, **options)
    return {
        "space": sp.name,
        "arch": str(arch),
        "parameters": count_parameters(model),
        "macs": count_macs(model, sp.kind),
        "macs_unit": "per token" if sp.kind == "text" else "per 32x32 image",
        "options": options,
    }


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("arch", metavar="ARCH", help="architecture string, or @FILE holding one")
    parser.add_argument("--space", choices=space_names(), help="search space (default: from the string's shape)")
    parser.add_argument("--channels", type=int, help="initial channels (darts default 36, nb201 16)")
    parser.add_argument("--cells", type=int, help="cells (darts: total, default 20; nb201: per stage, default 5)")
    parser.add_argument("--classes", type=int, help="output classes (default 10)")
    parser.add_argument("--hidden", type=int, help="darts-rnn hidden size (default 850)")
    parser.add_argument("--vocab", type=int, help="darts-rnn vocabulary size (default 10000)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    text = read_arch_argument(args.arch)
    space = get_space(args.space or detect_space(text))
    image_opts = {"channels": args.channels, "cells": args.cells, "num_classes": args.classes}
    text_opts = {"hidden": args.hidden, "vocab": args.vocab}
    wrong = [k for k, v in (text_opts if space.kind == "image" else image_opts).items() if v is not None]
    if wrong:
        raise NsasError(f"--{wrong[0].replace('num_classes', 'classes')} does not apply to space {space.name!r}")
    options = {k: v for k, v in (image_opts if space.kind == "image" else text_opts).items() if v is not None}
    info = inspect_arch(space.parse(text), space.name, **options)
    if args.json:
        print(json.dumps(info))
        return 0
    print(f"space       {info['space']}")
    print(f"arch        {info['arch']}")
    print(f"parameters  {info['parameters']:,} ({info['parameters'] / 1e6:.2f} M)")
    print(f"MACs        {info['macs']:,} ({info['macs'] / 1e6:.1f} M {info['macs_unit']})")
    return 0
