"""Reading ``Genotype(...)`` strings as the DARTS code prints them, for both DARTS spaces.

One tokenizer and one set of grammar helpers, no ``eval``: ``darts``/``darts-chain``
(``normal=[...], normal_concat=..., reduce=[...], reduce_concat=...``) and ``darts-rnn``
(``recurrent=[...], concat=...``) each add only their fields' grammar. Every error has one
format, ``<space> genotype: <what is wrong> at line L, column C``, and quotes at most 60
characters of the token it names. Numbers are ASCII digits only (``int()`` would read other
scripts' digits: ``'\\u0662' == 2``) and at most :data:`MAX_DIGITS` long.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from nsas.errors import ArchitectureError, shorten

T = TypeVar("T")
MAX_DIGITS = 6  # an index or concat value written with more digits is refused before it is converted
_TOKEN = re.compile(
    r"(?P<num>[-+]?[0-9]+)|(?P<name>[A-Za-z_][A-Za-z0-9_.]*)|(?P<str>'[^'\n]*'|\"[^\"\n]*\")|(?P<punct>[()\[\],=])"
)
Token = tuple[str, str, int]  # (kind, text, offset)
END = "end of input"
CLOSE = {"[": "]", "(": ")"}


class GenotypeText:
    """The tokens of one ``Genotype(...)`` string, with positions, and the grammar both spaces share.

    Args:
        text: the string.
        space: the space's name, the first word of every error.
    """

    def __init__(self, text: str, space: str) -> None:
        self.text, self.space = text, space
        self.tokens: list[Token] = []
        pos = 0
        while True:
            while pos < len(text) and text[pos].isspace():
                pos += 1
            if pos == len(text):
                break
            m = _TOKEN.match(text, pos)
            if m is None:
                raise self.error(f"unexpected character {text[pos]!r}", ("bad", text[pos], pos))
            self.tokens.append((m.lastgroup or "", m.group(), pos))
            pos = m.end()
        self.tokens.append(("end", END, len(text)))
        self.i = 0

    # ---- positions and errors
    def where(self, offset: int) -> str:
        line = self.text.count("\n", 0, offset) + 1
        col = offset - (self.text.rfind("\n", 0, offset) + 1) + 1
        return f"line {line}, column {col}"

    def error(self, message: str, tok: Token | None = None) -> ArchitectureError:
        """``<space> genotype: <message> at line L, column C`` (of ``tok``, default the next token)."""
        _, _, pos = tok or self.tokens[self.i]
        return ArchitectureError(f"{self.space} genotype: {message} at {self.where(pos)}")

    @staticmethod
    def quote(tok: Token) -> str:
        return END if tok[0] == "end" else shorten(repr(tok[1]), 60)

    # ---- tokens
    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self, kind: str, *values: str, what: str = "") -> Token:
        """The next token, which must be of ``kind`` (and one of ``values``, if given)."""
        tok = self.tokens[self.i]
        if tok[0] != kind or (values and tok[1] not in values):
            expected = what or " or ".join(repr(v) for v in values) or kind
            raise self.error(f"expected {expected}, found {self.quote(tok)}", tok)
        self.i += 1
        return tok

    def accept(self, value: str) -> bool:
        """Consume the next token if it is the punctuation or name ``value``."""
        if self.tokens[self.i][1] == value and self.tokens[self.i][0] in ("punct", "name"):
            self.i += 1
            return True
        return False

    def integer(self, what: str = "a number") -> int:
        """The next token as an int: ASCII digits, at most :data:`MAX_DIGITS` of them."""
        tok = self.take("num", what=what)
        digits = tok[1].lstrip("+-")
        if len(digits) > MAX_DIGITS:
            raise self.error(f"{what} of {len(digits):,} digits ({tok[1][:12]}...) is not an index of a cell", tok)
        return int(tok[1])

    def open(self, what: str) -> str:
        """An opening ``[`` or ``(``; returns the bracket that closes it."""
        return CLOSE[self.take("punct", "[", "(", what=what)[1]]

    def items(self, item: Callable[[], T], close: str) -> list[T]:
        """Comma-separated ``item()`` results up to ``close`` (a trailing comma allowed)."""
        out: list[T] = []
        while not self.accept(close):
            out.append(item())
            if not self.accept(","):
                self.take("punct", close, what=f"',' or {close!r}")
                break
        return out

    # ---- the shared grammar
    def genotype(self, names: Sequence[str], field: Callable[[str, Token], Any],
                 required: Sequence[str]) -> dict[str, Any]:
        """``[NAME =] Genotype(name=value, ...)`` to the end of the text: ``{name: field(name, name_token)}``.

        Each field name is one of ``names`` and given at most once; ``required`` must all be there.
        """
        if len(self.tokens) > 2 and self.tokens[0][0] == "name" and self.tokens[1][1] == "=":
            self.i = 2  # a pasted assignment, e.g. "DARTS_V2 = Genotype(...)"
        self.take("name", "Genotype", "genotypes.Genotype", what="'Genotype'")
        self.take("punct", "(")
        fields: dict[str, Any] = {}

        def one() -> None:
            tok = self.take("name", *names, what="one of " + ", ".join(f"{n}=" for n in names))
            if tok[1] in fields:
                raise self.error(f"field {tok[1]!r} is given twice", tok)
            self.take("punct", "=")
            fields[tok[1]] = field(tok[1], tok)

        self.items(one, ")")
        self.take("end", what=END)
        for name in required:
            if name not in fields:
                raise self.error(f"missing field {name!r}", self.tokens[-1])
        return fields

    def pair(self, what: str) -> tuple[Token, int, Token]:
        """``('op', index)`` (or ``['op', index]``): the op's token, the index and the index's token."""
        close = self.open(f"'(' starting an (op, input) pair{what}")
        op = self.take("str", what=f"a quoted op name{what}")
        self.take("punct", ",")
        at = self.peek()
        index = self.integer(f"an input index{what}")
        self.accept(",")
        self.take("punct", close)
        return op, index, at

    def int_list(self, what: str) -> tuple[list[int], Token]:
        """``range(a, b)``, ``list(range(a, b))`` or ``[a, b, ...]`` of ints, and the first token."""
        start = self.peek()
        if self.accept("list"):
            self.take("punct", "(")
            values, _ = self.int_list(what)
            self.take("punct", ")")
            return values, start
        if self.accept("range"):
            self.take("punct", "(")
            bounds = self.items(lambda: self.integer("a range bound"), ")")
            if len(bounds) != 2:
                raise self.error(f"range{tuple(bounds)}: expected range(start, stop)", start)
            return list(range(*bounds)), start
        close = self.open(what)
        return self.items(lambda: self.integer("a node index"), close), start
