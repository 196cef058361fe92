"""`nsas export`: the stand-alone network of an architecture or of a run, as a file others can load.

    nsas export runs/train-nb201-...  --format torchscript --out net.pt   # a `nsas train` run: its trained weights
    nsas export runs/search-nb201-... --format export --out net.pt2       # a search run's pick (fresh weights)
    nsas export "|nor_conv_3x3~0|+|...|" --weights runs/train-.../checkpoint.pt --format state_dict --out w.pt

Formats: ``state_dict`` (``torch.save`` of the weights; load with
``net.load_state_dict(torch.load(FILE))`` into ``space.build_network(arch,
**options)``), ``torchscript`` (``torch.jit.load``), ``export`` (a
``torch.export`` program: ``torch.export.load(FILE).module()``), and
``onnx`` (needs the optional extra: ``pip install 'nsas[onnx]'``). The
traced formats take image batches (B, 3, H, W) with any B; text (RNN)
networks export as ``state_dict`` only. Next to FILE, ``FILE.json`` records
the space, architecture, build options, where the weights came from and
the files written. ONNX keeps the weights in a sidecar, ``FILE.data``, that
FILE loads: copy the two together. The command prints every file it wrote;
``nsas.export(...)`` (:func:`export`) returns them in an :class:`ExportResult`.

Weights: a `nsas train` run directory (or its checkpoint.pt) as ARCH or as
``--weights`` gives the trained weights (the last checkpoint's, not ASGD's
averaged ones); a file written by ``--format state_dict`` can be
``--weights`` too. Otherwise the network is freshly initialised (seed 0).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nsas.atomic import atomic_output, atomic_write, remove_stale_temporaries, write_text_atomic
from nsas.checkpoint import content_sha256, load_checkpoint, safe_load
from nsas.config import build_config, read_yaml
from nsas.errors import CheckpointError, NsasError
from nsas.spaces import detect_space, get_space
from nsas.spaces.base import Architecture, SearchSpace

FORMATS = ("state_dict", "torchscript", "export", "onnx")


@dataclass
class Exportable:
    """A stand-alone network and what it is."""

    network: nn.Module
    space: SearchSpace
    arch: Architecture
    options: dict[str, Any] = field(default_factory=dict)  # build_network keyword options
    weights: str | None = None  # where its weights came from (None: fresh initialisation)


def _train_run(path: Path) -> tuple[Path, dict[str, Any]] | None:
    """(run directory, checkpoint state) if ``path`` is a `nsas train` run or its checkpoint, else None."""
    run_dir = path.parent if path.is_file() and path.name == "checkpoint.pt" else path
    if not (run_dir.is_dir() and (run_dir / "arch.txt").is_file() and (run_dir / "checkpoint.pt").is_file()):
        return None
    return run_dir, load_checkpoint(run_dir / "checkpoint.pt", kind="train")


def _from_train_run(run_dir: Path, state: dict[str, Any]) -> Exportable:
    """The network of a `nsas train` run, with its checkpoint's weights."""
    from nsas.train import AUX_SPACES, TrainConfig, build_train_data

    cfg = build_config(TrainConfig, read_yaml(run_dir / "config.yaml"), source=str(run_dir / "config.yaml"))
    space = get_space(cfg.space)
    arch = space.parse(str(state["arch"]))
    num_classes = state.get("num_classes")
    if num_classes is None:  # checkpoints written before num_classes was recorded: ask the data set
        num_classes = build_train_data(cfg, space.kind, torch.device("cpu")).num_classes
    if space.kind == "text":  # every build option, as nsas.train.build_model passes them: FILE.json rebuilds it
        options: dict[str, Any] = dict(vocab=num_classes, hidden=cfg.hidden, dropout=cfg.dropout,
                                       dropouth=cfg.dropouth, dropoutx=cfg.dropoutx, dropouti=cfg.dropouti,
                                       dropoute=cfg.dropoute)
    else:
        options = dict(channels=cfg.channels, cells=cfg.cells, num_classes=num_classes)
        if cfg.space in AUX_SPACES:
            options.update(auxiliary=cfg.auxiliary_weight > 0, drop_path=0.0)
    network = space.build_network(arch, **options)
    _load_weights(network, state["model"], run_dir / "checkpoint.pt")
    return Exportable(network, space, arch, options, str(run_dir / "checkpoint.pt"))


def _load_weights(network: nn.Module, state_dict: dict[str, torch.Tensor], source: Path | str) -> None:
    try:
        network.load_state_dict(state_dict)
    except (RuntimeError, KeyError) as err:
        raise CheckpointError(f"the weights in {source} do not fit the network: "
                              f"{str(err).splitlines()[0][:200]}") from None


