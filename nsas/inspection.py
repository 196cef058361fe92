"""`nsas inspect`: canonical string, parameters and multiply-adds of a stand-alone network.

    nsas inspect "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    nsas inspect @genotype.txt --space darts --channels 36 --cells 20
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from nsas.errors import NsasError
# importable from here too (nsas inspect prints them): their homes are the two modules below
from nsas.selection import arch_cost  # noqa: F401
from nsas.spaces import detect_space, get_space, space_names
from nsas.spaces.base import Architecture
from nsas.spaces.counting import count_macs, count_parameters


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
