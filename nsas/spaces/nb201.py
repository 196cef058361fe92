"""The NAS-Bench-201 search space (Dong & Yang, ICLR 2020).

A cell is a 4-node DAG: node 0 is the cell input, node ``j`` sums one op
applied to every earlier node, and node 3 is the output. Its 6 edges, in
NAS-Bench-201 order, are ``1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2``; each carries
one of 5 ops, so the space holds 5^6 = 15,625 architectures. The canonical
string is NAS-Bench-201's own::

    |nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|

The networks (stand-alone and supernet) live in :mod:`nsas.spaces.nb201_net`, the
architecture (ops, edges, :class:`NB201Arch`) in :mod:`nsas.spaces.nb201_arch`.
"""

from __future__ import annotations

import functools
import itertools
import random
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from nsas.errors import ArchitectureError, NsasError, brief
from nsas.spaces import register_space
from nsas.spaces.base import Architecture, SearchSpace
from nsas.spaces.nb201_arch import EDGES, NUM_EDGES, NUM_NODES, OPS, NB201Arch, _edge_index  # noqa: F401  (public here too)

def _parse_node(text: str, j: int, whole: str) -> list[str]:
    """The ops of node ``j`` from its ``|op~0|op~1|`` segment."""
    if len(text) < 2 or not (text.startswith("|") and text.endswith("|")):
        raise ArchitectureError(
            f"node {j} segment {brief(text, 200)} of {brief(whole, 200)} must look like '|op~0|...|'"
        )
    tokens = text[1:-1].split("|")
    if len(tokens) != j:
        raise ArchitectureError(
            f"node {j} segment {brief(text, 200)} of {brief(whole, 200)} has {len(tokens)} input edges, expected {j}"
        )
    ops = []
    for pos, token in enumerate(tokens):
        op, sep, src = token.partition("~")
        where = f"token {brief(token)} (node {j}, input {pos}) of {brief(whole, 200)}"
        if not sep:
            raise ArchitectureError(f"{where} must be 'op~input'")
        if op not in OPS:
            raise ArchitectureError(f"unknown op {brief(op)} in {where}; choose one of {', '.join(OPS)}")
        if not (src.isascii() and src.isdigit()):
            raise ArchitectureError(f"input index {brief(src)} in {where} is not an integer")
        if src != str(pos):
            raise ArchitectureError(
                f"input index {brief(src)} in {where} must be {pos} "
                f"(node {j} takes inputs 0..{j - 1} in order)"
            )
        ops.append(op)
    return ops


def function_key(arch: NB201Arch) -> str:
    """What the supernet computes for ``arch``, as a canonical expression.

    Cells with the same key give the same supernet output for every input
    and weights, so they share an inherited-weight score. The cell output is
    written as a sum of terms over the input ``x``: a ``none`` edge, or an
    edge leaving a node that is zero, adds nothing (in the supernet a conv
    on zeros is exactly zero: its BatchNorm has no affine shift); an edge
    into a node that never reaches the output is never computed;
    ``skip_connect`` is the identity and ``avg_pool_3x3`` is linear and has
    no weights (it distributes over a sum), so only convolutions are tied to
    their edge (each edge holds its own weights). Terms are sorted (sums
    commute). Keys are equal when the outputs are equal up to floating-point
    summation order. Over the 15,625 cells there are 7,548 keys; the
    all-zero cell is ``"0"``.

    (NAS-Bench-201's "6,466 unique" cells also equate convolutions on
    different edges, which holds for stand-alone training, not for shared
    weights.)
    """
    nodes: list[tuple[str, ...]] = [("x",)]  # each node: its sorted terms; () is zero
    for j in range(1, NUM_NODES):
        terms: list[str] = []
        for i in range(j):
            e, src = _edge_index(j, i), nodes[i]
            op, inner = arch.ops[e], " + ".join(nodes[i])
            if op == "none" or not src:
                continue
            if op == "skip_connect":
                terms += src  # a sum feeding a sum: its terms join this one
            elif op == "avg_pool_3x3":
                terms += [f"pool({t})" for t in src]  # average pooling is linear: pool(a + b) = pool(a) + pool(b)
            else:
                terms.append(f"{op}@{e}({inner})")
        nodes.append(tuple(sorted(terms)))
    return " + ".join(nodes[-1]) or "0"


