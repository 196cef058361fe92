"""The DARTS CNN search space (``darts``) and its chain variant (``darts-chain``).

A cell has two inputs (0, 1: the two previous cells) and 4 nodes; node ``i``
(0-based) sums two edges ``(op, input)`` with distinct inputs in ``0..i+1``
(input ``j >= 2`` is node ``j - 2``); the cell output concatenates the 4 nodes
(DARTS's ``concat=[2, 3, 4, 5]``). A genotype has a normal and a reduction
cell. In ``darts-chain`` node ``i`` reads exactly inputs 0 and ``i + 1`` (the
topology of the published NSAS-C genotypes), so only the ops vary.

The canonical string is DARTS's, edges sorted by ``(input, op)`` inside a
node::

    Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ...], normal_concat=[2, 3, 4, 5],
             reduce=[...], reduce_concat=[2, 3, 4, 5])
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from math import comb
from typing import Any, ClassVar

import torch
from torch import nn

from nsas.errors import ArchitectureError, brief
from nsas.spaces import register_space
from nsas.spaces.base import Architecture, SearchSpace
from nsas.spaces.darts_net import DartsNetwork, DartsSupernet
from nsas.spaces.darts_ops import PRIMITIVES
from nsas.spaces.genotype_text import GenotypeText, Token

NODES = 4
CONCAT = (2, 3, 4, 5)
CELLS = ("normal", "reduce")
# (node, input) of each alpha row, in DARTS's edge order
DARTS_EDGES: tuple[tuple[int, int], ...] = tuple((i, j) for i in range(NODES) for j in range(i + 2))
CHAIN_EDGES: tuple[tuple[int, int], ...] = tuple((i, j) for i in range(NODES) for j in (0, i + 1))

Edge = tuple[str, int]  # (op, input)
CellNodes = tuple[tuple[Edge, ...], ...]  # 4 nodes, each a tuple of edges


# ---------------------------------------------------------------------------
# architecture values
# ---------------------------------------------------------------------------
def _flat(cell: Any) -> list:
    """Accept a flat DARTS list of 8 edges or 4 nodes of edges; return the flat list."""
    cell = list(cell)
    if cell and isinstance(cell[0], (tuple, list)) and cell[0] and isinstance(cell[0][0], (tuple, list)):
        return [edge for node in cell for edge in node]
    return cell


def _check_cell(pairs: Sequence, cell: str, chain: bool, locs: Sequence[str] | None = None,
                at: str | None = None) -> CellNodes:
    """Validate one cell's 8 ``(op, input)`` edges; return its canonical nodes.

    ``locs`` and ``at`` (from the parser) give the line and column of each
    edge and of the cell for messages.
    """
    if len(pairs) != 2 * NODES:
        where = f" at {at}" if at else ""
        raise ArchitectureError(
            f"{cell!r} cell{where} has {len(pairs)} edges, expected {2 * NODES} (2 per node, {NODES} nodes)"
        )
    nodes: list[list[Edge]] = [[] for _ in range(NODES)]
    for k, pair in enumerate(pairs):
        node = k // 2
        where = f"{cell}[{k}] (node {node}, edge {k % 2})" + (f" at {locs[k]}" if locs else "")
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ArchitectureError(f"edge {brief(pair)} at {where} is not an (op, input) pair")
        op, inp = pair
        if op not in PRIMITIVES:
            raise ArchitectureError(f"unknown op {brief(op)} at {where}; expected one of {', '.join(PRIMITIVES)}")
        if not isinstance(inp, int) or isinstance(inp, bool) or not 0 <= inp <= node + 1:
            raise ArchitectureError(
                f"input {brief(inp, 40)} at {where} is out of range: node {node} takes inputs 0..{node + 1}"
            )
        if any(inp == j for _, j in nodes[node]):
            raise ArchitectureError(f"input {inp} appears twice in {cell} node {node} (second at {where})")
        if chain and inp not in (0, node + 1):
            raise ArchitectureError(
                f"input {inp} at {where} breaks the chain: node {node} takes inputs 0 and {node + 1}"
            )
        nodes[node].append((op, inp))
    return tuple(tuple(sorted(n, key=lambda e: (e[1], e[0]))) for n in nodes)


@dataclasses.dataclass(frozen=True)
class DartsGenotype(Architecture):
    """A DARTS CNN genotype: normal and reduction cells of 4 nodes x 2 ``(op, input)`` edges.

    Construct from DARTS's flat lists (8 edges per cell) or from 4 nodes of 2
    edges; edges are stored sorted by ``(input, op)``, so the order they were
    written in does not matter for equality.
    """

    normal: CellNodes
    reduce: CellNodes

    space: ClassVar[str] = "darts"
    chain: ClassVar[bool] = False

    def __post_init__(self) -> None:
        for cell in CELLS:
            nodes = _check_cell(_flat(getattr(self, cell)), cell, self.chain)
            object.__setattr__(self, cell, nodes)

    def edges(self, cell: str) -> list[Edge]:
        """The 8 edges of ``cell`` ("normal" or "reduce") in canonical order."""
        return [edge for node in getattr(self, cell) for edge in node]

    def to_str(self) -> str:
        parts = []
        for cell in CELLS:
            edges = ", ".join(f"({op!r}, {inp})" for op, inp in self.edges(cell))
            parts.append(f"{cell}=[{edges}], {cell}_concat={list(CONCAT)}")
        return f"Genotype({', '.join(parts)})"

    def to_json(self) -> dict[str, list[list]]:
        return {cell: [[op, inp] for op, inp in self.edges(cell)] for cell in CELLS}


@dataclasses.dataclass(frozen=True)
class ChainGenotype(DartsGenotype):
    """A ``darts-chain`` genotype: node ``i`` reads exactly inputs 0 and ``i + 1``."""

    space: ClassVar[str] = "darts-chain"
    chain: ClassVar[bool] = True


@dataclasses.dataclass(frozen=True)
class DartsPath:
    """What a supernet computes for one GDAS sample: any number of edges per node.

    ``normal`` and ``reduce`` are 4 nodes, each a tuple of ``(op, input)``
    edges (``none`` edges are skipped by the supernet). ``space`` names the
    space whose supernet accepts it.
    """

    normal: CellNodes
    reduce: CellNodes
    space: str = "darts"


# ---------------------------------------------------------------------------
# parsing (nsas.spaces.genotype_text: one tokenizer and grammar for both DARTS spaces, no eval)
# ---------------------------------------------------------------------------
FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")


class _Where:
    """``line L, column C`` of an offset, worked out only if a message shows it (linear parsing of long input)."""

    __slots__ = ("parser", "pos")

    def __init__(self, parser: GenotypeText, pos: int) -> None:
        self.parser, self.pos = parser, pos

    def __str__(self) -> str:
        return self.parser.where(self.pos)


def _field(parser: GenotypeText, name: str, tok: Token) -> Any:
    """A cell's ``[(op, input), ...]`` (its position, and (op, input, position) per edge), or a checked concat."""
    if name.endswith("_concat"):
        values, start = parser.int_list("a concat list")
        if tuple(values) != CONCAT:
            raise parser.error(f"{name} {values} is not supported: the cell output is always the concat of "
                               f"nodes {list(CONCAT)}", start)
        return None

    def edge() -> tuple[str, int, _Where]:
        op, inp, _ = parser.pair("")
        return op[1][1:-1], inp, _Where(parser, op[2])

    close = parser.open("'[' starting the cell's (op, input) pairs")
    return _Where(parser, tok[2]), parser.items(edge, close)


