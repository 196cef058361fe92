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
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from nsas.errors import ArchitectureError, brief, shorten
from nsas.spaces import register_space
from nsas.spaces.base import Architecture, SearchSpace
from nsas.spaces.darts_rnn_net import NODES, RNNModel, RNNSupernet

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


# ---------------------------------------------------------------- parsing
MAX_DIGITS = 6  # an index written with more digits is refused before it is converted
_TOKEN = re.compile(  # ASCII digits and names only (as darts): int() would read other scripts' digits ('\u0665' == 5)
    r"\s*(?:(?P<str>'[^'\n]*'|\"[^\"\n]*\")|(?P<int>[-+]?[0-9]+)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<punct>[()\[\],=])|(?P<bad>\S))"
)


class _Parser:
    """Recursive descent over ``[NAME =] Genotype(recurrent=[...], concat=...)``."""

    def __init__(self, text: str) -> None:
        self.toks: list[tuple[str, str, int]] = []  # (kind, text, position)
        pos = 0
        while (m := _TOKEN.match(text, pos)) and m.lastgroup:
            self.toks.append((m.lastgroup, m.group(m.lastgroup), m.start(m.lastgroup)))
            pos = m.end()
        self.toks.append(("end", "<end of text>", len(text.rstrip())))
        self.i = 0

    def fail(self, what: str, tok: tuple[str, str, int] | None = None) -> ArchitectureError:
        _, text, pos = tok or self.toks[self.i]
        return ArchitectureError(f"darts-rnn genotype: {what}, found {shorten(repr(text), 60)} at position {pos}")

    def integer(self, what: str) -> int:
        """The next token as an int: ASCII digits, at most :data:`MAX_DIGITS` of them."""
        tok = self.take("int", what=what)
        if len(tok[1].lstrip("+-")) > MAX_DIGITS:
            raise self.fail(f"{what} of {len(tok[1].lstrip('+-')):,} digits is not an index", tok)
        return int(tok[1])

    def take(self, kind: str, text: str | None = None, what: str | None = None) -> tuple[str, str, int]:
        tok = self.toks[self.i]
        if tok[0] != kind or (text is not None and tok[1] != text):
            expected = what or (repr(text) if text is not None else kind)
            raise self.fail(f"expected {expected}")
        self.i += 1
        return tok

    def accept(self, text: str) -> bool:
        if self.toks[self.i][1] == text and self.toks[self.i][0] == "punct":
            self.i += 1
            return True
        return False

    def genotype(self) -> RnnGenotype:
        if self.toks[0][0] == "name" and self.toks[1][1] == "=":
            self.i = 2  # a pasted assignment, e.g. "DARTS_V2 = Genotype(...)"
        self.take("name", "Genotype")
        self.take("punct", "(")
        fields: dict[str, Any] = {}
        while not self.accept(")"):
            if fields:
                self.take("punct", ",", what="',' or ')'")
                if self.accept(")"):
                    break
            key = self.take("name", what="'recurrent=' or 'concat='")
            if key[1] not in ("recurrent", "concat") or key[1] in fields:
                raise self.fail("expected one 'recurrent=' and one 'concat='", key)
            self.take("punct", "=")
            fields[key[1]] = self.recurrent() if key[1] == "recurrent" else self.concat()
        self.take("end", what="end of text")
        if "recurrent" not in fields:
            raise self.fail("missing 'recurrent='", self.toks[-1])
        return RnnGenotype(fields["recurrent"])

    def recurrent(self) -> tuple[tuple[str, int], ...]:
        start = self.take("punct", "[")
        nodes: list[tuple[str, int]] = []
        while not self.accept("]"):
            if nodes:
                self.take("punct", ",", what="',' or ']'")
                if self.accept("]"):
                    break
            nodes.append(self.node(len(nodes) + 1))
        if len(nodes) != NODES:
            raise self.fail(f"expected {NODES} nodes in 'recurrent', got {len(nodes)}", start)
        return tuple(nodes)

    def node(self, i: int) -> tuple[str, int]:
        close = ")" if self.accept("(") else "]" if self.accept("[") else None
        if close is None:
            raise self.fail(f"node {i}: expected '(' starting an (op, input) pair")
        op_tok = self.take("str", what=f"node {i}: a quoted op name")
        op = op_tok[1][1:-1]
        if op not in OPS:
            raise self.fail(f"node {i}: unknown op {shorten(repr(op), 60)}, expected one of {', '.join(OPS)}", op_tok)
        self.take("punct", ",")
        j_tok = self.toks[self.i]
        j = self.integer(f"node {i}: an input index")
        if not 0 <= j < i:
            raise self.fail(f"node {i}: input out of range 0..{i - 1}", j_tok)
        self.accept(",")
        self.take("punct", close)
        return op, j

    def concat(self) -> tuple[int, ...]:
        if self.toks[self.i][1] == "range":
            self.i += 1
            self.take("punct", "(")
            lo = self.toks[self.i]
            lo_value = self.integer("range start 1")
            self.take("punct", ",")
            hi = self.toks[self.i]
            hi_value = self.integer(f"range end {NODES + 1}")
            self.take("punct", ")")
            if (lo_value, hi_value) != (1, NODES + 1):
                raise self.fail(f"concat must be range(1, {NODES + 1})", lo if lo_value != 1 else hi)
            return CONCAT
        start = self.take("punct", "[", what=f"concat=range(1, {NODES + 1}) or a list")
        values: list[tuple[str, str, int]] = []
        while not self.accept("]"):
            if values:
                self.take("punct", ",", what="',' or ']'")
                if self.accept("]"):
                    break
            tok = self.toks[self.i]
            values.append((tok, self.integer("a node index")))
        for want, (tok, value) in zip(CONCAT, values):
            if value != want:
                raise self.fail(f"concat must list the nodes 1..{NODES} in order", tok)
        if len(values) != NODES:
            raise self.fail(f"concat must list the {NODES} nodes 1..{NODES}, got {len(values)}", start)
        return CONCAT


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
        return _Parser(text).genotype()

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
