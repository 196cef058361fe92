"""`nsas inspect`: canonical string, parameters and multiply-adds of a stand-alone network.

    nsas inspect "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    nsas inspect @genotype.txt --space darts --channels 36 --cells 20
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field
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


IMAGE_OPTIONS = ("channels", "cells", "num_classes")  # build_network options of image spaces
TEXT_OPTIONS = ("hidden", "vocab")  # ... and of text spaces
_FLAG = {"num_classes": "classes"}  # the option's flag where it is named otherwise


@dataclass(frozen=True)
class InspectResult:
    """An architecture's stand-alone network: what `nsas inspect` prints.

    Attributes:
        space: the search space's name.
        arch: the canonical string.
        parameters: trainable parameters of the stand-alone network.
        macs: multiply-adds of one forward pass (:attr:`macs_unit`).
        macs_unit: "per 32x32 image" or "per token".
        options: the ``build_network`` options it was built with.
    """

    space: str
    arch: str
    parameters: int
    macs: int
    macs_unit: str
    options: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The JSON object of ``nsas inspect --json``."""
        return dataclasses.asdict(self)


def inspect(arch: Architecture | str, space: str | None = None, **options: Any) -> InspectResult:
    """`nsas inspect`: canonical string, parameter count and MACs of ``arch``'s stand-alone network.

    ``nsas.inspect(...)`` calls this.

    Args:
        arch: an architecture, its string, or ``@FILE`` holding one.
        space: the search space (default: the architecture's, or detected from the string's shape).
        **options: ``build_network`` options (image spaces: channels, cells, num_classes; text: hidden, vocab);
            None values are left out.

    Raises:
        NsasError: a malformed architecture, an unknown space, an option the space's kind does not take.
    """
    if isinstance(arch, str):
        text = read_arch_argument(arch)
        arch = get_space(space or detect_space(text)).parse(text)
    sp = get_space(space or arch.space)
    options = {k: v for k, v in options.items() if v is not None}
    wrong = [k for k in (TEXT_OPTIONS if sp.kind == "image" else IMAGE_OPTIONS) if k in options]
    if wrong:
        raise NsasError(f"--{_FLAG.get(wrong[0], wrong[0])} does not apply to space {sp.name!r}")
    model = sp.build_network(arch, **options)
    return InspectResult(sp.name, str(arch), count_parameters(model), count_macs(model, sp.kind),
                         "per token" if sp.kind == "text" else "per 32x32 image", options)


def inspect_arch(arch: Architecture | str, space: str | None = None, **options: Any) -> dict[str, Any]:
    """:func:`inspect` as a dict (``space``, ``arch``, ``parameters``, ``macs``, ``macs_unit``, ``options``)."""
    return inspect(arch, space, **options).as_dict()


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
    """`nsas inspect`: :func:`inspect`, printed."""
    info = inspect(args.arch, args.space, channels=args.channels, cells=args.cells, num_classes=args.classes,
                   hidden=args.hidden, vocab=args.vocab)
    if args.json:
        print(json.dumps(info.as_dict()))
        return 0
    print(f"space       {info.space}")
    print(f"arch        {info.arch}")
    print(f"parameters  {info.parameters:,} ({info.parameters / 1e6:.2f} M)")
    print(f"MACs        {info.macs:,} ({info.macs / 1e6:.1f} M {info.macs_unit})")
    return 0
