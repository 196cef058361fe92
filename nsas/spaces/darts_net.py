"""Networks of the DARTS CNN space: the stand-alone network and the supernet.

``DartsNetwork`` follows DARTS's ``NetworkCIFAR`` (so published genotypes have
their published sizes: DARTS_V2 at 36 channels and 20 cells has 3,349,342
parameters without the auxiliary head). ``DartsSupernet`` follows DARTS's
search ``Network`` but is single-path: every edge holds all candidate ops and
a forward pass computes only the ops its path names.

A cell path (``arch.normal`` / ``arch.reduce``) is a tuple of 4 nodes, each a
tuple of ``(op, input)`` edges; inputs 0 and 1 are the cell's two inputs and
input ``j >= 2`` is node ``j - 2``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from nsas.errors import ArchitectureError
from nsas.spaces.darts_ops import OPS, PRIMITIVES, FactorizedReduce, Identity, ReLUConvBN, batch_norm

CellPath = Sequence[Sequence[tuple[str, int]]]
NODES = 4


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Zero whole samples with probability ``drop_prob`` and rescale the rest."""
    keep = 1.0 - drop_prob
    mask = torch.empty(x.size(0), 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x / keep * mask


def _preprocess(c_pp: int, c_p: int, c: int, reduction_prev: bool, affine: bool):
    """The two input adapters of a cell: bring both inputs to ``c`` channels and one size."""
    pre0 = FactorizedReduce(c_pp, c, affine) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0, affine)
    return pre0, ReLUConvBN(c_p, c, 1, 1, 0, affine)


def _cell_layout(cells: int):
    """Yield ``(reduction, reduction_prev, channel_multiplier)`` per cell (DARTS macro)."""
    reduction_prev, mult = False, 1
    for i in range(cells):
        reduction = i in (cells // 3, 2 * cells // 3)
        mult *= 2 if reduction else 1
        yield reduction, reduction_prev, mult
        reduction_prev = reduction


# ---------------------------------------------------------------------------
# stand-alone network
# ---------------------------------------------------------------------------
class Cell(nn.Module):
    """One cell of a fixed genotype; the output concatenates nodes 2..5."""

    def __init__(self, nodes: CellPath, c_pp: int, c_p: int, c: int, reduction: bool,
                 reduction_prev: bool):
        super().__init__()
        self.preprocess0, self.preprocess1 = _preprocess(c_pp, c_p, c, reduction_prev, True)
        # per node, the indices into self.ops / self.inputs of its edges
        self.node_edges: list[list[int]] = []
        ops, self.inputs = [], []
        for node_edges in nodes:
            self.node_edges.append(list(range(len(ops), len(ops) + len(node_edges))))
            for op, inp in node_edges:
                # in a reduction cell, ops that read the cell inputs halve the resolution
                ops.append(OPS[op](c, 2 if reduction and inp < 2 else 1, True))
                self.inputs.append(inp)
        self.ops = nn.ModuleList(ops)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]  # 2 x (B, C, H', W')
        for edges in self.node_edges:
            out = 0
            for k in edges:
                h = self.ops[k](states[self.inputs[k]])
                if self.training and drop_prob > 0 and not isinstance(self.ops[k], Identity):
                    h = drop_path(h, drop_prob)
                out = out + h
            states.append(out)
        return torch.cat(states[2:], dim=1)  # (B, 4C, H', W')