def _parse(text: str, cls: type[DartsGenotype]) -> DartsGenotype:
    space = "darts-chain" if cls.chain else "darts"
    if not isinstance(text, str):
        raise ArchitectureError(f"expected a {space} genotype string, got {type(text).__name__}")
    parser = GenotypeText(text, space)
    fields = parser.genotype(FIELDS, lambda name, tok: _field(parser, name, tok), FIELDS)
    cells = {}
    for cell in CELLS:
        at, edges = fields[cell]
        pairs = [(op, inp) for op, inp, _ in edges]
        cells[cell] = _check_cell(pairs, cell, cls.chain, [loc for _, _, loc in edges], at)
    return cls(**cells)


# ---------------------------------------------------------------------------
# the spaces
# ---------------------------------------------------------------------------
class _DartsCellSpace(SearchSpace):
    """What ``darts`` and ``darts-chain`` share; they differ only in their cell edges."""

    ops = PRIMITIVES
    kind = "image"
    genotype_cls: ClassVar[type[DartsGenotype]]
    edges: ClassVar[tuple[tuple[int, int], ...]]  # (node, input) per alpha row

    # ---- architectures -------------------------------------------------
    def parse(self, text: str) -> DartsGenotype:
        return _parse(text, self.genotype_cls)

    def from_json(self, obj: Any) -> DartsGenotype:
        if not isinstance(obj, dict) or set(obj) != set(CELLS):
            raise ArchitectureError(f"expected {{'normal': [...], 'reduce': [...]}}, got {brief(obj, 60)}")
        for cell in CELLS:
            if not isinstance(obj[cell], list):
                raise ArchitectureError(f"{cell!r} must be a list of [op, input] pairs, got {brief(obj[cell], 60)}")
        return self.genotype_cls(normal=obj["normal"], reduce=obj["reduce"])

    def _inputs(self, node: int) -> list[int]:
        return [inp for n, inp in self.edges if n == node]

    def sample(self, rng: random.Random) -> DartsGenotype:
        """Per node 2 distinct inputs and an op for each, uniformly.

        Ops are drawn from the 7 non-``none`` ops: a genotype derived by DARTS
        never holds ``none`` (``parse`` still accepts it).
        """
        cells = {}
        for cell in CELLS:
            cells[cell] = tuple(
                tuple((rng.choice(PRIMITIVES[1:]), inp) for inp in rng.sample(self._inputs(node), 2))
                for node in range(NODES)
            )
        return self.genotype_cls(**cells)

    def size(self) -> int:
        ops = len(PRIMITIVES) - 1
        per_cell = 1
        for node in range(NODES):
            per_cell *= comb(len(self._inputs(node)), 2) * ops**2
        return per_cell**2

    def distance(self, a: Architecture, b: Architecture) -> float:
        """Mean over the two cells of the fraction of a's edges with no equal (input, op) in b's node."""
        a, b = self.coerce(a), self.coerce(b)
        total = 0.0
        for cell in CELLS:
            matched = sum(e in nb for na, nb in zip(getattr(a, cell), getattr(b, cell)) for e in na)
            total += 1.0 - matched / (2 * NODES)
        return total / len(CELLS)

    # ---- networks ------------------------------------------------------
    def build_network(self, arch: Architecture | str, *, channels: int = 36, cells: int = 20,
                      num_classes: int = 10, auxiliary: bool = False, drop_path: float = 0.0) -> nn.Module:
        """DARTS's evaluation network (``NetworkCIFAR``) of ``arch``."""
        return DartsNetwork(self.coerce(arch), channels, cells, num_classes, auxiliary, drop_path)

    def build_supernet(self, *, channels: int = 16, cells: int = 8, num_classes: int = 10) -> nn.Module:
        """Single-path supernet holding every op on each of the space's edges."""
        return DartsSupernet(self.name, self.edges, channels, cells, num_classes)

    # ---- GDAS ----------------------------------------------------------
    def gdas_alpha_shapes(self) -> list[tuple[int, int]]:
        """``[normal, reduce]``, each (edges, ops); rows follow ``edges``, columns ``PRIMITIVES``."""
        return [(len(self.edges), len(PRIMITIVES))] * 2

    def _check_tables(self, tables: Sequence[torch.Tensor], what: str, cols: bool) -> list[list]:
        shape = (len(self.edges), len(PRIMITIVES)) if cols else (len(self.edges),)
        if len(tables) != 2 or any(tuple(t.shape) != shape for t in tables):
            got = [tuple(t.shape) for t in tables]
            raise ArchitectureError(
                f"GDAS {what} must be 2 tensors of shape {shape} (normal, reduce), got {got}"
            )
        return [t.detach().tolist() for t in tables]

    def _top2(self, scores: list[tuple[tuple, int]]) -> CellNodes:
        """Per node, the 2 rows with the smallest sort key, each with its op index."""
        nodes = []
        for node in range(NODES):
            rows = sorted((r for r, (n, _) in enumerate(self.edges) if n == node), key=lambda r: scores[r][0])
            nodes.append(tuple((PRIMITIVES[scores[r][1]], self.edges[r][1]) for r in rows[:2]))
        return tuple(nodes)

    def gdas_decode(self, choices: Sequence[torch.Tensor],
                    probs: Sequence[torch.Tensor]) -> tuple[DartsPath, DartsGenotype]:
        """The sampled ops as a DartsPath, and the genotype derived from them.

        Derived cell: per node the 2 rows whose chosen op is not ``none``, with
        the highest probability of their chosen op; missing ones are filled
        with the other rows' strongest non-``none`` op (by ``probs``).
        """
        choices_l = self._check_tables(choices, "choices", cols=False)
        probs_l = self._check_tables(probs, "probs", cols=True)
        path, derived = {}, {}
        for cell, choice, prob in zip(CELLS, choices_l, probs_l):
            path[cell] = tuple(
                tuple((PRIMITIVES[choice[r]], inp) for r, (n, inp) in enumerate(self.edges)
                      if n == node and choice[r] != 0)
                for node in range(NODES)
            )
            scores = []
            for r, c in enumerate(choice):
                best = _best_op(prob[r])
                scores.append(((0, -prob[r][c]), c) if c != 0 else ((1, -prob[r][best]), best))
            derived[cell] = self._top2(scores)
        return DartsPath(space=self.name, **path), self.genotype_cls(**derived)

    def gdas_final(self, alphas: Sequence[torch.Tensor]) -> DartsGenotype:
        """DARTS's derivation: per node the top-2 edges by their strongest non-``none`` softmax weight."""
        softmax = [torch.softmax(a.detach().float(), dim=-1) for a in alphas]
        tables = self._check_tables(softmax, "alphas", cols=True)
        cells = {}
        for cell, weights in zip(CELLS, tables):
            best = [_best_op(w) for w in weights]
            cells[cell] = self._top2([((-w[k],), k) for w, k in zip(weights, best)])
        return self.genotype_cls(**cells)


def _best_op(row: Sequence[float]) -> int:
    """Index of the strongest non-``none`` op of one alpha row (first on ties)."""
    return max(range(1, len(row)), key=lambda k: (row[k], -k))


@register_space
class DartsSpace(_DartsCellSpace):
    """The DARTS CNN cell space: node ``i`` picks 2 of inputs ``0..i+1``."""

    name = "darts"
    genotype_cls = DartsGenotype
    edges = DARTS_EDGES


@register_space
class DartsChainSpace(_DartsCellSpace):
    """The chain variant: node ``i`` reads inputs 0 and ``i + 1``; only ops vary.

    Its distance (the shared edge-matching rule) reduces to the fraction of
    the 16 edges whose op differs, as the inputs are fixed.
    """

    name = "darts-chain"
    genotype_cls = ChainGenotype
    edges = CHAIN_EDGES