def _arch_text(source: str) -> tuple[str, str | None]:
    """An architecture string and the space a search run names, from a string, @FILE or search run."""
    from nsas.train import read_arch_source

    text, run_values = read_arch_source(source)
    return text, run_values.get("space")


def exportable(source: str, *, weights: str | Path | None = None, space: str | None = None,
               **options: Any) -> Exportable:
    """The stand-alone network ``source`` names, with weights where there are some.

    Args:
        source: an architecture string, ``@FILE``, a search run directory (its
            best pick) or a `nsas train` run directory (with its weights).
        weights: a `nsas train` run or checkpoint (same architecture), or a
            state-dict file; None for the source's own weights or a fresh network.
        space: the search space (default: detected from the string, or the run's).
        **options: ``build_network`` options (channels, cells, num_classes, ...)
            when the network is not a train run's.
    """
    run = _train_run(Path(source))
    if run is not None and weights is not None:
        raise NsasError(f"{source} is a train run with weights of its own; drop --weights")
    if run is None and weights is not None:
        run = _train_run(Path(weights))
        if run is not None:
            text, run_space = _arch_text(source)
            arch = get_space(space or run_space or detect_space(text)).parse(text)
            if str(arch) != str(run[1]["arch"]):
                raise NsasError(f"--weights {weights} holds a network of {str(run[1]['arch'])[:80]}, not {arch}")
    if run is not None:
        if options:
            raise NsasError(f"the network of train run {run[0]} has its recorded size; drop "
                            f"--{next(iter(options)).replace('_', '-')}")
        return _from_train_run(*run)
    text, run_space = _arch_text(source)
    sp = get_space(space or run_space or detect_space(text))
    arch = sp.parse(text)
    state = None
    if weights is not None:
        state = safe_load(weights, what="weights")
        if not isinstance(state, dict):
            raise CheckpointError(f"{weights} is neither a `nsas train` checkpoint nor a state dict")
        meta = _export_meta(Path(weights))
        if meta is not None:  # an export of this nsas: its build options and checksum are beside it
            if meta.get("sha256") is not None and meta["sha256"] != content_sha256(state):
                raise CheckpointError(f"weights {weights} are corrupt: they do not match the SHA-256 in "
                                      f"{weights}.json")
            options = {**(meta.get("options") or {}), **options}
    torch.manual_seed(0)
    network = sp.build_network(arch, **options)
    if state is not None:
        _load_weights(network, state, weights)
    return Exportable(network, sp, arch, options, None if weights is None else str(weights))


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote (:func:`export`, :func:`write_network`).

    Attributes:
        out: the network file.
        files: every file written, ``out`` first, then its sidecars (ONNX keeps the weights in
            ``out.data``: copy it with ``out``), then ``out.json``.
        space: the search space's name.
        arch: the architecture's canonical string.
        format: one of :data:`FORMATS`.
        weights: where the weights came from (None: fresh initialisation, seed 0).
        options: the ``build_network`` options (recorded in ``out.json``).
    """

    out: Path
    files: list[Path]
    space: str
    arch: str
    format: str
    weights: str | None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def sidecars(self) -> list[Path]:
        """The files the network file needs beside it (ONNX external weights), not ``out.json``."""
        return [f for f in self.files[1:] if f.name != self.out.name + ".json"]


def export(source: str | Path, out: str | Path, fmt: str = "state_dict", *, weights: str | Path | None = None,
           space: str | None = None, image_size: int = 32, **options: Any) -> ExportResult:
    """`nsas export`: the stand-alone network ``source`` names, written to ``out`` in format ``fmt``.

    ``nsas.export(...)`` calls this. ``source``, ``weights``, ``space`` and
    ``options`` are :func:`exportable`'s; ``fmt`` and ``image_size`` are
    :func:`write_network`'s.

    Returns:
        :class:`ExportResult`: every file written.
    """
    item = exportable(str(source), weights=weights, space=space, **options)
    return write_network(item, out, fmt, image_size=image_size)


def write_network(item: Exportable, out: str | Path, fmt: str = "state_dict", *, image_size: int = 32
                  ) -> ExportResult:
    """Write ``item.network`` to ``out`` in format ``fmt`` (see :data:`FORMATS`) and ``out.json`` beside it.

    Raises:
        NsasError: unknown format, a traced format for a text network, or ONNX without its extra.
    """
    if fmt not in FORMATS:
        raise NsasError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    out = Path(out)
    if not out.parent.is_dir():
        raise NsasError(f"cannot write {out}: folder {out.parent} does not exist")
    net = item.network.cpu().eval()
    if fmt != "state_dict" and item.space.kind != "image":
        raise NsasError(f"space {item.space.name!r} is not an image space: export it as --format state_dict")
    if fmt == "onnx" and (importlib.util.find_spec("onnx") is None or importlib.util.find_spec("onnxscript") is None):
        raise NsasError("--format onnx needs the onnx extra: pip install 'nsas[onnx]'")
    if image_size < 1:
        raise NsasError(f"--image-size must be a positive number of pixels, got {image_size}")
    remove_stale_temporaries(out)  # what an export killed mid-write left
    example = torch.randn(2, 3, image_size, image_size)
    batch = torch.export.Dim("batch", min=1)
    state = net.state_dict()
    sidecars: list[str] = []
    with torch.no_grad():  # every output through the atomic writers: a full disk keeps the old file
        if fmt == "state_dict":
            with atomic_write(out) as f:
                torch.save(state, f)
        elif fmt == "torchscript":
            traced = torch.jit.trace(net, example)
            with atomic_write(out) as f:
                torch.jit.save(traced, f)
        elif fmt == "export":
            program = torch.export.export(net, (example,), dynamic_shapes=({0: batch},))
            with atomic_write(out) as f:
                torch.export.save(program, f)
        else:
            with atomic_output(out) as target:
                torch.onnx.export(net, (example,), str(target), input_names=["images"], output_names=["logits"],
                                  dynamic_shapes=({0: batch},), dynamo=True)
                sidecars = sorted(p.name for p in target.parent.iterdir() if p.name != target.name)  # OUT.data
    meta = {"space": item.space.name, "arch": str(item.arch), "format": fmt, "options": item.options,
            "weights": item.weights, "input": "images (B, 3, H, W)" if item.space.kind == "image" else "tokens",
            "sha256": content_sha256(state) if fmt == "state_dict" else None, "files": [out.name, *sidecars]}
    write_text_atomic(out.parent / (out.name + ".json"), json.dumps(meta, indent=2) + "\n")
    files = [out, *(out.parent / name for name in sidecars), out.parent / (out.name + ".json")]
    return ExportResult(out, files, item.space.name, str(item.arch), fmt, item.weights, dict(item.options))


def _export_meta(weights: Path) -> dict[str, Any] | None:
    """``FILE.json`` beside a ``--format state_dict`` export (None when there is none or it is not one)."""
    path = weights.parent / (weights.name + ".json")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("format") != "state_dict" or not isinstance(meta.get("options", {}), dict):
        return None
    return meta


def configure(parser: argparse.ArgumentParser) -> None:
    """Flags of `nsas export`."""
    parser.add_argument("source", metavar="ARCH|RUN",
                        help="architecture string, @FILE, a search run (its pick) or a `nsas train` run (its weights)")
    parser.add_argument("--weights", metavar="CKPT", default=None,
                        help="trained weights: a `nsas train` run or checkpoint.pt, or a --format state_dict file")
    parser.add_argument("--format", dest="fmt", choices=FORMATS, default="state_dict",
                        help="state_dict (default), torchscript (deprecated by PyTorch), export (torch.export) or onnx "
                             "(optional extra)")
    parser.add_argument("--out", required=True, metavar="FILE", help="file to write (FILE.json records what it is)")
    parser.add_argument("--space", default=None, help="search space (default: from ARCH's shape or the run)")
    parser.add_argument("--channels", type=int, help="initial channels (not for a train run: it has its own)")
    parser.add_argument("--cells", type=int, help="cells (not for a train run)")
    parser.add_argument("--classes", dest="num_classes", type=int, help="output classes (not for a train run)")
    parser.add_argument("--image-size", dest="image_size", type=int, default=32,
                        help="height and width of the example input that traces the network (default 32)")


def run(args: argparse.Namespace) -> int:
    """`nsas export`: :func:`export`, then one line of what it is and one of every file written."""
    options = {k: getattr(args, k) for k in ("channels", "cells", "num_classes") if getattr(args, k) is not None}
    result = export(args.source, args.out, args.fmt, weights=args.weights, space=args.space,
                    image_size=args.image_size, **options)
    weights = f"weights from {result.weights}" if result.weights else "freshly initialised weights (seed 0)"
    print(f"nsas export: {result.space} {result.arch} ({weights}) -> {result.out} ({result.format})")
    keep = (f" ({', '.join(p.name for p in result.sidecars)} holds what {result.out.name} loads: copy them "
            "together)") if result.sidecars else ""
    print(f"wrote {len(result.files)} files: {', '.join(map(str, result.files))}{keep}")
    return 0


import nsas as _nsas  # noqa: E402

_nsas._make_callable(__name__)  # nsas.export(...) calls export() above
