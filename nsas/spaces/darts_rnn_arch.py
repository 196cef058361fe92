"""DARTS recurrent cells: the ops, the 8 nodes and the frozen genotype (:class:`RnnGenotype`).

The space (:mod:`nsas.spaces.darts_rnn`) and the networks (:mod:`nsas.spaces.darts_rnn_net`)
both build on this module, so ``darts_rnn -> darts_rnn_net -> darts_rnn_arch`` is a line (as nb201's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from nsas.errors import ArchitectureError, shorten
from nsas.spaces.base import Architecture

NODES = 8  # intermediate nodes of the cell; node 0 is the cell's input state
OPS = ("none", "tanh", "relu", "sigmoid", "identity")
SAMPLED_OPS = OPS[1:]  # sampling and GDAS never pick "none"
CONCAT = tuple(range(1, NODES + 1))


@dataclass(frozen=True)
class RnnGenotype(Architecture):
    """A DARTS recurrent cell: ``recurrent[i - 1] = (op, input)`` of node i."""

    recurrent: tuple[tuple[str, int], ...]
    space: ClassVar[str] = "darts-rnn"

    def __post_init__(self) -> None:
        nodes = tuple((str(op), int(j)) for op, j in self.recurrent)
        object.__setattr__(self, "recurrent", nodes)
        if len(nodes) != NODES:
            raise ArchitectureError(f"a darts-rnn genotype has {NODES} nodes, got {len(nodes)}")
        for i, (op, j) in enumerate(nodes, start=1):
            if op not in OPS:
                raise ArchitectureError(f"node {i}: unknown op {shorten(repr(op), 60)}; expected one of {', '.join(OPS)}")
            if not 0 <= j < i:
                raise ArchitectureError(f"node {i}: input {j} out of range 0..{i - 1}")

    def to_str(self) -> str:
        nodes = ", ".join(f"('{op}', {j})" for op, j in self.recurrent)
        return f"Genotype(recurrent=[{nodes}], concat=range(1, {NODES + 1}))"

    def to_json(self) -> Any:
        return {"recurrent": [[op, j] for op, j in self.recurrent], "concat": list(CONCAT)}