def live_edges(arch: NB201Arch) -> tuple[bool, ...]:
    """For each edge: does its op change the cell output?

    An edge ``j<-i`` is live when its op is not ``none``, node ``i`` is not
    zero (some chain of non-``none`` edges leads to it from the input) and
    node ``j`` reaches the output through non-``none`` edges. Every other
    edge can be set to ``none`` without changing the function (the same
    reasoning as :func:`function_key`).
    """
    nonzero = [True] + [False] * (NUM_NODES - 1)
    for e, (j, i) in enumerate(EDGES):  # edges are ordered by target node
        nonzero[j] |= nonzero[i] and arch.ops[e] != "none"
    reaches = [False] * (NUM_NODES - 1) + [True]
    for e, (j, i) in reversed(list(enumerate(EDGES))):
        reaches[i] |= reaches[j] and arch.ops[e] != "none"
    return tuple(op != "none" and nonzero[i] and reaches[j] for op, (j, i) in zip(arch.ops, EDGES))


@functools.cache
def _op_parameters(op: str, channels: int) -> int:
    from nsas.spaces.nb201_net import make_op

    return 0 if op == "none" else sum(p.numel() for p in make_op(op, channels).parameters())


@functools.cache
def _empty_network_parameters() -> int:
    """Parameters of the stand-alone network whose cells are all ``none`` (stem, reductions, head)."""
    return SearchSpace.parameter_count(NB201Space(), NB201Arch(("none",) * NUM_EDGES))


@functools.cache
def _representatives() -> dict[str, NB201Arch]:
    """Function key -> the first architecture of the space (``enumerate`` order) with that key."""
    table: dict[str, NB201Arch] = {}
    for ops in itertools.product(OPS, repeat=NUM_EDGES):
        arch = NB201Arch(ops)
        table.setdefault(function_key(arch), arch)
    return table