class AuxiliaryHeadCIFAR(nn.Module):
    """DARTS's auxiliary classifier; expects 8x8 feature maps (32x32 images)."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(),
            nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False),  # 8x8 -> 2x2
            nn.Conv2d(channels, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class DartsNetwork(nn.Module):
    """The stand-alone network of one genotype (DARTS's ``NetworkCIFAR``).

    Args:
        genotype: an architecture with ``normal`` and ``reduce`` cell paths.
        channels: initial channels C (the stem outputs 3C).
        cells: number of cells; reductions at ``cells // 3`` and ``2 * cells // 3``.
        num_classes: classifier outputs.
        auxiliary: add the auxiliary head after the second reduction cell.
        drop_path: initial ``drop_path_prob`` (trainers usually ramp it per epoch).
    """

    def __init__(self, genotype: Any, channels: int = 36, cells: int = 20, num_classes: int = 10,
                 auxiliary: bool = False, drop_path: float = 0.0):
        super().__init__()
        self.drop_path_prob = drop_path
        self.aux_index = 2 * cells // 3
        c_stem = 3 * channels
        self.stem = nn.Sequential(nn.Conv2d(3, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem))
        c_pp, c_p = c_stem, c_stem
        self.cells = nn.ModuleList()
        for i, (reduction, reduction_prev, mult) in enumerate(_cell_layout(cells)):
            nodes = genotype.reduce if reduction else genotype.normal
            c = channels * mult
            self.cells.append(Cell(nodes, c_pp, c_p, c, reduction, reduction_prev))
            c_pp, c_p = c_p, NODES * c
            if i == self.aux_index:
                c_aux = c_p
        self.auxiliary_head = AuxiliaryHeadCIFAR(c_aux, num_classes) if auxiliary else None
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, classes), or ``(logits, aux_logits)`` when training with the auxiliary head."""
        aux = None
        s0 = s1 = self.stem(x)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self.aux_index and self.auxiliary_head is not None and self.training:
                aux = self.auxiliary_head(s1)
        logits = self.classifier(self.global_pooling(s1).flatten(1))
        return logits if aux is None else (logits, aux)


# ---------------------------------------------------------------------------
# supernet
# ---------------------------------------------------------------------------
def _candidates(c: int, stride: int) -> nn.ModuleDict:
    """Every non-``none`` op of one edge; pools get a BN as in DARTS's search MixedOp."""
    ops = nn.ModuleDict()
    for name in PRIMITIVES[1:]:
        op = OPS[name](c, stride, False)
        ops[name] = nn.Sequential(op, batch_norm(c, False)) if "pool" in name else op
    return ops


class SearchCell(nn.Module):
    """A supernet cell: ``edges[r][op]`` is op ``op`` on the edge of alpha row ``r``."""

    def __init__(self, rows: dict[tuple[int, int], int], c_pp: int, c_p: int, c: int,
                 reduction: bool, reduction_prev: bool):
        super().__init__()
        self.rows = rows
        self.stride = 2 if reduction else 1
        self.preprocess0, self.preprocess1 = _preprocess(c_pp, c_p, c, reduction_prev, False)
        by_row = sorted(rows, key=rows.get)
        self.edges = nn.ModuleList(_candidates(c, 2 if reduction and inp < 2 else 1) for _, inp in by_row)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, nodes: CellPath,
                weights: torch.Tensor | None) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for node, node_edges in enumerate(nodes):
            out = None
            for op, inp in node_edges:
                if op == "none":  # contributes zeros: skip it
                    continue
                row = self.rows[(node, inp)]
                h = self.edges[row][op](states[inp])
                if weights is not None:
                    h = h * weights[row]  # value 1, straight-through gradient to alpha
                out = h if out is None else out + h
            if out is None:  # a node whose edges are all `none`
                out = states[1][:, :, :: self.stride, :: self.stride] * 0.0
            states.append(out)
        return torch.cat(states[2:], dim=1)


class DartsSupernet(nn.Module):
    """Single-path weight-sharing network of a DARTS cell space.

    Args:
        space: name of the space whose paths it accepts (``darts`` or ``darts-chain``).
        edges: the ``(node, input)`` edges of a cell in alpha-row order.
        channels: initial channels C (the stem outputs 3C).
        cells: number of cells; reductions at ``cells // 3`` and ``2 * cells // 3``.
        num_classes: classifier outputs.
    """

    def __init__(self, space: str, edges: Sequence[tuple[int, int]], channels: int = 16,
                 cells: int = 8, num_classes: int = 10):
        super().__init__()
        self.space = space
        self.rows = {edge: r for r, edge in enumerate(edges)}
        c_stem = 3 * channels
        self.stem = nn.Sequential(nn.Conv2d(3, c_stem, 3, padding=1, bias=False), batch_norm(c_stem, False))
        c_pp, c_p = c_stem, c_stem
        self.cells = nn.ModuleList()
        self.reductions: list[bool] = []
        for reduction, reduction_prev, mult in _cell_layout(cells):
            c = channels * mult
            self.cells.append(SearchCell(self.rows, c_pp, c_p, c, reduction, reduction_prev))
            self.reductions.append(reduction)
            c_pp, c_p = c_p, NODES * c
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)

    def check_path(self, path: Any) -> None:
        """Raise ArchitectureError unless ``path`` is a valid path of this supernet."""
        if getattr(path, "space", None) != self.space:
            raise ArchitectureError(
                f"{str(path)[:60]!r} is not a path of space {self.space!r} (the supernet's space)"
            )
        for cell in ("normal", "reduce"):
            nodes = getattr(path, cell)
            if len(nodes) != NODES:
                raise ArchitectureError(f"{cell} cell of the path has {len(nodes)} nodes, expected {NODES}")
            for node, node_edges in enumerate(nodes):
                for op, inp in node_edges:
                    if op not in OPS:
                        raise ArchitectureError(f"unknown op {op!r} in the path's {cell} cell, node {node}")
                    if (node, inp) not in self.rows:
                        raise ArchitectureError(
                            f"input {inp} of {cell} cell node {node} is not an edge of the "
                            f"{self.space!r} supernet"
                        )

    def forward(self, x: torch.Tensor, path: Any,
                edge_weights: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """Logits (B, classes) of ``path`` (a genotype or a DartsPath of this space).

        ``edge_weights``: GDAS only, ``[normal (R,), reduce (R,)]`` multipliers by alpha row.
        """
        self.check_path(path)
        if edge_weights is not None and len(edge_weights) != 2:
            raise ArchitectureError(f"edge_weights needs 2 tensors (normal, reduce), got {len(edge_weights)}")
        s0 = s1 = self.stem(x)
        for cell, reduction in zip(self.cells, self.reductions):
            nodes = path.reduce if reduction else path.normal
            weights = None if edge_weights is None else edge_weights[int(reduction)]
            s0, s1 = s1, cell(s0, s1, nodes, weights)
        return self.classifier(self.global_pooling(s1).flatten(1))
