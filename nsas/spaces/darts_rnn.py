"""The DARTS recurrent search space (``darts-rnn``), for language modelling on PTB.

An architecture is 8 nodes, each one ``(op, input)``: node i (1..8) applies
``op`` to the state of node ``input`` in 0..i-1 (state 0 is the cell's initial
state, computed from x_t and h_{t-1}); the cell's output is the mean of nodes
1..8. The canonical string is DARTS's own::

    Genotype(recurrent=[('sigmoid', 0), ('relu', 1), ('relu', 1), ('identity', 1),
    ('tanh', 2), ('sigmoid', 5), ('tanh', 3), ('relu', 5)], concat=range(1, 9))

GDAS: one alpha matrix per node; node i's is (1, 4 i), its columns enumerate
``(input j, op)`` pairs input-major: column ``4 j + k`` is input j with the k-th
non-``none`` op of ``("tanh", "relu", "sigmoid", "identity")``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any, ClassVar

import torch

from nsas.errors import ArchitectureError, brief, shorten
from nsas.spaces import register_space
from nsas.spaces.base import Architecture, SearchSpace
from nsas.spaces.darts_rnn_arch import CONCAT, NODES, OPS, SAMPLED_OPS, RnnGenotype  # noqa: F401 (importable here)
from nsas.spaces.darts_rnn_net import RNNModel, RNNSupernet
from nsas.spaces.genotype_text import GenotypeText, Token

# ---------------------------------------------------------------- parsing
# nsas.spaces.genotype_text: one tokenizer and grammar for both DARTS spaces, no eval
def _recurrent(parser: GenotypeText, start: Token) -> tuple[tuple[str, int], ...]:
    """``[('op', input), ...]``: the 8 nodes, each op known and each input an earlier node."""

    def node() -> tuple[str, int]:
        i = len(nodes) + 1
        op_tok, j, j_tok = parser.pair(f" (node {i})")
        op = op_tok[1][1:-1]
        if op not in OPS:
            raise parser.error(f"node {i}: unknown op {shorten(repr(op), 60)}, expected one of {', '.join(OPS)}",
                               op_tok)
        if not 0 <= j < i:
            raise parser.error(f"node {i}: input {j} out of range 0..{i - 1}", j_tok)
        nodes.append((op, j))
        return op, j

    nodes: list[tuple[str, int]] = []
    parser.items(node, parser.open("'[' starting the nodes"))
    if len(nodes) != NODES:
        raise parser.error(f"expected {NODES} nodes in 'recurrent', got {len(nodes)}", start)
    return tuple(nodes)


def _concat(parser: GenotypeText) -> tuple[int, ...]:
    """``range(1, 9)`` or the list of the nodes 1..8 in order (the cell's output is their mean)."""
    values, start = parser.int_list(f"concat=range(1, {NODES + 1}) or a list")
    if tuple(values) != CONCAT:
        shown = shorten(str(values), 60)
        raise parser.error(f"concat must be the nodes 1..{NODES} in order (range(1, {NODES + 1})), got {shown}",
                           start)
    return CONCAT


def _parse(text: str) -> RnnGenotype:
    parser = GenotypeText(text, "darts-rnn")
    fields = parser.genotype(("recurrent", "concat"),
                             lambda name, tok: _recurrent(parser, tok) if name == "recurrent" else _concat(parser),
                             ("recurrent",))
    return RnnGenotype(fields["recurrent"])


# ---------------------------------------------------------------- the space
@register_space
class DartsRnnSpace(SearchSpace):
    """DARTS's recurrent cell space: 8 nodes, each picks an input and an activation."""

    name: ClassVar[str] = "darts-rnn"
    ops: ClassVar[tuple[str, ...]] = OPS
    kind: ClassVar[str] = "text"

    def parse(self, text: str) -> RnnGenotype:
        if not isinstance(text, str):
            raise ArchitectureError(f"expected a darts-rnn genotype string, got {type(text).__name__}")
        return _parse(text)

    def from_json(self, obj: Any) -> RnnGenotype:
        if not isinstance(obj, dict) or not isinstance(obj.get("recurrent"), list):
            raise ArchitectureError(f"expected {{'recurrent': [[op, input], ...]}}, got {brief(obj, 80)}")
        if obj.get("concat", list(CONCAT)) != list(CONCAT):
            raise ArchitectureError(f"concat must be {list(CONCAT)}, got {brief(obj['concat'], 60)}")
        for i, pair in enumerate(obj["recurrent"], start=1):
            ok = isinstance(pair, (list, tuple)) and len(pair) == 2
            if not (ok and isinstance(pair[0], str) and type(pair[1]) is int):
                raise ArchitectureError(f"node {i}: expected [op, input], got {brief(pair, 60)}")
        return RnnGenotype(tuple((op, j) for op, j in obj["recurrent"]))

    def sample(self, rng: random.Random) -> RnnGenotype:
        nodes = []
        for i in range(1, NODES + 1):
            j = rng.randrange(i)
            nodes.append((rng.choice(SAMPLED_OPS), j))
        return RnnGenotype(tuple(nodes))

    def size(self) -> int:
        return math.prod(i * len(SAMPLED_OPS) for i in range(1, NODES + 1))

    def distance(self, a: Architecture, b: Architecture) -> float:
        """Fraction of the 8 nodes whose ``(op, input)`` differ (docs/METHOD.md §5)."""
        a, b = self.coerce(a), self.coerce(b)
        return sum(x != y for x, y in zip(a.recurrent, b.recurrent)) / NODES

    # ---- networks ------------------------------------------------------
    def build_network(self, arch: Architecture | str, **options: Any) -> RNNModel:
        """The stand-alone language model of ``arch``; ``options`` as :class:`RNNModel`
        (vocab, hidden, dropout, dropouth, dropoutx, dropouti, dropoute; DARTS evaluation defaults)."""
        return RNNModel(self.coerce(arch), **options)

    def build_supernet(self, **options: Any) -> RNNSupernet:
        """The weight-sharing supernet; ``options`` as :class:`RNNSupernet` (DARTS search defaults)."""
        return RNNSupernet(**options)

    # ---- GDAS ----------------------------------------------------------
    def gdas_alpha_shapes(self) -> list[tuple[int, int]]:
        """Node i (1..8) has one row of ``4 i`` columns: ``(input j, op k)`` at ``4 j + k``."""
        return [(1, i * len(SAMPLED_OPS)) for i in range(1, NODES + 1)]

    def gdas_decode(
        self, choices: Sequence[torch.Tensor], probs: Sequence[torch.Tensor]
    ) -> tuple[RnnGenotype, RnnGenotype]:
        """One sampled ``(input, op)`` per node is already a genotype: path == architecture."""
        if len(choices) != NODES:
            raise ArchitectureError(f"expected {NODES} choice tensors, got {len(choices)}")
        nodes = (self._column(i, int(c.reshape(-1)[0])) for i, c in enumerate(choices, start=1))
        arch = RnnGenotype(tuple(nodes))
        return arch, arch

    def gdas_final(self, alphas: Sequence[torch.Tensor]) -> RnnGenotype:
        """Per node, the ``(input, op)`` of the largest logit."""
        if len(alphas) != NODES:
            raise ArchitectureError(f"expected {NODES} alpha matrices, got {len(alphas)}")
        nodes = (self._column(i, int(a.reshape(-1).argmax())) for i, a in enumerate(alphas, start=1))
        return RnnGenotype(tuple(nodes))

    @staticmethod
    def _column(node: int, col: int) -> tuple[str, int]:
        """Column ``col`` of node ``node``'s alpha row -> ``(op, input)``."""
        if not 0 <= col < node * len(SAMPLED_OPS):
            raise ArchitectureError(f"node {node}: GDAS column {col} out of range 0..{node * 4 - 1}")
        j, k = divmod(col, len(SAMPLED_OPS))
        return SAMPLED_OPS[k], j
