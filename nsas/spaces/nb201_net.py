"""NAS-Bench-201 networks: the stand-alone network of one cell and the supernet.

Macro structure (NAS-Bench-201, Fig. 1), for C channels and N cells per stage::

    stem: conv3x3(3, C) + BN
    N cells at C   -> ResNet block (stride 2) -> N cells at 2C
                   -> ResNet block (stride 2) -> N cells at 4C
    head: BN + ReLU, global average pool, linear

Every cell of a network shares one architecture (NAS-Bench-201 searches a
single cell). The stand-alone network uses affine BatchNorm with running
statistics, as NAS-Bench-201 trained it. The supernet holds every candidate
op on every edge and computes only the ops named by the path it is given;
its BatchNorms never keep running statistics (current-batch statistics in
training and evaluation alike), and those inside cells are not affine.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nsas.errors import ArchitectureError
from nsas.spaces.nb201_arch import EDGES, NUM_EDGES, OPS, NB201Arch


class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv (no bias: the BatchNorm right after removes it) -> BN."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, *,
                 affine: bool = True, track: bool = True) -> None:
        super().__init__(
            nn.ReLU(inplace=False),  # inplace would clobber a node other edges still read
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out, affine=affine, track_running_stats=track),
        )


def make_op(name: str, channels: int, *, affine: bool = True, track: bool = True) -> nn.Module:
    """One cell op at ``channels`` channels (stride 1, shape-preserving); never ``none``."""
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, affine=affine, track=track)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, affine=affine, track=track)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ArchitectureError(f"no module for op {name!r}")


class ResNetBasicBlock(nn.Module):
    """NAS-Bench-201's reduction: two ReLUConvBN (the first strided) plus an
    AvgPool2d(2) + conv1x1 shortcut. (B, c_in, H, W) -> (B, c_out, H/2, W/2)."""

    def __init__(self, c_in: int, c_out: int, *, track: bool = True) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride=2, track=track)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, track=track)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
            nn.Conv2d(c_in, c_out, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


def cell_forward(
    x: torch.Tensor, edges: Sequence[nn.Module | None], weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Run one cell: node j = sum over i < j of edge_{j<-i}(node i); returns node 3.

    Args:
        x: the cell input (node 0), (B, C, H, W).
        edges: the module of each edge in ``EDGES`` order; ``None`` for ``none``,
            which is skipped (it would add zeros).
        weights: optional (6,) tensor; edge e's output is scaled by ``weights[e]``.

    Returns:
        Node 3, (B, C, H, W); zeros if every path into it is ``none``.
    """
    nodes = [x]
    for j in range(1, 4):
        total = None
        for e, (target, i) in enumerate(EDGES):
            if target != j or edges[e] is None:
                continue
            y = edges[e](nodes[i])
            if weights is not None:
                y = y * weights[e]
            total = y if total is None else total + y
        nodes.append(torch.zeros_like(x) if total is None else total)
    return nodes[-1]


