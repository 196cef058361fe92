"""NAS-Bench-201 architectures: the 5 ops, the 6 edges and the frozen cell (:class:`NB201Arch`).

The space (:mod:`nsas.spaces.nb201`) and the networks (:mod:`nsas.spaces.nb201_net`)
both build on this module, so ``nb201 -> nb201_net -> nb201_arch`` is a line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from nsas.errors import ArchitectureError
from nsas.spaces.base import Architecture

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NUM_NODES = 4  # node 0 = cell input, node 3 = cell output
# (target node, input node) of each edge, in NAS-Bench-201 order.
EDGES: tuple[tuple[int, int], ...] = tuple((j, i) for j in range(1, NUM_NODES) for i in range(j))
NUM_EDGES = len(EDGES)  # 6


@dataclass(frozen=True)
class NB201Arch(Architecture):
    """One NAS-Bench-201 cell: the op on each of the 6 edges, in ``EDGES`` order."""

    ops: tuple[str, ...]
    space: ClassVar[str] = "nb201"

    def __post_init__(self) -> None:
        # A tuple keeps the value hashable even when built from a list.
        object.__setattr__(self, "ops", tuple(self.ops))
        if len(self.ops) != NUM_EDGES:
            raise ArchitectureError(
                f"a NAS-Bench-201 cell has {NUM_EDGES} edges, got {len(self.ops)} ops: {self.ops!r}"
            )
        for e, op in enumerate(self.ops):
            if op not in OPS:
                j, i = EDGES[e]
                raise ArchitectureError(
                    f"unknown op {op!r} on edge {e} ({j}<-{i}); choose one of {', '.join(OPS)}"
                )

    def to_str(self) -> str:
        nodes = []
        for j in range(1, NUM_NODES):
            tokens = [f"{self.ops[_edge_index(j, i)]}~{i}" for i in range(j)]
            nodes.append("|" + "|".join(tokens) + "|")
        return "+".join(nodes)

    def to_json(self) -> list[str]:
        return list(self.ops)


def _edge_index(j: int, i: int) -> int:
    """Position in ``EDGES`` of the edge from node ``i`` into node ``j``."""
    return j * (j - 1) // 2 + i