@register_space
class NB201Space(SearchSpace):
    """NAS-Bench-201: 6 edges x 5 ops, one shared cell for the whole network."""

    name: ClassVar[str] = "nb201"
    ops: ClassVar[tuple[str, ...]] = OPS
    kind: ClassVar[str] = "image"

    # ---- architectures -------------------------------------------------
    def parse(self, text: str) -> NB201Arch:
        if not isinstance(text, str):
            raise ArchitectureError(f"expected a NAS-Bench-201 string, got {type(text).__name__}")
        whole = text.strip()
        segments = whole.split("+")
        if len(segments) != NUM_NODES - 1:
            raise ArchitectureError(
                f"{brief(whole, 200)} has {len(segments)} node segments separated by '+', "
                f"expected {NUM_NODES - 1}"
            )
        ops: list[str] = []
        for j, segment in enumerate(segments, start=1):
            ops += _parse_node(segment, j, whole)
        return NB201Arch(tuple(ops))

    def from_json(self, obj: Any) -> NB201Arch:
        if not isinstance(obj, (list, tuple)):
            raise ArchitectureError(
                f"a NAS-Bench-201 JSON architecture is a list of {NUM_EDGES} op names, got {brief(obj)}"
            )
        for e, op in enumerate(obj):
            if not isinstance(op, str):
                raise ArchitectureError(f"entry {e} ({brief(op)}) of {brief(obj)} is not an op name")
        return NB201Arch(tuple(obj))

    def sample(self, rng: random.Random) -> NB201Arch:
        return NB201Arch(tuple(rng.choice(OPS) for _ in range(NUM_EDGES)))

    def size(self) -> int:
        return len(OPS) ** NUM_EDGES

    def enumerate(self) -> Iterator[NB201Arch]:
        """Every architecture, in lexicographic order of op indices (edge 0 slowest)."""
        for ops in itertools.product(OPS, repeat=NUM_EDGES):
            yield NB201Arch(ops)

    def distance(self, a: Architecture | str, b: Architecture | str) -> float:
        """Fraction of the 6 edges whose op differs (docs/METHOD.md §5)."""
        a, b = self.coerce(a), self.coerce(b)
        return sum(x != y for x, y in zip(a.ops, b.ops)) / NUM_EDGES

    def functions(self) -> list[NB201Arch]:
        """The 7,548 representatives of the distinct supernet functions, in :meth:`enumerate` order."""
        return list(_representatives().values())

    def same_function(self, arch: Architecture) -> NB201Arch:
        """The representative of ``arch``'s supernet function (see :func:`function_key`)."""
        return _representatives()[function_key(self.coerce(arch))]

    def split_options(self, edge: int) -> tuple[str, ...]:
        """The 5 ops of edge ``edge`` (0-5, in ``EDGES`` order: 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2)."""
        if not isinstance(edge, int) or not 0 <= edge < NUM_EDGES:
            raise NsasError(f"nb201 has edges 0-{NUM_EDGES - 1} to split on, not {edge!r}")
        return OPS

    def split_of(self, arch: Architecture, edge: int) -> int:
        return OPS.index(self.coerce(arch).ops[edge])

    def live_arch(self, arch: Architecture | str) -> NB201Arch:
        """``arch`` with every edge that cannot change the output set to ``none`` (:func:`live_edges`)."""
        arch = self.coerce(arch)
        return NB201Arch(tuple(op if live else "none" for op, live in zip(arch.ops, live_edges(arch))))

    def parameter_count(self, arch: Architecture | str) -> int:
        """Parameters of the stand-alone network (16 channels, 5 cells per stage, 10 classes), in closed form.

        The network's parameters are the all-``none`` network's plus, for each
        of the 15 cells, its ops' at the cell's width; equal to counting
        :meth:`build_network`'s parameters, without building it.
        """
        arch = self.coerce(arch)
        cells = sum(_op_parameters(op, c) for c in (16, 32, 64) for op in arch.ops)
        return _empty_network_parameters() + 5 * cells

    # ---- networks ------------------------------------------------------
    def build_network(
        self, arch: Architecture | str, *, channels: int = 16, cells: int = 5, num_classes: int = 10
    ) -> nn.Module:
        """NAS-Bench-201's stand-alone network of ``arch``.

        Args:
            arch: the cell, or its string.
            channels: channels of the first stage (C); stages use C, 2C, 4C.
            cells: cells per stage (NAS-Bench-201's N).
            num_classes: outputs of the classifier.
        """
        from nsas.spaces.nb201_net import NB201Network

        return NB201Network(self.coerce(arch), channels=channels, cells=cells, num_classes=num_classes)

    def build_supernet(self, *, channels: int = 16, cells: int = 5, num_classes: int = 10) -> nn.Module:
        """The weight-sharing supernet; same options as :meth:`build_network`."""
        from nsas.spaces.nb201_net import NB201Supernet

        return NB201Supernet(channels=channels, cells=cells, num_classes=num_classes)

    # ---- GDAS ----------------------------------------------------------
    def gdas_alpha_shapes(self) -> list[tuple[int, int]]:
        """One (6, 5) matrix: rows are edges in ``EDGES`` order, columns follow ``OPS``."""
        return [(NUM_EDGES, len(OPS))]

    def gdas_decode(
        self, choices: Sequence[torch.Tensor], probs: Sequence[torch.Tensor]
    ) -> tuple[NB201Arch, NB201Arch]:
        """The sampled cell is both the path to compute and the architecture."""
        arch = NB201Arch(tuple(OPS[k] for k in self._one_matrix(choices, (NUM_EDGES,)).tolist()))
        return arch, arch

    def gdas_final(self, alphas: Sequence[torch.Tensor]) -> NB201Arch:
        """Argmax op of each edge."""
        best = self._one_matrix(alphas, (NUM_EDGES, len(OPS))).argmax(dim=1)
        return NB201Arch(tuple(OPS[k] for k in best.tolist()))

    @staticmethod
    def _one_matrix(tensors: Sequence[torch.Tensor], shape: tuple[int, ...]) -> torch.Tensor:
        if len(tensors) != 1 or tuple(tensors[0].shape) != shape:
            got = [tuple(t.shape) for t in tensors]
            raise ArchitectureError(f"nb201 GDAS expects one tensor of shape {shape}, got shapes {got}")
        return tensors[0]