class _TinyNetwork(nn.Module):
    """Stem, reductions and head shared by both networks; subclasses add the cells."""

    def __init__(self, channels: int, cells: int, num_classes: int, *, track: bool) -> None:
        super().__init__()
        for key, value in (("channels", channels), ("cells", cells), ("num_classes", num_classes)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ArchitectureError(f"nb201 option {key}={value!r} must be a positive integer")
        self.widths = (channels, 2 * channels, 4 * channels)
        self.stem = nn.Sequential(
            nn.Conv2d(3, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels, track_running_stats=track),
        )
        self.reductions = nn.ModuleList(
            ResNetBasicBlock(c_in, c_out, track=track) for c_in, c_out in zip(self.widths, self.widths[1:])
        )
        self.head = nn.Sequential(
            nn.BatchNorm2d(self.widths[-1], track_running_stats=track),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(self.widths[-1], num_classes),
        )


class InferCell(nn.Module):
    """A stand-alone cell: one op per edge, ``none`` edges hold no module."""

    def __init__(self, arch: NB201Arch, channels: int) -> None:
        super().__init__()
        # Keys e0..e5 follow EDGES; a missing key is a `none` edge.
        self.edges = nn.ModuleDict(
            {f"e{e}": make_op(op, channels) for e, op in enumerate(arch.ops) if op != "none"}
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        edges = [self.edges[f"e{e}"] if f"e{e}" in self.edges else None for e in range(NUM_EDGES)]
        return cell_forward(x, edges)


class NB201Network(_TinyNetwork):
    """The stand-alone NAS-Bench-201 network of one architecture.

    Args:
        arch: the cell used everywhere.
        channels: first-stage channels C (stages use C, 2C, 4C).
        cells: cells per stage (N).
        num_classes: classifier outputs.
    """

    def __init__(self, arch: NB201Arch, *, channels: int = 16, cells: int = 5, num_classes: int = 10) -> None:
        super().__init__(channels, cells, num_classes, track=True)
        if not isinstance(arch, NB201Arch):
            raise ArchitectureError(f"{arch!r} is not a NAS-Bench-201 architecture")
        self.arch = arch
        self.stages = nn.ModuleList(
            nn.Sequential(*(InferCell(arch, c) for _ in range(cells))) for c in self.widths
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) images -> (B, num_classes) logits."""
        x = self.stem(x)
        for s, stage in enumerate(self.stages):
            if s:
                x = self.reductions[s - 1](x)
            x = stage(x)
        return self.head(x)


class SearchCell(nn.Module):
    """A supernet cell: every non-``none`` op on every edge, each with its own weights."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        # edges[e][op]: BatchNorm without affine or running statistics (shared
        # running statistics would mix the distributions of different paths).
        self.edges = nn.ModuleList(
            nn.ModuleDict(
                {op: make_op(op, channels, affine=False, track=False) for op in OPS if op != "none"}
            )
            for _ in range(NUM_EDGES)
        )

    def forward(
        self, x: torch.Tensor, ops: Sequence[str], weights: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W), computing only the ops named in ``ops``."""
        edges = [None if op == "none" else self.edges[e][op] for e, op in enumerate(ops)]
        return cell_forward(x, edges, weights)


class NB201Supernet(_TinyNetwork):
    """The weight-sharing supernet; ``forward(x, path)`` computes only ``path``'s ops.

    Args:
        channels: first-stage channels C (stages use C, 2C, 4C).
        cells: cells per stage (N).
        num_classes: classifier outputs.
    """

    def __init__(self, *, channels: int = 16, cells: int = 5, num_classes: int = 10) -> None:
        super().__init__(channels, cells, num_classes, track=False)
        self.stages = nn.ModuleList(
            nn.ModuleList(SearchCell(c) for _ in range(cells)) for c in self.widths
        )

    def forward(
        self, x: torch.Tensor, path: NB201Arch, edge_weights: Sequence[torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Logits of the single path ``path``.

        Args:
            x: images, (B, 3, H, W).
            path: the architecture whose ops run (the same cell in every stage).
            edge_weights: GDAS only: ``[w]`` with ``w`` of shape (6,); the op
                chosen on edge e has its output multiplied by ``w[e]``.

        Returns:
            Logits, (B, num_classes).
        """
        if not isinstance(path, NB201Arch):
            raise ArchitectureError(f"the nb201 supernet needs an NB201Arch path, got {path!r}")
        weights = None
        if edge_weights is not None:
            if len(edge_weights) != 1 or tuple(edge_weights[0].shape) != (NUM_EDGES,):
                shapes = [tuple(w.shape) for w in edge_weights]
                raise ArchitectureError(f"nb201 edge_weights must be one ({NUM_EDGES},) tensor, got {shapes}")
            weights = edge_weights[0]
        x = self.stem(x)
        for s, stage in enumerate(self.stages):
            if s:
                x = self.reductions[s - 1](x)
            for cell in stage:
                x = cell(x, path.ops, weights)
        return self.head(x)
